# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Disk images through qemu-img: read them (info, check), create, convert, resize and remove them.

Every write goes to a temporary file in the destination's directory (``.<name>.<random>.qemu_image.tmp``)
that is renamed over the destination once qemu-img succeeded: readers see the old image or the new
one, never part of one. The module holds a POSIX lock on a byte far beyond qemu's own lock bytes of
its temporary file while it works; a temporary file of the target that nobody locks was left by a
killed run and is removed by the next one.

A conversion records a fingerprint of its source in the destination itself, as the extended
attribute ``user.virtops.qemu_image`` (set on the temporary file, so it arrives with the rename):
the settings asked for, and for each image of the source's backing chain its size, mtime_ns,
inode, format and virtual size. Reading it back costs a stat and a ``qemu-img info``, not a read of
the image. A destination without it (made by hand, copied without xattrs) or with another one is
converted again. On file systems without user extended attributes the same record goes to a
sidecar file ``.<name>.qemu_image.json`` bound to the destination's inode.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import signal
import stat
import struct
import tempfile

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure

FORMATS = ('qcow2', 'raw', 'vdi', 'vmdk', 'vpc', 'vhdx')
# vmdk subformats that keep the image in one file (the others write extent files named after it).
VMDK_SINGLE_FILE = ('monolithicSparse', 'streamOptimized')
XATTR = 'user.virtops.qemu_image'
FINGERPRINT_VERSION = 1
TEMP_SUFFIX = '.qemu_image.tmp'
SIDECAR_SUFFIX = '.qemu_image.json'
# The module's own lock on its temporary file: one byte far beyond qemu's lock bytes (100..300).
OWNER_LOCK_OFFSET = 1 << 40
LOCK_ERROR = re.compile(r'Failed to get (?:shared )?"?(?:write|read|consistent read)"? lock', re.I)
# struct flock on 64-bit Linux (l_type, l_whence, l_start, l_len, l_pid, padding) and qemu's lock bytes.
FLOCK_FORMAT = 'hhqqi4x'
QEMU_LOCK_FIRST, QEMU_LOCK_LENGTH = 100, 200
NO_XATTR_ERRNOS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.E2BIG, errno.ERANGE)
SIZE_UNITS = {'': 1, 'b': 1, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30, 't': 1 << 40, 'p': 1 << 50, 'e': 1 << 60}
SIZE_PATTERN = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([bkmgtpe]?)\s*$', re.I)


class ImageFailure(ModuleFailure):
    """Something about an image failed; the message names the image and what to do."""


class _Interrupted(BaseException):
    """A signal arrived while qemu-img wrote a temporary file (a BaseException: run_command must not catch it)."""


# --- pure helpers ------------------------------------------------------------------------------

