# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Removing a domain: undefine it with everything libvirt keeps for it, and delete the disks asked for."""

from __future__ import annotations

import os

from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_options import where
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    LibvirtFailure, error_text, is_error, libvirt)


def storage_to_remove(root, other_roots):
    """Disk sources of the definition root to delete with the domain, and those kept with the reason:
    a source one of other_roots (the other domains' definitions) uses, and block devices, are kept."""
    remove, keep = [], []
    used_elsewhere = set(dx.disk_source(disk) for other in other_roots for disk in other.iter('disk'))
    for disk in root.iter('disk'):
        source = dx.disk_source(disk)
        if disk.get('device', 'disk') != 'disk' or source is None:
            continue
        if source in used_elsewhere:
            keep.append({'source': source[1], 'reason': 'used by another domain'})
        elif source[0] == 'block':
            keep.append({'source': source[1], 'reason': 'block device'})
        else:
            remove.append(source)
    return remove, keep


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
