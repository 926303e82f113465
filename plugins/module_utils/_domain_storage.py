# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Removing a domain: undefine it with everything libvirt keeps for it, and delete the disks asked for."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_options import where
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    LibvirtFailure, error_text, is_error, libvirt)


def storage_to_remove(root, other_roots, storage=None, also=None):
    """Disk sources of the definition root to delete with the domain (disks, and the other devices for which
    also(disk element) is true: its cloud-init seed), and those kept with the reason: a source
    one of other_roots (the other domains' definitions) uses, a file another domain's disk stands on (its
    backing chain: a linked clone's base), and block devices, are kept. ``storage`` (a StorageView) resolves
    volumes to paths and reads backing chains; without it sources are compared as written."""
    remove, keep = [], []
    other_sources = [dx.disk_source(disk) for other in other_roots for disk in other.iter('disk')]
    used_elsewhere = set(other_sources)
    standing_on = set()
    if storage is not None:
        other_paths = set(filter(None, (storage.path(source) for source in other_sources if source)))
        used_elsewhere |= set(('path', path) for path in other_paths)
        for path in other_paths:
            standing_on.update(storage.backing_chain(path))
    for disk in root.iter('disk'):
        source = dx.disk_source(disk)
        if source is None or (disk.get('device', 'disk') != 'disk' and not (also and also(disk))):
            continue
        path = storage.path(source) if storage is not None else None
        if source in used_elsewhere or ('path', path) in used_elsewhere:
            keep.append({'source': source[1], 'reason': 'used by another domain'})
        elif path in standing_on:
            keep.append({'source': source[1], 'reason': "backing file of another domain's disk"})
        elif source[0] == 'block':
            keep.append({'source': source[1], 'reason': 'block device'})
        else:
            remove.append(source)
    return remove, keep


# A backing chain longer than this is not followed further (qemu itself refuses chains in the thousands).
MAX_BACKING_DEPTH = 64
QCOW2_MAGIC = b'QFI\xfb'


class StorageView(object):
    """Disk sources as paths, and the files a disk image stands on, read through libvirt (pool volumes) or,
    on a local connection, from the qcow2 header of a file no pool holds."""

    def __init__(self, conn, uri):
        self.conn = conn
        self.local = not urlparse(uri).netloc

    def path(self, source):
        kind, value = source
        if kind != 'volume':
            return value
        pool, name = value.split('/', 1)
        try:
            return self.conn.storagePoolLookupByName(pool).storageVolLookupByName(name).path()
        except libvirt.libvirtError as exc:
            if is_error(exc, 'VIR_ERR_NO_STORAGE_POOL', 'VIR_ERR_NO_STORAGE_VOL', 'VIR_ERR_OPERATION_INVALID'):
                return None
            raise

    def backing_chain(self, path):
        """The files path stands on, nearest first."""
        chain = []
        current = path
        while current is not None and len(chain) < MAX_BACKING_DEPTH:
            current = self._backing_file(current)
            if current is None or current in chain or current == path:
                break
            chain.append(current)
        return chain

    def _backing_file(self, path):
        try:
            xml = self.conn.storageVolLookupByPath(path).XMLDesc(0)
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_STORAGE_VOL'):
                raise
            return qcow2_backing_file(path) if self.local else None
        backing = ET.fromstring(xml).find('backingStore/path')
        return backing.text.strip() if backing is not None and backing.text else None


def qcow2_backing_file(path):
    """The backing file named in a qcow2 image's header (absolute), or None (no file, not qcow2, no backing)."""
    try:
        with open(path, 'rb') as image:
            header = image.read(20)
            if len(header) < 20 or header[:4] != QCOW2_MAGIC:
                return None
            offset = int.from_bytes(header[8:16], 'big')
            size = int.from_bytes(header[16:20], 'big')
            if not offset or not size or size > 4096:
                return None
            image.seek(offset)
            name = image.read(size).decode('utf-8', 'surrogateescape')
    except (OSError, ValueError):
        return None
    if '://' in name or name.startswith('json:'):
        return None
    return os.path.normpath(os.path.join(os.path.dirname(path), name))


def undefine_flags(dom, root):
    """Flags that undefine the domain with its managed save image, snapshot and checkpoint metadata and NVRAM."""
    flags = 0
    if dom.hasManagedSaveImage(0):
        flags |= libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    if dom.snapshotNum(0):
        flags |= libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    if root.find('os/nvram') is not None:
        flags |= libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    if _has_checkpoints(dom):
        flags |= libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    return flags


def _has_checkpoints(dom):
    try:
        return bool(dom.listAllCheckpoints(0))
    except (AttributeError, libvirt.libvirtError):
        return False


def delete_storage(conn, uri, spec, kind, source):
    """Delete one disk source of an undefined domain: through its storage pool when libvirt knows it, else
    (local connections only) the file. Returns False when it was already gone (another run removed it)."""
    try:
        if kind == 'volume':
            pool, name = source.split('/', 1)
            conn.storagePoolLookupByName(pool).storageVolLookupByName(name).delete(0)
            return True
        try:
            conn.storageVolLookupByPath(source).delete(0)
            return True
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_STORAGE_VOL') or urlparse(uri).netloc:
                raise
        os.remove(source)
        return True
    except FileNotFoundError:
        return False
    except (libvirt.libvirtError, OSError) as exc:
        message = error_text(exc) if isinstance(exc, libvirt.libvirtError) else str(exc)
        raise LibvirtFailure("%sdomain '%s' was undefined but its disk %s could not be removed: %s"
                             % (where(spec.label), spec.name, source, message), about="domain '%s'" % spec.name)
