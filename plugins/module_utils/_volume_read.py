# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading volumes through libvirt: pools, volumes (also while another run creates them), who uses them.

The body of libvirt_volume_info is here too; libvirt_volume reads through the same helpers.
"""

from __future__ import annotations

import time

from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import LibvirtFailure, is_error, libvirt
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume import (
    describe, domains_using, volumes_backed_by)

FILE_POOLS = ('dir', 'fs', 'netfs')
# How long to wait for a volume that another run is still creating (libvirt refuses to act on it meanwhile).
BUILD_WAIT = 120


def volume_info(module, conn):
    """The body of libvirt_volume_info: the volumes of one pool (or of every active pool), with their users."""
    inventory = Inventory(conn)
    names = module.params['name'] or []
    pools = [module.params['pool']] if module.params['pool'] else [pool.name() for pool in conn.listAllStoragePools(0)]
    volumes, inactive = [], []
    for pool_name in sorted(pools):
        pool = find_pool(conn, pool_name, require_active=bool(module.params['pool']))
        if not pool.isActive():
            inactive.append(pool_name)
            continue
        for info in readable_volumes(pool):
            if names and info['name'] not in names:
                continue
            info['domains'] = domains_using(inventory.domain_xmls(), info)
            info['overlays'] = volumes_backed_by(inventory.volumes(), info)
            volumes.append(info)
    volumes.sort(key=lambda item: (item['pool'], item['name']))
    found = set(item['name'] for item in volumes)
    return {'volumes': volumes, 'missing': sorted(set(names) - found), 'inactive_pools': inactive}


def find_pool(conn, name, require_active=True):
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if is_error(exc, 'VIR_ERR_NO_STORAGE_POOL'):
            raise LibvirtFailure("storage pool '%s' does not exist: define it first (virtops.hypervisor.libvirt_pool)"
                                 % name, about="pool '%s'" % name)
        raise
    if require_active and not pool.isActive():
        raise LibvirtFailure("storage pool '%s' is not active: start it first" % name, about="pool '%s'" % name)
    return pool


def lookup_volume(pool, name):
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if is_error(exc, 'VIR_ERR_NO_STORAGE_VOL'):
            return None
        raise


def read_volume(pool, name, pool_name, wait=BUILD_WAIT):
    """(handle, describe() dict) of the volume, or (None, None). A volume another run is still creating is
    listed before its file exists (its XML then fails with "no storage vol"): wait for it, up to wait seconds."""
    deadline = time.monotonic() + wait
    while True:
        vol = lookup_volume(pool, name)
        if vol is None:
            return None, None
        try:
            return vol, describe(vol.XMLDesc(0), pool_name)
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_STORAGE_VOL') or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def readable_volumes(pool):
    """describe() of every volume of an active pool, except those being created or deleted as they are read."""
    found = []
    for vol in pool.listAllVolumes(0):
        try:
            found.append(describe(vol.XMLDesc(0), pool.name()))
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_STORAGE_VOL'):
                raise
    return found


class Inventory(object):
    """Domains and volumes of the host, read once (to find who uses a volume)."""

    def __init__(self, conn):
        self.conn = conn
        self._domains = None
        self._volumes = None

    def domain_xmls(self):
        if self._domains is None:
            self._domains = []
            for dom in self.conn.listAllDomains(0):
                xmls = [dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)]
                if dom.isActive():
                    xmls.append(dom.XMLDesc(0))
                self._domains.append((dom.name(), xmls))
        return self._domains

    def volumes(self):
        if self._volumes is None:
            self._volumes = []
            for pool in self.conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
                self._volumes.extend(readable_volumes(pool))
        return self._volumes