def parse_size(value, what='size'):
    """Bytes from an int or a qemu-img size string: 1073741824, '512M', '10G', '1.5G' (1024-based, like qemu-img)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ImageFailure('%s must be a size such as 10G, 512M or a number of bytes, not %r' % (what, value))
    if isinstance(value, int):
        number, unit = value, ''
    else:
        match = SIZE_PATTERN.match(to_text(value))
        if not match:
            raise ImageFailure("%s '%s' is not a size: use a number of bytes or a number with one of the suffixes "
                               "K, M, G, T, P, E (powers of 1024), such as 10G or 512M" % (what, value))
        number, unit = match.group(1), match.group(2).lower()
        if '.' in number and not unit:
            raise ImageFailure("%s '%s' is a fraction of a byte: use a whole number of bytes or a suffix" % (what, value))
    if '.' in str(number):
        whole, fraction = str(number).split('.')
        scaled = int(whole) * SIZE_UNITS[unit] + int(fraction) * SIZE_UNITS[unit] // (10 ** len(fraction))
        if int(fraction) * SIZE_UNITS[unit] % (10 ** len(fraction)):
            raise ImageFailure("%s '%s' is not a whole number of bytes" % (what, value))
        result = scaled
    else:
        result = int(number) * SIZE_UNITS[unit]
    if result <= 0:
        raise ImageFailure('%s must be more than 0 bytes, not %r' % (what, value))
    return result


def human_size(size):
    """1073741824 -> '1 GiB', 33562624 -> '32.01 MiB' (for messages)."""
    if size is None:
        return 'unknown'
    for unit, factor in (('EiB', 1 << 60), ('PiB', 1 << 50), ('TiB', 1 << 40), ('GiB', 1 << 30), ('MiB', 1 << 20),
                         ('KiB', 1 << 10)):
        if size >= factor:
            text = '%.2f' % (float(size) / factor)
            return '%s %s' % (text.rstrip('0').rstrip('.'), unit)
    return '%d bytes' % size


def option_string(options):
    """The -o argument of qemu-img from a dict: sorted key=value pairs, commas in values doubled."""
    parts = []
    for key in sorted(options):
        value = options[key]
        if isinstance(value, bool):
            value = 'on' if value else 'off'
        parts.append('%s=%s' % (key, to_text(value).replace(',', ',,')))
    return ','.join(parts)


def clean_error(text):
    """qemu-img's stderr as one line without the 'qemu-img: ' prefixes."""
    lines = [line.strip() for line in to_text(text).splitlines() if line.strip()]
    lines = [line[len('qemu-img: '):] if line.startswith('qemu-img: ') else line for line in lines]
    return '; '.join(lines)


def is_lock_error(text):
    return bool(LOCK_ERROR.search(to_text(text)))


def parse_info(data):
    """One image of `qemu-img info --output=json` as the modules return it."""
    specific = (data.get('format-specific') or {}).get('data') or {}
    info = {
        'path': data.get('filename'),
        'format': data.get('format'),
        'virtual_size': data.get('virtual-size'),
        'actual_size': data.get('actual-size'),
        'cluster_size': data.get('cluster-size'),
        'backing_file': data.get('backing-filename'),
        'full_backing_file': data.get('full-backing-filename'),
        'backing_format': data.get('backing-filename-format'),
        'dirty': bool(data.get('dirty-flag', False)),
        'corrupt': bool(specific.get('corrupt', False)),
        'encrypted': bool(data.get('encrypted', False)),
        'snapshots': [parse_snapshot(item) for item in data.get('snapshots') or []],
        'format_specific': specific,
    }
    if data.get('format') == 'vmdk':
        info['subformat'] = specific.get('create-type')
    return info


def parse_snapshot(data):
    return {
        'id': data.get('id'),
        'name': data.get('name'),
        'vm_state_size': data.get('vm-state-size'),
        'date_sec': data.get('date-sec'),
        'vm_clock_sec': data.get('vm-clock-sec'),
    }


def parse_info_output(text):
    """`qemu-img info --output=json [--backing-chain]`: a list of images, the image itself first."""
    data = json.loads(text)
    if isinstance(data, dict):
        data = [data]
    return [parse_info(item) for item in data]


def parse_check(text, rc):
    """`qemu-img check --output=json` and its exit code as a dict."""
    result = {'supported': rc != 63, 'rc': rc}
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        data = {}
    result.update({
        'check_errors': data.get('check-errors', 0),
        'corruptions': data.get('corruptions', 0),
        'leaks': data.get('leaks', 0),
        'corruptions_fixed': data.get('corruptions-fixed', 0),
        'leaks_fixed': data.get('leaks-fixed', 0),
        'allocated_clusters': data.get('allocated-clusters'),
        'total_clusters': data.get('total-clusters'),
        'fragmented_clusters': data.get('fragmented-clusters'),
        'image_end_offset': data.get('image-end-offset'),
    })
    result['result'] = {0: 'ok', 2: 'corrupt', 3: 'leaks', 63: 'unsupported'}.get(rc, 'error')
    return result


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


