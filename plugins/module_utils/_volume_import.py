# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Importing an image file into a volume: the sparse upload stream and the record of the source.

The record (see ``_volume.import_record``) is the extended attribute ``user.virtops.libvirt_volume`` of
the volume's file. Not a sidecar file, as qemu_image falls back to: a dir pool lists every file of its
directory as a volume, dot files too.
"""

from __future__ import annotations

import errno
import json
import os

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import libvirt
from ansible_collections.virtops.hypervisor.plugins.module_utils._qemu_img import ImageFailure

XATTR = 'user.virtops.libvirt_volume'


def read_record(path):
    """The import record stored with the volume's file, or None."""
    try:
        return json.loads(to_text(os.getxattr(to_bytes(path, errors='surrogate_or_strict'), XATTR)))
    except (OSError, ValueError, TypeError):
        return None


def store_record(path, record):
    payload = to_bytes(json.dumps(record, sort_keys=True, separators=(',', ':')))
    try:
        os.setxattr(to_bytes(path, errors='surrogate_or_strict'), XATTR, payload)
    except OSError as exc:
        raise ImageFailure('cannot record the source fingerprint on %s (%s); the imported volume was deleted again'
                           % (path, to_native(exc)))


def records_unsupported(directory):
    """Why the file system of directory cannot hold the record (no user extended attributes), or None."""
    try:
        os.getxattr(to_bytes(directory, errors='surrogate_or_strict'), XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return to_native(exc)
    return None


def upload_file(conn, vol, path):
    """Stream the file into the volume, holes as holes (virStorageVolUpload with a sparse stream)."""
    stream = conn.newStream(0)
    fd = os.open(to_bytes(path, errors='surrogate_or_strict'), os.O_RDONLY)
    try:
        vol.upload(stream, 0, 0, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
        try:
            stream.sparseSendAll(_read_chunk, _in_data, _skip_hole, fd)
            stream.finish()
        except BaseException:
            stream.abort()
            raise
    finally:
        os.close(fd)


def _read_chunk(_stream, nbytes, fd):
    return os.read(fd, nbytes)


def _in_data(_stream, fd):
    """(in data?, bytes until the section ends) from the current offset, by SEEK_DATA/SEEK_HOLE."""
    here = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        data = os.lseek(fd, here, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # ENXIO: only a hole is left up to the end of the file
            raise
        end = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, here, os.SEEK_SET)
        return (0, end - here)
    if data > here:
        os.lseek(fd, here, os.SEEK_SET)
        return (0, data - here)
    hole = os.lseek(fd, here, os.SEEK_HOLE)
    os.lseek(fd, here, os.SEEK_SET)
    return (1, hole - here)


def _skip_hole(_stream, length, fd):
    os.lseek(fd, length, os.SEEK_CUR)
    return 0
