# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write a set of files, and set attributes of existing paths, in one module call.

Each file is compared byte for byte with what is asked, and each path's owner, group and mode with
the asked ones; every check that can fail runs before the first write. A differing file is written to
a temporary file in its own directory and renamed over the target, so a reader sees the old or the
new file, never half of one. The writes go through ``Result.perform``: check mode does everything
but write.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import tempfile

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure

# Symbolic modes (u+x, g=r ...) are relative to the current mode; a path that does not exist yet is
# checked against a plain file of mode 0 (only whether the mode can be read at all).
_NEW_FILE = os.stat_result((stat.S_IFREG, 0, 0, 1, 0, 0, 0, 0, 0, 0))


def _b(path):
    return to_bytes(path, errors='surrogate_or_strict')


def _read(b_path):
    with open(b_path, 'rb') as handle:
        return handle.read()


def _id(name, lookup, kind, path):
    """A numeric owner/group as it is, a name through the host's user or group database."""
    try:
        return int(name)
    except ValueError:
        pass
    try:
        return lookup(name)[2]
    except KeyError:
        option = 'owner' if kind == 'user' else kind
        raise ModuleFailure("%s '%s' of %s is no %s on the host" % (option, name, path, kind), about=path)


def _uid(owner, path):
    return _id(owner, pwd.getpwnam, 'user', path)


def _gid(group, path):
    return _id(group, grp.getgrnam, 'group', path)


def _mode(module, mode, path_stat, path):
    """The asked mode as an int, from an int, an octal string or a symbolic mode (relative to path_stat)."""
    if isinstance(mode, int):
        value = mode
    else:
        try:
            value = int(str(mode), 8)
        except ValueError:
            try:
                value = module._symbolic_mode_to_octal(path_stat, str(mode))
            except Exception as exc:  # ansible raises a bare ValueError or its own errors for a bad mode
                raise ModuleFailure("mode '%s' of %s is neither octal (0644) nor symbolic (u=rw,g=r): %s"
                                    % (mode, path, to_native(exc)), about=path)
    if value != stat.S_IMODE(value):
        raise ModuleFailure("mode '%s' of %s holds more than permission bits" % (mode, path), about=path)
    return value


def attribute_changes(module, spec):
    """The owner, group and mode of an existing path that differ from spec, as diff before/after dicts."""
    path = spec['path']
    st = os.lstat(_b(path))
    before, after = {'path': path}, {'path': path}
    wanted = (
        ('owner', st.st_uid, None if spec.get('owner') is None else _uid(spec['owner'], path)),
        ('group', st.st_gid, None if spec.get('group') is None else _gid(spec['group'], path)),
        ('mode', stat.S_IMODE(st.st_mode), None if spec.get('mode') is None else _mode(module, spec['mode'], st, path)),
    )
    for key, have, want in wanted:
        if want is not None and have != want:
            before[key], after[key] = ('0%03o' % have, '0%03o' % want) if key == 'mode' else (have, want)
    return before, after


def check_new_file(module, spec, warn=None):
    """Check the owner, group and mode asked for a file that does not exist yet (raises ModuleFailure).

    With ``warn`` (check mode), an owner or group that does not exist is a warning instead: a task that
    check mode skipped (a package, ansible.builtin.group) may create it before the real run.
    """
    path = spec['path']
    for option, lookup in (('owner', _uid), ('group', _gid)):
        if spec.get(option) is None:
            continue
        try:
            lookup(spec[option], path)
        except ModuleFailure as failure:
            if warn is None:
                raise
            warn('%s; the real run fails unless an earlier task creates it' % failure.msg)
    if spec.get('mode') is not None:
        _mode(module, spec['mode'], _NEW_FILE, path)


def _make_parents(b_dir, created):
    """Create missing parent directories 0755, outermost first; remember what was made."""
    if os.path.isdir(b_dir):
        return
    _make_parents(os.path.dirname(b_dir), created)
    os.mkdir(b_dir, 0o755)
    os.chmod(b_dir, 0o755)
    created.append(to_native(b_dir))


