# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What qemu_image and qemu_image_info do: converge one image (present: create, convert, resize; absent), read images.

Read, compare, act. :meth:`ImageManager.run` reads the image, its owner and mode and, for a conversion,
the source and the destination's fingerprint; decides what to do and why; and does it through
:meth:`Result.perform`, which skips the side effect in check mode and records the action once it
succeeded. What cannot be done (a format qemu-img cannot resize, a shrink not allowed, an image in use)
is refused before anything is written, in check mode as in a real run.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import shutil
import stat
import tarfile

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible_collections.virtops.hypervisor.plugins.module_utils._image_files import (
    FINGERPRINT_VERSION, TempImage, allocated_bytes, attribute_text, ensure_unlocked, file_attributes,
    fingerprint_differences, read_fingerprint, remove_image, source_fingerprint, stale_temp_files, store_fingerprint)
from ansible_collections.virtops.hypervisor.plugins.module_utils._qemu_img import (
    RESIZABLE_FORMATS, VMDK_SINGLE_FILE, ImageFailure, QemuImg, clean_error, created_size, human_size,
    is_lock_error, member_source, option_string, parse_size, whole_sectors)


def summary(info, attributes=None):
    """What diff mode shows of an image: format, sizes, backing and file attributes."""
    if info is None:
        return {'exists': False}
    result = {'exists': True, 'format': info['format'], 'virtual_size': info['virtual_size'],
              'backing_file': info['backing_file'], 'backing_format': info['backing_format']}
    if info.get('subformat'):
        result['subformat'] = info['subformat']
    if attributes:
        result.update(attributes)
    return result