def source_fingerprint(chain, stats):
    """The fingerprint of a source: each image of its backing chain with stat data and what qemu-img says of it."""
    items = []
    for info, st in zip(chain, stats):
        items.append({'path': info['path'], 'size': st.st_size, 'mtime_ns': st.st_mtime_ns, 'inode': st.st_ino,
                      'device': st.st_dev, 'format': info['format'], 'virtual_size': info['virtual_size']})
    return items


def fingerprint_differences(stored, recipe, source, dest_virtual_size):
    """Why a destination must be converted again; an empty list when its fingerprint matches."""
    if stored is None:
        return ['no record of a conversion from this source (no fingerprint)']
    if not isinstance(stored, dict) or stored.get('version') != FINGERPRINT_VERSION:
        return ['the fingerprint was not written by this module version']
    found = []
    old_recipe = stored.get('recipe') or {}
    for key in sorted(set(recipe) | set(old_recipe)):
        if old_recipe.get(key) != recipe.get(key):
            found.append('converted with %s %s, asked for %s'
                         % (key, _show(old_recipe.get(key)), _show(recipe.get(key))))
    old_source = stored.get('source') or []
    if [item.get('path') for item in old_source] != [item['path'] for item in source]:
        found.append('the source backing chain changed')
    else:
        for old, new in zip(old_source, source):
            changed = [key for key in ('size', 'mtime_ns', 'inode', 'device', 'format', 'virtual_size')
                       if old.get(key) != new[key]]
            if changed:
                found.append('source %s changed since the last conversion (%s)' % (new['path'], ', '.join(changed)))
    if stored.get('virtual_size') != dest_virtual_size:
        found.append('the destination was resized since the conversion (%s, converted as %s)'
                     % (human_size(dest_virtual_size), human_size(stored.get('virtual_size'))))
    return found


def _show(value):
    return 'none' if value is None else json.dumps(value, sort_keys=True)


def temp_pattern(name):
    return re.compile(r'^\.%s\.[a-z0-9_]{8}%s$' % (re.escape(name), re.escape(TEMP_SUFFIX)))


def mode_text(st):
    return '%04o' % stat.S_IMODE(st.st_mode)


def file_attributes(path):
    try:
        st = os.stat(to_bytes(path, errors='surrogate_or_strict'))
    except OSError:
        return None
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return {'owner': owner, 'group': group, 'mode': mode_text(st)}


# --- qemu-img ----------------------------------------------------------------------------------

class QemuImg(object):
    """qemu-img through module.run_command, argv lists only."""

    def __init__(self, module):
        self.module = module
        self.binary = module.get_bin_path('qemu-img', required=False)
        if not self.binary:
            raise ImageFailure('qemu-img was not found on the target: install it (Debian and Ubuntu: qemu-utils; '
                               'EL and Fedora: qemu-img)')

    def run(self, args, callback=None):
        kwargs = {}
        if callback is not None:
            kwargs['before_communicate_callback'] = callback
        rc, out, err = self.module.run_command([self.binary] + args, environ_update={'LC_ALL': 'C'}, **kwargs)
        return rc, out, err

    def info(self, path, fmt=None, chain=False, share=True):
        """The image (chain=True: the image and its backing chain) or None if the path does not exist."""
        if not os.path.lexists(to_bytes(path, errors='surrogate_or_strict')):
            return None
        args = ['info', '--output=json']
        if share:
            args.append('-U')
        if chain:
            args.append('--backing-chain')
        if fmt:
            args += ['-f', fmt]
        rc, out, err = self.run(args + [path])
        if rc != 0:
            if is_lock_error(err):
                raise ImageFailure(locked_message(path))
            raise ImageFailure('cannot read image %s: %s' % (path, clean_error(err)))
        images = parse_info_output(out)
        return images if chain else images[0]

    def check(self, path, fmt):
        rc, out, err = self.run(['check', '--output=json', '-U', '-f', fmt, path])
        result = parse_check(out, rc)
        if rc not in (0, 2, 3, 63):
            result['error'] = clean_error(err)
        return result


