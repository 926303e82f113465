# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The files around an image: temporary files, qemu's image locks, source fingerprints, owner and mode.

Every write goes to a temporary file in the destination's directory (``.<name>.<random>.qemu_image.tmp``)
that is renamed over the destination once qemu-img succeeded: readers see the old image or the new
one, never part of one. The module holds a POSIX lock on a byte far beyond qemu's own lock bytes of
its temporary file while it works; a temporary file of the target that nobody locks was left by a
killed run and is removed by the next one. A signal (SIGTERM, SIGINT, SIGHUP) while qemu-img writes
stops qemu-img and removes the temporary file (:class:`TempImage`).

A running VM (or any qemu process) holds qemu's lock bytes on the images it has open:
:func:`ensure_unlocked` tests them before an image is written to, replaced or removed.

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
import signal
import stat
import struct
import tempfile

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible_collections.virtops.hypervisor.plugins.module_utils._qemu_img import (
    ImageFailure, human_size, locked_message)

XATTR = 'user.virtops.qemu_image'
FINGERPRINT_VERSION = 1
TEMP_SUFFIX = '.qemu_image.tmp'
SIDECAR_SUFFIX = '.qemu_image.json'
# The module's own lock on its temporary file: one byte far beyond qemu's lock bytes (100..300).
OWNER_LOCK_OFFSET = 1 << 40
# struct flock on 64-bit Linux (l_type, l_whence, l_start, l_len, l_pid, padding) and qemu's lock bytes.
FLOCK_FORMAT = 'hhqqi4x'
QEMU_LOCK_FIRST, QEMU_LOCK_LENGTH = 100, 200
NO_XATTR_ERRNOS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.E2BIG, errno.ERANGE)


class _Interrupted(BaseException):
    """A signal arrived while qemu-img wrote a temporary file (a BaseException: run_command must not catch it)."""


# --- temporary files ---------------------------------------------------------------------------

def temp_pattern(name):
    return re.compile(r'^\.%s\.[a-z0-9_]{8}%s$' % (re.escape(name), re.escape(TEMP_SUFFIX)))


def allocated_bytes(path):
    """Bytes a (partial) file takes on disk; 0 when it is gone."""
    try:
        return os.stat(to_bytes(path, errors='surrogate_or_strict')).st_blocks * 512
    except OSError:
        return 0


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


# --- qemu's image locks -----------------------------------------------------------------------

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


# --- owner, group, mode ------------------------------------------------------------------------

def mode_text(st):
    return '%04o' % stat.S_IMODE(st.st_mode)


def file_attributes(path):
    """owner, group and mode of the file at path as names and an octal string; None when it does not exist."""
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


def attribute_text(key, value):
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


def remove_image(path):
    """Remove the image and its fingerprint sidecar (if any)."""
    os.unlink(to_bytes(path, errors='surrogate_or_strict'))
    sidecar = to_bytes(sidecar_path(path), errors='surrogate_or_strict')
    if os.path.lexists(sidecar):
        os.unlink(sidecar)