class ManagedFiles(object):
    """The files and attributes options of one managed_files call."""

    def __init__(self, module, result):
        self.module = module
        self.result = result
        self.files = module.params['files'] or []
        self.attributes = module.params['attributes'] or []
        self.file_results = []
        self.attribute_results = []

    def run(self):
        self.validate()
        self.result.diff_as_list()
        self.result.set(files=self.file_results, attributes=self.attribute_results)
        for spec in self.files:
            self.file_results.append(self.converge_file(spec))
        for spec in self.attributes:
            self.attribute_results.append(self.converge_attributes(spec))

    def validate(self):
        """Every check that can fail, before the first write."""
        paths = [spec['path'] for spec in self.files + self.attributes]
        for path in paths:
            if not os.path.isabs(path):
                raise ModuleFailure('path %r is not absolute' % path, about=path)
        duplicates = sorted(set(path for path in paths if paths.count(path) > 1))
        if duplicates:
            raise ModuleFailure('paths given more than once: %s' % ', '.join(duplicates))
        for spec in self.files:
            b_path = _b(spec['path'])
            if os.path.lexists(b_path) and not os.path.isfile(b_path):
                raise ModuleFailure('%s exists and is not a regular file; remove it or choose another path'
                                    % spec['path'], about=spec['path'])
        for spec in self.attributes:
            if not os.path.lexists(_b(spec['path'])):
                raise ModuleFailure('%s does not exist, so its owner, group and mode cannot be set' % spec['path'],
                                    about=spec['path'])
        for spec in self.files + self.attributes:
            if os.path.lexists(_b(spec['path'])):
                attribute_changes(self.module, spec)
            else:  # a file still to be written: the names and the mode must make sense already
                check_new_file(self.module, spec, self.result.warn if self.result.check_mode else None)

    def converge_file(self, spec):
        """Write one file if its bytes differ, then set its attributes; return its result entry."""
        path = spec['path']
        wanted = _b(spec['content'])
        exists = os.path.lexists(_b(path))
        before = _read(_b(path)) if exists else None
        entry = {'path': path, 'changed': before != wanted, 'created': not exists}
        if entry['changed']:
            self.result.differ('%s: %s' % (path, 'content changed' if exists else 'created'))
            if self.result.diff_mode:
                self.result.add_diff(to_text(before) if before is not None else '', to_text(wanted), path)
            done = self.result.perform('write %s' % path, self._write, spec, wanted, exists)
            entry.update(done or {})
        if self.module.check_mode and not exists:
            return entry  # nothing on disk yet whose attributes could be compared
        if self._attributes(spec, report_diff=exists):
            entry['changed'] = True
        return entry

    def converge_attributes(self, spec):
        """Set owner, group and mode of an existing path (a device node, a directory ...) where they differ."""
        return {'path': spec['path'], 'changed': self._attributes(spec, report_diff=True)}

    def _attributes(self, spec, report_diff):
        before, after = attribute_changes(self.module, spec)
        if len(before) == 1:
            return False
        path = spec['path']
        for key in sorted(set(before) - {'path'}):
            self.result.differ('%s: %s %s -> %s' % (path, key, before[key], after[key]))
        if report_diff and self.result.diff_mode:
            self.result.add_diff(before, after)
        file_args = {'path': path, 'owner': spec.get('owner'), 'group': spec.get('group'), 'mode': spec.get('mode'),
                     'secontext': None, 'attributes': None}
        self.result.perform('set attributes of %s' % path, self.module.set_fs_attributes_if_different, file_args, False)
        return True

    def _write(self, spec, wanted, exists):
        """Parents, backup, temporary file renamed over the target; returns what the entry reports."""
        path = spec['path']
        b_dir = os.path.dirname(_b(path))
        done = {}
        created = []
        try:
            _make_parents(b_dir, created)
        except OSError as exc:
            raise ModuleFailure('cannot create the directory of %s: %s' % (path, to_native(exc)), about=path,
                                created_directories=created)
        if created:
            done['created_directories'] = created
        if exists and spec.get('backup'):
            done['backup_file'] = self.module.backup_local(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=to_native(b_dir))
        except OSError as exc:
            raise ModuleFailure('cannot write %s: %s' % (path, to_native(exc)), about=path, **done)
        try:
            with os.fdopen(fd, 'wb') as handle:
                handle.write(wanted)
                handle.flush()
                os.fsync(handle.fileno())
            self.module.atomic_move(tmp, path)
        except OSError as exc:
            raise ModuleFailure('cannot write %s: %s' % (path, to_native(exc)), about=path, **done)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return done