def qemu_lock_held(path):
    """Whether a qemu process (a running VM, qemu-img, qemu-nbd) has the image open, from qemu's own lock bytes.

    qemu takes shared OFD locks on bytes 100-163 (permissions it holds) and 200-263 (permissions it does
    not share) of every image file it opens. A test for a write lock over them finds any such user, also
    for raw images, where `qemu-img info` (which only needs to read) does not conflict with a writer.
    """
    try:
        fd = os.open(to_bytes(path, errors='surrogate_or_strict'), os.O_RDONLY)
    except OSError:
        return False
    try:
        request = struct.pack(FLOCK_FORMAT, fcntl.F_WRLCK, os.SEEK_SET, QEMU_LOCK_FIRST, QEMU_LOCK_LENGTH, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, request)
        return struct.unpack(FLOCK_FORMAT, answer)[0] != fcntl.F_UNLCK
    except OSError:
        return False  # no locking on this file system: qemu could not lock either
    finally:
        os.close(fd)


def ensure_unlocked(path):
    """Fail if a running VM (or another qemu process) uses the image."""
    if qemu_lock_held(path):
        raise ImageFailure(locked_message(path))


def locked_message(path):
    return ('%s is in use: a running VM (or another qemu process) holds its qemu image lock. Shut the VM down, '
            'or detach the disk, and run again; nothing was changed.' % path)


# --- fingerprint storage -----------------------------------------------------------------------

def sidecar_path(path):
    return os.path.join(os.path.dirname(path), '.%s%s' % (os.path.basename(path), SIDECAR_SUFFIX))


def read_fingerprint(path):
    """The fingerprint stored with the image at path, or None (none, unreadable, or another file's)."""
    b_path = to_bytes(path, errors='surrogate_or_strict')
    try:
        return json.loads(to_text(os.getxattr(b_path, XATTR)))
    except ValueError:
        return None
    except OSError as exc:
        if exc.errno not in (errno.ENODATA,) + NO_XATTR_ERRNOS:
            return None
    try:
        with open(to_bytes(sidecar_path(path), errors='surrogate_or_strict'), 'rb') as handle:
            data = json.loads(to_text(handle.read()))
        st = os.stat(b_path)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get('image') != {'inode': st.st_ino, 'device': st.st_dev}:
        return None
    return data.get('fingerprint')


def store_fingerprint(tmp, path, fingerprint):
    """Attach the fingerprint to the temporary file (xattr), or write the sidecar bound to its inode."""
    b_tmp = to_bytes(tmp, errors='surrogate_or_strict')
    payload = to_bytes(json.dumps(fingerprint, sort_keys=True, separators=(',', ':')))
    try:
        os.setxattr(b_tmp, XATTR, payload)
        return 'xattr'
    except OSError as exc:
        if exc.errno not in NO_XATTR_ERRNOS:
            raise ImageFailure('cannot record the source fingerprint on %s: %s' % (tmp, to_native(exc)))
    st = os.stat(b_tmp)
    sidecar = sidecar_path(path)
    data = {'image': {'inode': st.st_ino, 'device': st.st_dev}, 'fingerprint': fingerprint}
    fd, side_tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(sidecar), dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(to_bytes(json.dumps(data, sort_keys=True)))
        os.rename(side_tmp, sidecar)
    finally:
        if os.path.exists(side_tmp):
            os.unlink(side_tmp)
    return 'sidecar'


# --- temporary files ---------------------------------------------------------------------------

def stale_temp_files(path):
    """Temporary files of this target that no running module holds (left by a killed run)."""
    directory, name = os.path.dirname(path), os.path.basename(path)
    pattern = temp_pattern(name)
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    found = []
    for entry in sorted(entries):
        if not pattern.match(entry):
            continue
        candidate = os.path.join(directory, entry)
        try:
            fd = os.open(candidate, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, OWNER_LOCK_OFFSET)
        except OSError:
            continue  # a running module works on it
        finally:
            os.close(fd)
        found.append(candidate)
    return found


