# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The files a migrating domain needs on the destination, and how they get there.

A domain's disks and boot files are read from its definition (:func:`guest_files`). Each host's storage is
seen through libvirt alone (:class:`HostFiles`), so the destination may be any libvirt URI: a path is
found through the storage pool that holds its directory; a directory no pool holds is looked at through a
transient ``dir`` pool started over it and stopped again before the module returns.

:func:`plan_files` decides, per file and storage mode, what the destination needs: nothing (shared storage,
or it is there already), an empty image libvirt copies the disk into (``--copy-storage-all``: a flat image
of the disk's size; ``--copy-storage-inc``: an overlay on the same backing file), or the file's bytes
(read-only disks such as a cloud-init seed, which libvirt does not copy, and every disk of an offline move).
"""

from __future__ import annotations

import hashlib
import os
import xml.etree.ElementTree as ET

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import is_error, libvirt

TRANSIENT_POOL_PREFIX = 'virtops-migration-'
COPY_CHUNK = 4 * 1024 * 1024


class GuestFile(object):
    """A file the domain uses: a disk (``target`` set) or a boot file (kernel, initrd, loader, nvram)."""

    def __init__(self, path, role, target=None, readonly=False, shareable=False, kind='file', image_format=None):
        self.path = path
        self.role = role
        self.target = target
        self.readonly = readonly
        self.shareable = shareable
        self.kind = kind
        self.image_format = image_format

    @property
    def label(self):
        return '%s %s (%s)' % (self.role, self.target, self.path) if self.target else '%s %s' % (self.role, self.path)


def guest_files(xml):
    """The files of a domain definition that must exist on the host it runs on: disks with a local source
    (file, block, volume resolved by the caller through ``<source>``), and kernel, initrd, dtb, loader, nvram."""
    root = ET.fromstring(xml)
    found = []
    for disk in root.findall('./devices/disk'):
        source = disk.find('source')
        if source is None or disk.get('type') not in ('file', 'block'):
            continue  # empty CD-ROMs, network disks (shared by nature), volumes go by their path below
        path = source.get('file') or source.get('dev')
        if not path:
            continue
        driver = disk.find('driver')
        found.append(GuestFile(
            path, 'cdrom' if disk.get('device') == 'cdrom' else 'disk', target=disk.find('target').get('dev'),
            readonly=disk.find('readonly') is not None or disk.get('device') == 'cdrom',
            shareable=disk.find('shareable') is not None, kind=disk.get('type'),
            image_format=driver.get('type') if driver is not None else None))
    for tag in ('kernel', 'initrd', 'dtb', 'loader', 'nvram'):
        text = (root.findtext('./os/' + tag) or '').strip()
        if text:
            found.append(GuestFile(text, tag))
    return found


def volume_disk_paths(xml, conn):
    """<disk type='volume'> sources resolved to their paths on conn's host, so the caller can treat them as
    files: {target: (pool name, path)}."""
    root = ET.fromstring(xml)
    paths = {}
    for disk in root.findall("./devices/disk[@type='volume']"):
        source = disk.find('source')
        if source is None or not source.get('pool'):
            continue
        pool = conn.storagePoolLookupByName(source.get('pool'))
        path = pool.storageVolLookupByName(source.get('volume')).path()
        paths[disk.find('target').get('dev')] = (source.get('pool'), path)
    return paths


class Volume(object):
    """What a host's libvirt says of one file: size, allocation, format, backing file."""

    def __init__(self, vol):
        self.vol = vol
        root = ET.fromstring(vol.XMLDesc(0))
        self.path = vol.path()
        self.capacity = int(root.findtext('capacity') or 0)
        self.physical = int(root.findtext('physical') or root.findtext('allocation') or 0)
        target_format = root.find('./target/format')
        self.image_format = target_format.get('type') if target_format is not None else 'raw'
        self.backing = (root.findtext('./backingStore/path') or '').strip() or None
        backing_format = root.find('./backingStore/format')
        self.backing_format = backing_format.get('type') if backing_format is not None else None


class HostFiles(object):
    """One host's files, through its libvirt connection (the pools that hold them)."""

    def __init__(self, conn, host):
        self.conn = conn
        self.host = host
        self._pools = None
        self.transient_pools = []

    def _pool_targets(self):
        if self._pools is None:
            self._pools = {}
            for pool in self.conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
                target = ET.fromstring(pool.XMLDesc(0)).findtext('./target/path')
                if target:
                    self._pools.setdefault(os.path.normpath(target), pool)
        return self._pools

    def pool_for(self, directory, transient=True):
        """The active pool whose target is directory; with transient, one started over it when there is none.
        None when there is none (or the directory is missing)."""
        directory = os.path.normpath(directory)
        pool = self._pool_targets().get(directory)
        if pool is not None or not transient or directory.startswith('/dev'):
            return pool
        name = TRANSIENT_POOL_PREFIX + hashlib.sha256(directory.encode('utf-8')).hexdigest()[:12]
        xml = "<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>" % (name, _xml_text(directory))
        try:
            pool = self.conn.storagePoolCreateXML(xml, 0)
        except libvirt.libvirtError as exc:
            if is_error(exc, 'VIR_ERR_STORAGE_POOL_BUILT', 'VIR_ERR_OPERATION_FAILED', 'VIR_ERR_SYSTEM_ERROR',
                        'VIR_ERR_INTERNAL_ERROR', 'VIR_ERR_NO_STORAGE_POOL'):
                return None
            raise
        self.transient_pools.append(pool)
        self._pools[directory] = pool
        return pool

    def find(self, path):
        """The Volume at path, or None when it is not there."""
        pool = self.pool_for(os.path.dirname(path))
        if pool is None:
            return None
        try:
            vol = pool.storageVolLookupByName(os.path.basename(path))
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_STORAGE_VOL'):
                raise
            pool.refresh(0)
            try:
                vol = pool.storageVolLookupByName(os.path.basename(path))
            except libvirt.libvirtError as again:
                if is_error(again, 'VIR_ERR_NO_STORAGE_VOL'):
                    return None
                raise
        return Volume(vol)

    def pool_named(self, name):
        try:
            pool = self.conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if is_error(exc, 'VIR_ERR_NO_STORAGE_POOL'):
                return None
            raise
        return pool if pool.isActive() else None

    def can_create(self, path):
        return self.pool_for(os.path.dirname(path)) is not None

    def create(self, path, capacity, image_format, backing=None, backing_format=None):
        """An empty image at path (in the pool of its directory); returns the libvirt volume."""
        pool = self.pool_for(os.path.dirname(path))
        pool_type = ET.fromstring(pool.XMLDesc(0)).get('type')
        parts = ["<volume><name>%s</name><capacity unit='bytes'>%d</capacity><allocation>0</allocation>"
                 % (_xml_text(os.path.basename(path)), capacity)]
        if pool_type in ('dir', 'fs', 'netfs'):
            parts.append("<target><format type='%s'/></target>" % image_format)
            if backing:
                parts.append("<backingStore><path>%s</path><format type='%s'/></backingStore>"
                             % (_xml_text(backing), backing_format or 'raw'))
        parts.append('</volume>')
        return pool.createXML(''.join(parts), 0)

    def remove(self, vol):
        try:
            vol.delete(0)
        except libvirt.libvirtError:
            pass  # best effort: the failure being reported matters more

    def stop_transient_pools(self):
        for pool in self.transient_pools:
            try:
                pool.destroy()
            except libvirt.libvirtError:
                pass
        self.transient_pools = []
        self._pools = None


def copy_file(source, destination, source_volume, destination_path):
    """The bytes of source_volume (a Volume on source) into a new file at destination_path on destination,
    holes kept; returns the new libvirt volume. The copy is removed again when the transfer fails."""
    new = destination.create(destination_path, source_volume.physical, 'raw')
    download = source.conn.newStream(0)
    upload = destination.conn.newStream(0)
    try:
        source_volume.vol.download(download, 0, 0, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
        new.upload(upload, 0, 0, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)

        def data(_stream, chunk, _opaque):
            _send(upload, chunk)
            return 0

        def hole(_stream, length, _opaque):
            upload.sendHole(length, 0)
            return 0
        download.sparseRecvAll(data, hole, None)
        download.finish()
        upload.finish()
    except libvirt.libvirtError:
        for stream in (download, upload):
            try:
                stream.abort()
            except libvirt.libvirtError:
                pass
        destination.remove(new)
        raise
    return new


def _send(stream, chunk):
    view = memoryview(chunk)
    while view:
        sent = stream.send(bytes(view[:COPY_CHUNK]))
        view = view[sent:]


def _xml_text(text):
    return text.replace('&', '&amp;').replace('<', '&lt;').replace("'", '&apos;')


class FilePlan(object):
    """What one guest file needs on the destination: ``action`` none, create (an empty image for libvirt's
    copy) or copy (its bytes); ``reason`` says why in the result."""

    def __init__(self, guest_file, action, reason, volume=None, backing=None):
        self.file = guest_file
        self.action = action
        self.reason = reason
        self.volume = volume  # the source Volume (create: its size and format; copy: its bytes)
        self.backing = backing

    def describe(self, host):
        if self.action == 'create':
            what = 'an overlay on %s' % self.backing if self.backing else 'an empty %s image' % self.volume.image_format
            return 'create %s on %s for %s' % (what, host, self.file.label)
        return 'copy %s to %s' % (self.file.label, host)


def plan_files(files, storage, live, source, destination):
    """A FilePlan for every file that needs something on the destination, and the reasons why the move cannot
    go (each a sentence naming the file and the host). storage: shared, copy or copy_incremental."""
    plans, problems = [], []
    for guest_file in files:
        there = destination.find(guest_file.path)
        moves = storage != 'shared' and (guest_file.target is not None or guest_file.role == 'nvram') \
            and not guest_file.shareable
        if not moves:
            if there is None and _can_look(destination, guest_file):
                problems.append('%s is not on %s%s' % (guest_file.label, destination.host,
                                                       _shared_hint(guest_file, storage)))
            continue
        here = source.find(guest_file.path)
        if here is None:
            problems.append('%s cannot be read on %s through libvirt (no pool holds it)'
                            % (guest_file.label, source.host))
            continue
        if there is not None:
            problem = _compare_existing(guest_file, here, there, destination.host, storage, live)
            if problem:
                problems.append(problem)
            continue
        if not destination.can_create(guest_file.path):
            problems.append('%s cannot be created on %s: its directory %s is missing there and no pool holds it'
                            % (guest_file.label, destination.host, os.path.dirname(guest_file.path)))
        elif guest_file.readonly or guest_file.target is None or not live:
            plans.append(FilePlan(guest_file, 'copy', 'offline' if not live else 'not copied by libvirt', here))
            if not live and here.backing:
                problems.extend(_backing_problems(here, storage, source, destination, plans))
        elif storage == 'copy':
            plans.append(FilePlan(guest_file, 'create', 'storage copy', here))
        elif here.backing and destination.find(here.backing) is None:
            problems.append('the backing file %s of %s is not on %s: copy_incremental copies the top image only; '
                            'put the backing file there first, or use storage copy'
                            % (here.backing, guest_file.label, destination.host))
        else:
            plans.append(FilePlan(guest_file, 'create', 'storage copy_incremental', here, backing=here.backing))
    return plans, problems


def _can_look(host, guest_file):
    """Whether a missing file is known to be missing: block devices are seen only through a pool."""
    return guest_file.kind != 'block' or host.pool_for(os.path.dirname(guest_file.path), transient=False) is not None


def _backing_problems(volume, storage, source, destination, plans):
    """Offline moves copy files as they are: the backing chain must be on the destination, or with storage
    copy its missing members are copied too."""
    problems = []
    backing = volume.backing
    while backing:
        there = destination.find(backing)
        if there is not None:
            return problems
        here = source.find(backing)
        if here is None:
            return problems + ['the backing file %s cannot be read on %s' % (backing, source.host)]
        if storage == 'copy_incremental':
            return problems + ['the backing file %s is not on %s: copy_incremental copies the top image only'
                               % (backing, destination.host)]
        if not destination.can_create(backing):
            return problems + ['the backing file %s cannot be created on %s: its directory is missing there'
                               % (backing, destination.host)]
        plans.append(FilePlan(GuestFile(backing, 'backing file'), 'copy', 'backing file', here))
        backing = here.backing
    return problems


def _compare_existing(guest_file, here, there, host, storage, live):
    if guest_file.readonly or not live:
        if there.physical != here.physical:
            return ('%s is on %s already with another size (%d bytes there, %d here): remove it there, or move '
                    'with storage shared' % (guest_file.label, host, there.physical, here.physical))
        return None
    if there.capacity < here.capacity or there.image_format != here.image_format:
        return ('%s is on %s already as a %s image of %d bytes, the disk is a %s image of %d bytes: remove it '
                'there first' % (guest_file.label, host, there.image_format, there.capacity, here.image_format,
                                 here.capacity))
    if storage == 'copy_incremental':
        # Clusters the source's top image does not hold would show the old file's data there.
        return ('%s is on %s already: copy_incremental copies only what the top image holds, so an older file '
                'there would show through; remove it there first, or use storage copy' % (guest_file.label, host))
    return None


def _shared_hint(guest_file, storage):
    if guest_file.target is not None and storage == 'shared':
        return ': storage shared expects the same path on both hosts (use storage copy to copy the disk)'
    return ''


class StorageFailure(ModuleFailure):
    """The destination's files could not be prepared."""
