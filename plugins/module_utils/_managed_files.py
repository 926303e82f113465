# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write a set of files, and set attributes of existing paths, in one module call.

Each file is compared byte for byte with what is asked; a differing file is written to a temporary
file in its own directory and renamed over the target, so a reader sees the old or the new file,
never half of one. Check mode does everything but write.
"""

from __future__ import annotations

import os
import tempfile

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text


def _file_args(spec):
    return {
        'path': spec['path'], 'owner': spec.get('owner'), 'group': spec.get('group'), 'mode': spec.get('mode'),
        'secontext': None, 'attributes': None,
    }


def _read(b_path):
    with open(b_path, 'rb') as handle:
        return handle.read()


def _make_parents(b_dir, created):
    """Create missing parent directories root-owned 0755, outermost first; remember what was made."""
    if os.path.isdir(b_dir):
        return
    _make_parents(os.path.dirname(b_dir), created)
    os.mkdir(b_dir, 0o755)
    os.chmod(b_dir, 0o755)
    created.append(to_native(b_dir))


def write_file(module, spec, diffs):
    """Converge one file; return its result dict."""
    path = spec['path']
    b_path = to_bytes(path, errors='surrogate_or_strict')
    wanted = to_bytes(spec['content'], errors='surrogate_or_strict')
    exists = os.path.lexists(b_path)
    before = _read(b_path) if exists else None
    result = {'path': path, 'changed': before != wanted, 'created': not exists}

    if result['changed']:
        diffs.append({'before_header': path, 'after_header': path,
                      'before': to_text(before) if before is not None else '', 'after': to_text(wanted)})
        if not module.check_mode:
            b_dir = os.path.dirname(b_path)
            created = []
            _make_parents(b_dir, created)
            if created:
                result['created_directories'] = created
            if exists and spec.get('backup'):
                result['backup_file'] = module.backup_local(path)
            fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=to_native(b_dir))
            try:
                with os.fdopen(fd, 'wb') as handle:
                    handle.write(wanted)
                    handle.flush()
                    os.fsync(handle.fileno())
                module.atomic_move(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)

    if module.check_mode and not exists:
        return result  # nothing on disk yet whose attributes could be compared
    attr_diff = {'before': {'path': path}, 'after': {'path': path}}
    if module.set_fs_attributes_if_different(_file_args(spec), False, diff=attr_diff):
        result['changed'] = True
        if not result['created']:
            diffs.append(attr_diff)
    return result


def set_attributes(module, spec, diffs):
    """Set owner/group/mode of an existing path (a device node, a directory...); return its result."""
    path = spec['path']
    attr_diff = {'before': {'path': path}, 'after': {'path': path}}
    changed = module.set_fs_attributes_if_different(_file_args(spec), False, diff=attr_diff)
    if changed:
        diffs.append(attr_diff)
    return {'path': path, 'changed': changed}


def converge(module):
    """Run every entry of the module's files and attributes options; exit the module with the results."""
    files = module.params['files'] or []
    attributes = module.params['attributes'] or []
    paths = [spec['path'] for spec in files + attributes]
    for path in paths:
        if not os.path.isabs(path):
            module.fail_json(msg='path %r is not absolute' % path)
    duplicates = sorted(set(path for path in paths if paths.count(path) > 1))
    if duplicates:
        module.fail_json(msg='paths given more than once: %s' % ', '.join(duplicates))
    # Every check that can fail comes before the first write.
    for spec in files:
        b_path = to_bytes(spec['path'], errors='surrogate_or_strict')
        if os.path.lexists(b_path) and not os.path.isfile(b_path):
            module.fail_json(msg='%s exists and is not a regular file; remove it or choose another path' % spec['path'])
    for spec in attributes:
        if not os.path.lexists(to_bytes(spec['path'], errors='surrogate_or_strict')):
            module.fail_json(msg='%s does not exist, so its owner, group and mode cannot be set' % spec['path'])

    diffs = []
    file_results = [write_file(module, spec, diffs) for spec in files]
    attribute_results = [set_attributes(module, spec, diffs) for spec in attributes]
    result = {
        'changed': any(r['changed'] for r in file_results + attribute_results),
        'files': file_results,
        'attributes': attribute_results,
    }
    if module._diff:
        result['diff'] = diffs
    module.exit_json(**result)