class TempImage(object):
    """A locked temporary file next to the destination; removed on exit unless it was renamed into place."""

    def __init__(self, path):
        self.path = path
        self.name = None
        self.fd = None
        self.process = None
        self.old_handlers = {}

    def __enter__(self):
        directory = os.path.dirname(self.path)
        try:
            self.fd, self.name = tempfile.mkstemp(prefix='.%s.' % os.path.basename(self.path), suffix=TEMP_SUFFIX,
                                                  dir=directory)
        except OSError as exc:
            raise ImageFailure('cannot create a temporary file in %s for %s: %s'
                               % (directory, self.path, to_native(exc)))
        fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, OWNER_LOCK_OFFSET)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.old_handlers[signum] = signal.signal(signum, self._interrupt)
        return self

    def _interrupt(self, signum, _frame):
        raise _Interrupted(signum)

    def remember(self, process):
        """run_command's before_communicate_callback: keep the qemu-img process to stop it on a signal."""
        self.process = process

    def __exit__(self, exc_type, exc, _tb):
        try:
            if exc_type is not None and self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            if self.name and os.path.lexists(self.name):
                os.unlink(self.name)
        finally:
            if self.fd is not None:
                os.close(self.fd)
            for signum, handler in self.old_handlers.items():
                signal.signal(signum, handler)
        if exc_type is _Interrupted:
            raise ImageFailure('interrupted by signal %d while writing %s; the temporary file was removed and %s '
                               'is unchanged' % (exc.args[0], self.path, self.path))
        return False


# --- qemu_image --------------------------------------------------------------------------------