class ImageManager(object):
    """Converge one image: present (create, convert, resize) or absent."""

    def __init__(self, module, result):
        self.module = module
        self.params = module.params
        self.result = result
        self.check_mode = module.check_mode
        self.qemu = QemuImg(module)
        self.path = os.path.abspath(self.params['path'])
        self.size = None  # size and cluster_size in bytes, from _validate
        self.cluster_size = None
        self.before = None  # the image as found (qemu-img info) and its owner, group, mode; None when absent
        self.attrs_before = None
        self.after = None  # the image after the call: predicted, then what a real write produced
        self.attrs_after = None  # owner, group, mode predicted for check mode (a real run reads them back)
        self.reasons = []  # why, for each action (returned as reasons)
        self.stale = []  # temporary files left by killed runs

    def run(self):
        """Converge the image; a failure names it (failed_object)."""
        self.result.set(path=self.path, reasons=self.reasons, stale_temp_files=self.stale)
        try:
            self._converge()
        except ImageFailure as failure:
            if failure.about is None:
                failure.about = self.path
            raise

    def _converge(self):
        self._validate()
        b_path = to_bytes(self.path, errors='surrogate_or_strict')
        if os.path.lexists(b_path) and not os.path.isfile(b_path):
            raise ImageFailure('%s exists and is not a regular file: this module writes image files (it renames a '
                               'new image over the old one); choose a file path' % self.path)
        self._remove_stale_temp_files()
        self.before = self._read_image()
        self.attrs_before = file_attributes(self.path)
        self.after, self.attrs_after = self.before, self.attrs_before
        if self.params['state'] == 'absent':
            self._absent()
        elif self.params['src']:
            self._convert_if_needed()
        else:
            self._create_or_resize()
        if self.params['state'] == 'present':
            self._attributes()
        self._report()

    def _validate(self):
        params = self.params
        fmt = params['format']
        if params['subformat'] and fmt == 'vmdk' and params['subformat'] not in VMDK_SINGLE_FILE:
            raise ImageFailure("subformat '%s' writes vmdk extent files beside the image, which cannot be replaced "
                               "atomically; use %s" % (params['subformat'], ' or '.join(VMDK_SINGLE_FILE)))
        if params['subformat'] and fmt not in ('vmdk', 'vpc', 'vhdx'):
            raise ImageFailure('subformat applies to vmdk, vpc and vhdx images, not %s' % fmt)
        if params['state'] == 'absent':
            return
        if params['src']:
            if os.path.abspath(params['src']) == self.path:
                raise ImageFailure('src and path are both %s: convert to another path' % self.path)
        else:
            for option in ('src_format', 'src_member', 'compress', 'force'):
                if params[option]:
                    raise ImageFailure('%s needs src (the image to convert)' % option)
        if params['backing_format'] and not params['backing_file']:
            raise ImageFailure('backing_format needs backing_file')
        if params['compress'] and fmt not in ('qcow2', 'vmdk'):
            raise ImageFailure('compress works for qcow2 and vmdk destinations, not %s' % fmt)
        for key in ('subformat', 'cluster_size', 'preallocation', 'backing_file', 'backing_format'):
            if key.replace('_', '-') in (params['options'] or {}) or key in (params['options'] or {}):
                raise ImageFailure('set %s with its own option, not in options' % key)
        self.size = parse_size(params['size'])
        self.cluster_size = parse_size(params['cluster_size'], 'cluster_size')
        # Ansible fails on an unknown owner or group only when it sets them, after the image was written.
        for key, lookup in (('owner', pwd.getpwnam), ('group', grp.getgrnam)):
            if params[key] and not to_text(params[key]).isdigit():
                try:
                    lookup(params[key])
                except KeyError:
                    raise ImageFailure("%s '%s' does not exist on the target: create it first or give another; "
                                       "nothing was changed" % (key, params[key]))

    def _report(self):
        """image and diff: predicted in check mode, as written (or read back) in a real run."""
        after = self.after
        attrs_after = self.attrs_after if self.check_mode else file_attributes(self.path)
        image = None
        if after is not None:
            image = dict(summary(after), actual_size=after.get('actual_size'), path=self.path)
        self.result.set(image=image)
        self.result.add_diff(summary(self.before, self.attrs_before), summary(after, attrs_after),
                             self.path, self.path)

    def _read_image(self):
        """The image at path as qemu-img detects it; a detected raw image is tried as the asked format too:
        a fixed VHD (vpc) has no header, only a footer, and looks raw to qemu-img's format probe."""
        found = self.qemu.info(self.path)
        wanted = self.params['format']
        if found is not None and found['format'] == 'raw' and wanted != 'raw' and self.params['state'] == 'present':
            try:
                return self.qemu.info(self.path, fmt=wanted)
            except ImageFailure:
                pass
        return found

    def _remove_stale_temp_files(self):
        """Housekeeping, not an action on the image: the debris of a killed run of this module is removed (check
        mode only lists it) and reported in stale_temp_files and a warning; it does not make the call changed."""
        self.stale.extend(stale_temp_files(self.path))
        if self.stale and not self.check_mode:
            for name in self.stale:
                os.unlink(name)
            self.result.warn('removed %d temporary file(s) of %s left by an interrupted run: %s'
                             % (len(self.stale), self.path, ', '.join(self.stale)))

    # absent -----------------------------------------------------------------------------------

    def _absent(self):
        if self.before is None:
            return
        ensure_unlocked(self.path)
        self.after, self.attrs_after = None, None
        self.result.perform('remove', remove_image, self.path)

    # convert ----------------------------------------------------------------------------------

    def _source(self):
        params = self.params
        src = os.path.abspath(params['src'])
        if params['src_member']:
            return self._member_source(src)
        try:
            chain = self.qemu.info(src, fmt=params['src_format'], chain=True)
        except ImageFailure as exc:
            raise ImageFailure('cannot read src %s: %s' % (src, str(exc).replace('cannot read image %s: ' % src, '')))
        if chain is None:
            raise ImageFailure('src %s does not exist: nothing to convert %s from' % (src, self.path))
        stats = []
        for info in chain:
            try:
                stats.append(os.stat(to_bytes(info['path'], errors='surrogate_or_strict')))
            except OSError as exc:
                raise ImageFailure('cannot read %s (in the backing chain of src %s): %s'
                                   % (info['path'], src, to_native(exc)))
        chain[0]['path'] = src
        return src, chain, source_fingerprint(chain, stats)

    def _member_source(self, archive):
        """src_member: the image stored in the tar archive src, read in place; its fingerprint is the archive's."""
        member = self.params['src_member']
        try:
            with tarfile.open(archive, 'r:') as tar:
                info = tar.getmember(member)
            st = os.stat(to_bytes(archive, errors='surrogate_or_strict'))
        except KeyError:
            raise ImageFailure('src_member %s is not in the archive %s: list it with tar -tf (or read the OVA with '
                               'virtops.hypervisor.ovf_info)' % (member, archive))
        except (tarfile.TarError, OSError) as exc:
            raise ImageFailure('cannot read src %s as an uncompressed tar archive (src_member needs one, such as an '
                               'OVA): %s' % (archive, to_native(exc)))
        if not info.isfile():
            raise ImageFailure('src_member %s of %s is not a regular file' % (member, archive))
        src = member_source(archive, info.offset_data, info.size)
        image = self.qemu.info(src, fmt=self.params['src_format'])
        if image['backing_file']:
            raise ImageFailure('src_member %s of %s has a backing file: only standalone images can be read from an '
                               'archive' % (member, archive))
        image['path'] = '%s:%s' % (archive, member)
        return src, [image], source_fingerprint([image], [st])

    def _recipe(self, src, src_format):
        params = self.params
        if params['src_member']:
            src = '%s:%s' % (os.path.abspath(params['src']), params['src_member'])
        return {'src': src, 'src_format': src_format, 'format': params['format'], 'subformat': params['subformat'],
                'compress': params['compress'], 'options': params['options'] or {}, 'cluster_size': self.cluster_size,
                'preallocation': params['preallocation'], 'backing_file': params['backing_file'],
                'backing_format': params['backing_format'], 'size': self.size}

    def _convert_if_needed(self):
        src, chain, source = self._source()
        src_format, src_size = chain[0]['format'], chain[0]['virtual_size']
        recipe = self._recipe(src, src_format)
        wanted_size = self.size or src_size
        if self.size and self.size < src_size:
            raise ImageFailure('size %s is smaller than the virtual size of src %s (%s): a conversion cannot shrink; '
                               'leave size out or make it at least the source size'
                               % (human_size(self.size), src, human_size(src_size)))
        if self.size and self.size != src_size and self.params['backing_file']:
            raise ImageFailure('size (other than the size of src) and backing_file cannot be combined in a conversion')
        if self.before is None:
            reasons = ['%s does not exist' % self.path]
        elif self.params['force']:
            reasons = ['force: true']
        else:
            stored = read_fingerprint(self.path)
            reasons = self._destination_differences()
            # Some formats round the size (vpc: disk geometry); the size a conversion produced is recorded.
            if self.before['virtual_size'] != wanted_size and (
                    stored is None or stored.get('virtual_size') != self.before['virtual_size']):
                reasons.append('virtual size is %s, asked for %s' % (human_size(self.before['virtual_size']),
                                                                     human_size(wanted_size)))
            reasons += fingerprint_differences(stored, recipe, source, self.before['virtual_size'])
        if not reasons:
            return
        if self.before is not None:
            ensure_unlocked(self.path)
        self.reasons.extend(reasons)
        self.after = self._new_image(wanted_size)
        self.attrs_after = self._attributes_after()
        self.result.perform('convert', self._convert, src, src_format, src_size, wanted_size, recipe, source)

    def _new_image(self, virtual_size):
        """What qemu-img info will say of the image this call writes (check mode and diff)."""
        params = self.params
        return {'format': params['format'], 'virtual_size': virtual_size, 'backing_file': params['backing_file'],
                'backing_format': self._backing_format() if params['backing_file'] else None,
                'subformat': params['subformat'] if params['format'] == 'vmdk' else None}

    def _destination_differences(self):
        before, params = self.before, self.params
        found = []
        if before['format'] != params['format']:
            found.append('format is %s, asked for %s' % (before['format'], params['format']))
        if params['format'] == 'vmdk' and params['subformat'] and before.get('subformat') != params['subformat']:
            found.append('vmdk subformat is %s, asked for %s' % (before.get('subformat'), params['subformat']))
        found += self._backing_differences()
        return found

    def _backing_differences(self):
        before, wanted = self.before, self.params['backing_file']
        have = before['backing_file']
        if not wanted:
            return ['backed by %s, asked for no backing file' % have] if have else []
        if not have:
            return ['no backing file, asked for %s' % wanted]
        if have != wanted and os.path.normpath(before['full_backing_file'] or '') != self._backing_path():
            return ['backed by %s, asked for %s' % (have, wanted)]
        if self.params['backing_format'] and before['backing_format'] not in (None, self.params['backing_format']):
            return ['backing format is %s, asked for %s' % (before['backing_format'], self.params['backing_format'])]
        return []

    def _backing_path(self):
        return os.path.normpath(os.path.join(os.path.dirname(self.path), self.params['backing_file']))

    def _backing_format(self):
        if self.params['backing_format']:
            return self.params['backing_format']
        backing = self.qemu.info(self._backing_path())
        if backing is None:
            raise ImageFailure('backing_file %s of %s does not exist' % (self._backing_path(), self.path))
        return backing['format']

    def _image_options(self):
        params = self.params
        options = dict(params['options'] or {})
        if params['subformat']:
            options['subformat'] = params['subformat']
        if self.cluster_size:
            options['cluster_size'] = self.cluster_size
        if params['preallocation']:
            options['preallocation'] = params['preallocation']
        return options

    def _convert_argv(self, src, src_format, tmp, into_existing):
        params = self.params
        argv = ['convert', '-f', src_format, '-O', params['format']]
        if params['compress']:
            argv.append('-c')
        # Out-of-order writes: measured up to ~15% faster for raw and qcow2 targets; safe there (raw offsets are
        # fixed, qcow2 maps clusters). Not with compression or a backing file, and never for the other formats.
        if params['format'] in ('raw', 'qcow2') and not params['compress'] and not params['backing_file']:
            argv.append('-W')
        if params['backing_file']:
            argv += ['-B', params['backing_file'], '-F', self._backing_format()]
        if into_existing:
            argv += ['-n', '--target-is-zero']
        else:
            options = self._image_options()
            if options:
                argv += ['-o', option_string(options)]
        return argv + [src, tmp]

    def _convert(self, src, src_format, src_size, wanted_size, recipe, source):
        """The side effect of convert: write the temporary file, fingerprint it, rename it over path."""
        with TempImage(self.path) as tmp:
            into_existing = wanted_size != src_size
            if into_existing:
                self._qemu_write(self._create_argv(tmp.name, wanted_size), tmp,
                                 'cannot create %s (%s, %s)' % (self.path, self.params['format'],
                                                                human_size(wanted_size)))
            self._qemu_write(self._convert_argv(src, src_format, tmp.name, into_existing), tmp,
                             'cannot convert %s to %s (%s)' % (src, self.path, self.params['format']))
            converted = self.qemu.info(tmp.name, fmt=self.params['format'])
            store_fingerprint(tmp.name, self.path, {'version': FINGERPRINT_VERSION, 'recipe': recipe,
                                                    'source': source, 'virtual_size': converted['virtual_size']})
            self._commit(tmp)
        self.after = dict(converted, path=self.path)

    def _commit(self, tmp):
        """Rename the finished temporary file over the destination, with the destination's owner and mode.

        Not module.atomic_move: it copies the old file's extended attributes, the old fingerprint among them.
        """
        b_tmp, b_path = to_bytes(tmp.name, errors='surrogate_or_strict'), to_bytes(self.path, errors='surrogate_or_strict')
        module = self.module
        context = None
        try:
            old = os.stat(b_path)
        except OSError:
            old = None
        try:
            if old is not None:
                os.chmod(b_tmp, stat.S_IMODE(old.st_mode))
                os.chown(b_tmp, old.st_uid, old.st_gid)
            else:
                os.chmod(b_tmp, 0o666 & ~_umask())
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise
        if module.selinux_enabled():
            context = module.selinux_context(self.path) if old is not None else module.selinux_default_context(self.path)
        if self.params['fsync']:
            os.fsync(tmp.fd)
        os.rename(b_tmp, b_path)
        if context is not None:
            module.set_context_if_different(self.path, context, False)
        module.set_fs_attributes_if_different(self._file_args(), False)  # owner, group, mode asked for: part of the write
        if self.params['fsync']:
            dir_fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _qemu_write(self, argv, tmp, what):
        rc, _out, err = self.qemu.run(argv, callback=tmp.remember)
        if rc == 0:
            return
        text = clean_error(err)
        if 'No space left on device' in text or 'ENOSPC' in text:
            free = shutil.disk_usage(os.path.dirname(self.path)).free
            raise ImageFailure('%s: no space left on the file system of %s (%s free once the partial image was '
                               'removed). Free space or choose another path; %s is unchanged.'
                               % (what, os.path.dirname(self.path), human_size(free + allocated_bytes(tmp.name)),
                                  self.path))
        if is_lock_error(text) and self.params['src']:
            raise ImageFailure('%s: src %s is in use by a running VM (or another qemu process holds its image lock). '
                               'Shut the VM down and run again; %s is unchanged.'
                               % (what, self.params['src'], self.path))
        raise ImageFailure('%s: %s; %s is unchanged' % (what, text, self.path))

    # create and resize --------------------------------------------------------------------------

    def _create_argv(self, tmp, size):
        params = self.params
        argv = ['create', '-q', '-f', params['format']]
        options = self._image_options()
        if options:
            argv += ['-o', option_string(options)]
        if params['backing_file'] and not params['src']:
            argv += ['-b', params['backing_file'], '-F', self._backing_format()]
        argv.append(tmp)
        if size:
            argv.append(str(size))
        return argv

    def _create_or_resize(self):
        if self.before is None:
            self._create()
            return
        before, params = self.before, self.params
        if before['format'] != params['format']:
            raise ImageFailure('%s is a %s image, not %s. To convert it, give it as src of a new path; to replace it, '
                               'remove it first (state: absent). Nothing was changed.'
                               % (self.path, before['format'], params['format']))
        backing = self._backing_differences() if params['backing_file'] or before['backing_file'] else []
        if backing:
            raise ImageFailure('%s: %s. This module does not rebase images (qemu-img rebase does); nothing was '
                               'changed.' % (self.path, backing[0]))
        self._report_settings(before)
        # The size asked for, as qemu-img rounds it (whole sectors; vpc: its disk geometry, unless force_size).
        if self.size and before['virtual_size'] not in (whole_sectors(self.size),
                                                        created_size(before['format'], self.size, params['options'])):
            self._resize(before)

    def _create(self):
        if not self.size and not self.params['backing_file']:
            raise ImageFailure('%s does not exist: give size to create it, or src to convert an image to it'
                               % self.path)
        if self.size:
            wanted_size = created_size(self.params['format'], self.size, self.params['options'])
        else:
            backing = self.qemu.info(self._backing_path())
            if backing is None:
                raise ImageFailure('backing_file %s of %s does not exist' % (self._backing_path(), self.path))
            wanted_size = backing['virtual_size']
        self.after = self._new_image(wanted_size)
        self.attrs_after = self._attributes_after()
        self.result.perform('create', self._write_new_image)

    def _write_new_image(self):
        """The side effect of create: qemu-img create into the temporary file, renamed over path."""
        with TempImage(self.path) as tmp:
            self._qemu_write(self._create_argv(tmp.name, self.size), tmp,
                             'cannot create %s (%s)' % (self.path, self.params['format']))
            created = self.qemu.info(tmp.name, fmt=self.params['format'])
            self._commit(tmp)
        self.after = dict(created, path=self.path)

    def _report_settings(self, before):
        found = []
        if self.cluster_size and before['cluster_size'] and before['cluster_size'] != self.cluster_size:
            found.append('cluster size is %s' % human_size(before['cluster_size']))
        if self.params['subformat'] and before.get('subformat') and before['subformat'] != self.params['subformat']:
            found.append('subformat is %s' % before['subformat'])
        for line in found:
            self.result.differ(line)
        if found:
            self.result.warn('%s exists and differs from what was asked (%s); these are fixed when an image is '
                             'created: it was left as it is' % (self.path, '; '.join(found)))

    def _resize(self, before):
        fmt, size = before['format'], whole_sectors(self.size)
        shrink = size < before['virtual_size']
        if fmt not in RESIZABLE_FORMATS:
            raise ImageFailure(resize_refused(self.path, fmt, before['virtual_size'], size))
        if shrink and not self.params['allow_shrink']:
            raise ImageFailure('%s has a virtual size of %s; size %s would shrink it and lose the data at its end. '
                               'Set allow_shrink: true (after shrinking the file systems inside), or ask for at least '
                               '%s. Nothing was changed.' % (self.path, human_size(before['virtual_size']),
                                                             human_size(size), human_size(before['virtual_size'])))
        ensure_unlocked(self.path)
        self.reasons.append('virtual size is %s, asked for %s' % (human_size(before['virtual_size']), human_size(size)))
        self.after = dict(before, virtual_size=size)
        self.result.perform('shrink' if shrink else 'grow', self._write_size, fmt, size, shrink)

    def _write_size(self, fmt, size, shrink):
        """The side effect of grow and shrink: qemu-img resize in place (qcow2 and raw only)."""
        self.qemu.resize(self.path, fmt, size, shrink=shrink, preallocation=self.params['preallocation'])
        self.after = self.qemu.info(self.path, fmt=fmt)

    # owner, group, mode ---------------------------------------------------------------------------

    def _file_args(self):
        return self.module.load_file_common_arguments(self.params, path=self.path)

    def _attributes_after(self):
        """owner/group/mode the image will have after a create or convert (check mode and diff)."""
        attrs = dict(self.attrs_before or _new_file_attributes())
        for key in ('owner', 'group'):
            if self.params[key]:
                attrs[key] = self.params[key]
        if self.params['mode'] is not None:
            if isinstance(self.params['mode'], int) or re.match(r'^0?[0-7]{3,4}$', to_text(self.params['mode'])):
                value = self.params['mode'] if isinstance(self.params['mode'], int) else int(self.params['mode'], 8)
                attrs['mode'] = '%04o' % value
            else:
                attrs['mode'] = to_text(self.params['mode'])
        return attrs

    def _attributes(self):
        """owner, group, mode (and the other file arguments) of an image this call did not write, compared by
        Ansible's own rules. A new image gets them as part of its create or convert (see _commit)."""
        if any(action in self.result.actions for action in ('create', 'convert')):
            return
        attr_diff = {'before': {}, 'after': {}}
        if not self._attributes_differ(attr_diff):
            return
        after = dict((key, attribute_text(key, value)) for key, value in attr_diff['after'].items())
        before = dict((key, attribute_text(key, value)) for key, value in attr_diff['before'].items())
        if not self.result.actions:
            self.reasons.append('file attributes differ: %s' % ', '.join(
                '%s %s -> %s' % (key, before.get(key), after[key]) for key in sorted(after)))
        self.result.perform('attributes', self.module.set_fs_attributes_if_different, self._file_args(), False)
        self.attrs_after = dict(self.attrs_after or {})
        self.attrs_after.update((key, value) for key, value in after.items() if key in ('owner', 'group', 'mode'))

    def _attributes_differ(self, attr_diff):
        """Whether set_fs_attributes_if_different would change the file, asked in check mode (it changes nothing
        then and fills attr_diff), so that the change itself is made by Result.perform."""
        module, check_mode = self.module, self.module.check_mode
        module.check_mode = True
        try:
            return module.set_fs_attributes_if_different(self._file_args(), False, diff=attr_diff)
        finally:
            module.check_mode = check_mode