class ImageManager(object):
    """Converge one image: present (create, convert, resize) or absent."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.qemu = QemuImg(module)
        self.path = os.path.abspath(self.params['path'])
        self.result = {'changed': False, 'path': self.path, 'actions': [], 'reasons': [], 'warnings': [],
                       'stale_temp_files': []}
        self._written = None

    # state ------------------------------------------------------------------------------------

    def run(self):
        self._validate()
        b_path = to_bytes(self.path, errors='surrogate_or_strict')
        if os.path.lexists(b_path) and not os.path.isfile(b_path):
            raise ImageFailure('%s exists and is not a regular file: this module writes image files (it renames a '
                               'new image over the old one); choose a file path' % self.path)
        self._remove_stale_temp_files()
        self.before = self._read_image()
        self.attrs_before = file_attributes(self.path)
        if self.params['state'] == 'absent':
            self._absent()
        elif self.params['src']:
            self._convert_if_needed()
        else:
            self._create_or_resize()
        if self.params['state'] == 'present':
            self._attributes()
        self._finish()
        return self.result

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
            for option in ('src_format', 'compress', 'force'):
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

    def _finish(self):
        if self.check_mode:
            after = self._predicted
        elif self._written is not None:
            after = self._written  # the temporary file read after qemu-img wrote it, now renamed to path
        else:
            after = self._read_image()
        attrs_after = file_attributes(self.path) if not self.check_mode else self._predicted_attrs
        self.result['image'] = summary(after) if after is not None else None
        if after is not None:
            self.result['image'].update({'actual_size': after.get('actual_size'), 'path': self.path})
        self.result['diff'] = {'before_header': self.path, 'after_header': self.path,
                               'before': summary(self.before, self.attrs_before),
                               'after': summary(after, attrs_after)}
        self.result['changed'] = bool(self.result['actions'])

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

    def _act(self, action, reason=None):
        self.result['actions'].append(action)
        if reason:
            self.result['reasons'].append(reason)

    def _remove_stale_temp_files(self):
        stale = stale_temp_files(self.path)
        self.result['stale_temp_files'] = stale
        if stale and not self.check_mode:
            for name in stale:
                os.unlink(name)
            self.result['warnings'].append('removed %d temporary file(s) of %s left by an interrupted run: %s'
                                           % (len(stale), self.path, ', '.join(stale)))

    # absent -----------------------------------------------------------------------------------

    def _absent(self):
        self._predicted = None
        self._predicted_attrs = None
        if self.before is None:
            return
        ensure_unlocked(self.path)
        self._act('remove')
        if not self.check_mode:
            os.unlink(to_bytes(self.path, errors='surrogate_or_strict'))
            sidecar = to_bytes(sidecar_path(self.path), errors='surrogate_or_strict')
            if os.path.lexists(sidecar):
                os.unlink(sidecar)

    # convert ----------------------------------------------------------------------------------

    def _source(self):
        params = self.params
        src = os.path.abspath(params['src'])
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

    def _recipe(self, src, src_format):
        params = self.params
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
        self._predicted = self.before
        self._predicted_attrs = self.attrs_before
        if not reasons:
            return
        if self.before is not None:
            ensure_unlocked(self.path)
        self._act('convert')
        self.result['reasons'] = reasons
        self._predicted = {'format': self.params['format'], 'virtual_size': wanted_size,
                           'backing_file': self.params['backing_file'],
                           'backing_format': self._backing_format() if self.params['backing_file'] else None,
                           'subformat': self.params['subformat'] if self.params['format'] == 'vmdk' else None}
        self._predicted_attrs = self._attributes_after()
        if self.check_mode:
            return
        self._convert(src, src_format, src_size, wanted_size, recipe, source)

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
            self._written = dict(converted, path=self.path)

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
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(b_tmp, 0o666 & ~umask)
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
                               % (what, os.path.dirname(self.path), human_size(free + _allocated(tmp.name)),
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
        params = self.params
        self._predicted = self.before
        self._predicted_attrs = self.attrs_before
        if self.before is None:
            if not self.size and not params['backing_file']:
                raise ImageFailure('%s does not exist: give size to create it, or src to convert an image to it'
                                   % self.path)
            wanted_size = self.size
            if not wanted_size:
                backing = self.qemu.info(self._backing_path())
                if backing is None:
                    raise ImageFailure('backing_file %s of %s does not exist' % (self._backing_path(), self.path))
                wanted_size = backing['virtual_size']
            self._act('create')
            self._predicted = {'format': params['format'], 'virtual_size': wanted_size,
                               'backing_file': params['backing_file'],
                               'backing_format': self._backing_format() if params['backing_file'] else None,
                               'subformat': params['subformat'] if params['format'] == 'vmdk' else None}
            self._predicted_attrs = self._attributes_after()
            if not self.check_mode:
                with TempImage(self.path) as tmp:
                    self._qemu_write(self._create_argv(tmp.name, self.size), tmp,
                                     'cannot create %s (%s)' % (self.path, params['format']))
                    self._commit(tmp)
            return
        before = self.before
        if before['format'] != params['format']:
            raise ImageFailure('%s is a %s image, not %s. To convert it, give it as src of a new path; to replace it, '
                               'remove it first (state: absent). Nothing was changed.'
                               % (self.path, before['format'], params['format']))
        backing = self._backing_differences() if params['backing_file'] or before['backing_file'] else []
        if backing:
            raise ImageFailure('%s: %s. This module does not rebase images (qemu-img rebase does); nothing was '
                               'changed.' % (self.path, backing[0]))
        self._report_settings(before)
        if self.size and self.size != before['virtual_size']:
            self._resize(before)

    def _report_settings(self, before):
        found = []
        if self.cluster_size and before['cluster_size'] and before['cluster_size'] != self.cluster_size:
            found.append('cluster size is %s' % human_size(before['cluster_size']))
        if self.params['subformat'] and before.get('subformat') and before['subformat'] != self.params['subformat']:
            found.append('subformat is %s' % before['subformat'])
        if found:
            self.result['differences'] = found
            self.result['warnings'].append('%s exists and differs from what was asked (%s); these are fixed when an '
                                           'image is created: it was left as it is' % (self.path, '; '.join(found)))

    def _resize(self, before):
        shrink = self.size < before['virtual_size']
        if shrink and not self.params['allow_shrink']:
            raise ImageFailure('%s has a virtual size of %s; size %s would shrink it and lose the data at its end. '
                               'Set allow_shrink: true (after shrinking the file systems inside), or ask for at least '
                               '%s. Nothing was changed.' % (self.path, human_size(before['virtual_size']),
                                                             human_size(self.size), human_size(before['virtual_size'])))
        ensure_unlocked(self.path)
        self._act('shrink' if shrink else 'grow', 'virtual size is %s, asked for %s'
                  % (human_size(before['virtual_size']), human_size(self.size)))
        self._predicted = dict(before, virtual_size=self.size)
        if self.check_mode:
            return
        argv = ['resize', '-q', '-f', before['format']]
        if shrink:
            argv.append('--shrink')
        if self.params['preallocation'] and before['format'] in ('raw', 'qcow2'):
            argv.append('--preallocation=%s' % self.params['preallocation'])
        rc, _out, err = self.qemu.run(argv + [self.path, str(self.size)])
        if rc != 0:
            text = clean_error(err)
            if is_lock_error(text):
                raise ImageFailure(locked_message(self.path))
            raise ImageFailure('cannot resize %s (%s) to %s: %s' % (self.path, before['format'], human_size(self.size),
                                                                    text))

    # owner, group, mode ---------------------------------------------------------------------------

    def _file_args(self):
        return self.module.load_file_common_arguments(self.params, path=self.path)

    def _attributes_after(self):
        """owner/group/mode the image will have after a create or convert (check mode and diff)."""
        attrs = dict(self.attrs_before or {})
        if not attrs:
            umask = os.umask(0)
            os.umask(umask)
            user = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            attrs = {'owner': user, 'group': group, 'mode': '%04o' % (0o666 & ~umask)}
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
        if self.check_mode and not os.path.exists(to_bytes(self.path, errors='surrogate_or_strict')):
            return  # nothing to compare yet: _attributes_after predicted the new file's attributes
        attr_diff = {'before': {}, 'after': {}}
        if not self.module.set_fs_attributes_if_different(self._file_args(), False, diff=attr_diff):
            return
        after = dict((key, _attribute_text(key, value)) for key, value in attr_diff['after'].items())
        before = dict((key, _attribute_text(key, value)) for key, value in attr_diff['before'].items())
        if not self.result['actions']:
            self._act('attributes')
            self.result['reasons'].append('file attributes differ: %s' % ', '.join(
                '%s %s -> %s' % (key, before.get(key), after[key]) for key in sorted(after)))
        elif 'attributes' not in self.result['actions']:
            self.result['actions'].append('attributes')
        if self.check_mode:
            self._predicted_attrs = dict(self._predicted_attrs or self.attrs_before or {})
            self._predicted_attrs.update((key, value) for key, value in after.items()
                                         if key in ('owner', 'group', 'mode'))


def _attribute_text(key, value):
    """set_fs_attributes_if_different reports uid and gid numbers: names, as file_attributes gives them."""
    if key == 'owner' and isinstance(value, int):
        try:
            return pwd.getpwuid(value).pw_name
        except KeyError:
            return str(value)
    if key == 'group' and isinstance(value, int):
        try:
            return grp.getgrgid(value).gr_name
        except KeyError:
            return str(value)
    if key == 'mode' and isinstance(value, int):
        return '%04o' % value
    return value


def _allocated(path):
    try:
        return os.stat(to_bytes(path, errors='surrogate_or_strict')).st_blocks * 512
    except OSError:
        return 0


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