def resize_refused(path, fmt, current, wanted):
    """The message for a resize qemu-img cannot do: the image, its format, and the way out."""
    way_out = ('convert it to qcow2 or raw first (src: %s, a new path, format: qcow2 or raw) and resize that' % path)
    if wanted > current:
        way_out += (', or convert it to a new %s image with src: %s and size: %s (a conversion can make the '
                    'destination larger)' % (fmt, path, human_size(wanted)))
    return ('cannot resize %s from %s to %s: qemu-img cannot resize %s images (only %s). To change its size, %s. '
            'Nothing was changed.' % (path, human_size(current), human_size(wanted), fmt,
                                      ' and '.join(RESIZABLE_FORMATS), way_out))


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _new_file_attributes():
    """owner, group and mode of a file this process creates (its euid, egid and umask)."""
    return {'owner': pwd.getpwuid(os.geteuid()).pw_name, 'group': grp.getgrgid(os.getegid()).gr_name,
            'mode': '%04o' % (0o666 & ~_umask())}


# --- qemu_image_info ---------------------------------------------------------------------------

def read_images(module, paths, check):
    """qemu_image_info: each path's info with its backing chain (and check results)."""
    qemu = QemuImg(module)
    images = []
    for path in paths:
        path = os.path.abspath(path)
        chain = qemu.info(path, chain=True)
        if chain is None:
            images.append({'path': path, 'exists': False})
            continue
        image = dict(chain[0], path=path, exists=True)
        image['backing_chain'] = [dict((key, item[key]) for key in ('path', 'format', 'virtual_size', 'actual_size',
                                                                    'backing_file', 'backing_format'))
                                  for item in chain[1:]]
        attrs = file_attributes(path)
        if attrs:
            image.update(attrs)
        if check:
            image['check'] = qemu.check(path, image['format'])
        images.append(image)
    return images
