# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Clones for libvirt_domain: a new domain made from a shut-off one, with copies of its disks (or overlays on them).

describe (the source's definition -> which disks are copied, which are shared) -> plan (the volumes and the
NVRAM file the clone needs, each checked against the host: nothing is created until every item of the call
has been planned) -> carry out (create them, then define the clone; what was created is removed again
when a later step fails, so a failed clone leaves the host as it was).

Disks are copied through libvirt's storage pools only (createXMLFrom, or a qcow2 volume with a backing
store for linked clones), so a clone works over any connection libvirt offers. The clone's volumes go into
a pool whose volumes are files (dir, fs, netfs): their paths are known before they exist, which makes the
check-mode diff exact.
"""

from __future__ import annotations

import copy
import os
import shutil
import xml.etree.ElementTree as ET

from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_options import where
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    LibvirtFailure, error_text, is_error, libvirt, read_domain)

FILE_POOL_TYPES = ('dir', 'fs', 'netfs')
NVRAM_FILE = '%s_VARS.fd'  # libvirt's own name for a domain's NVRAM file
ACTIVE_STATE_WORDS = {'shutdown': 'shutting down', 'pmsuspended': 'suspended by its guest (pmsuspended)'}


# --- describe (pure) -------------------------------------------------------------------------------

def volume_name(clone, target, image_format):
    """The name of the volume a clone gets for one disk: ``<clone>-<target>.<format>``."""
    return '%s-%s.%s' % (clone, target, image_format)


def is_shared(disk):
    """A disk the clone uses as it is: CD-ROMs and floppies, read-only and shareable disks, empty drives."""
    return (disk.get('device', 'disk') != 'disk' or disk.find('readonly') is not None
            or disk.find('shareable') is not None or disk.find('source') is None)


def disk_format(disk):
    driver = disk.find('driver')
    return (driver.get('type') if driver is not None else None) or 'raw'


def nvram_path(root):
    """The NVRAM file of a definition, or None; raises when the NVRAM is not a file."""
    nvram = root.find('os/nvram')
    if nvram is None:
        return None
    if nvram.get('type') not in (None, 'file'):
        raise ValueError("NVRAM of type '%s'" % nvram.get('type'))
    source = nvram.find('source')
    path = (nvram.text or '').strip() or (source.get('file') if source is not None else None)
    return path or None


def clone_definition(source_root, name, copies, nvram=None):
    """The source's definition made into the clone's: its name, no UUID and no MAC addresses (libvirt gives
    the clone new ones), each copied disk on its new volume, its own NVRAM file.

    copies maps a disk target (vda) to the DiskCopy that replaces its source; nvram is the clone's NVRAM path.
    """
    root = copy.deepcopy(source_root)
    root.find('name').text = name
    for uuid in root.findall('uuid'):
        root.remove(uuid)
    for system in root.findall('sysinfo/system'):
        for entry in system.findall("entry[@name='uuid']"):  # libvirt refuses one that differs from <uuid>
            system.remove(entry)
    for interface in root.findall('devices/interface'):
        for tag in ('mac', 'target'):  # the tap device name is the source's too
            for elem in interface.findall(tag):
                interface.remove(elem)
    for disk in root.findall('devices/disk'):
        if dx.target_dev(disk) in copies:
            copies[dx.target_dev(disk)].point(disk)
    if nvram is not None:
        elem = root.find('os/nvram')
        for child in list(elem):
            elem.remove(child)
        elem.text = nvram
        elem.attrib.pop('type', None)
    return root


class DiskCopy(object):
    """One disk of the source and the volume the clone gets for it."""

    def __init__(self, target, source_vol, source_path, source_format, pool, pool_path, name, linked, as_volume):
        self.target = target
        self.source_vol = source_vol
        self.source_path = source_path
        self.source_format = source_format
        self.pool = pool  # the virStoragePool the new volume goes into
        self.name = name
        self.path = os.path.join(pool_path, name)
        self.linked = linked
        self.format = 'qcow2' if linked else source_format
        self.as_volume = as_volume  # the source disk names a pool volume: so does the clone's

    def point(self, disk):
        """Make a <disk> of the clone use the new volume."""
        position = len(disk)
        for old in disk.findall('source') + disk.findall('backingStore'):
            position = min(position, list(disk).index(old))
            disk.remove(old)
        if self.as_volume:
            disk.set('type', 'volume')
            source = ET.Element('source', {'pool': self.pool.name(), 'volume': self.name})
        else:
            disk.set('type', 'file')
            source = ET.Element('source', {'file': self.path})
        disk.insert(position, source)
        driver = disk.find('driver')
        if driver is None:
            driver = ET.Element('driver', {'name': 'qemu'})
            disk.insert(0, driver)
        driver.set('type', self.format)

    def volume_xml(self, capacity):
        volume = ET.Element('volume')
        ET.SubElement(volume, 'name').text = self.name
        ET.SubElement(volume, 'capacity', {'unit': 'bytes'}).text = str(capacity)
        ET.SubElement(volume, 'allocation', {'unit': 'bytes'}).text = '0'
        ET.SubElement(ET.SubElement(volume, 'target'), 'format', {'type': self.format})
        if self.linked:
            backing = ET.SubElement(volume, 'backingStore')
            ET.SubElement(backing, 'path').text = self.source_path
            ET.SubElement(backing, 'format', {'type': self.source_format})
        return ET.tostring(volume, encoding='unicode')

    def create(self):
        """Create the volume (a copy, or an overlay on the source); returns it."""
        xml = self.volume_xml(self.source_vol.info()[1])
        if self.linked:
            return self.pool.createXML(xml, 0)
        return self.pool.createXMLFrom(xml, self.source_vol, 0)

    def report(self):
        return {'target': self.target, 'source': self.source_path, 'pool': self.pool.name(), 'volume': self.name,
                'path': self.path, 'format': self.format, 'backing': self.source_path if self.linked else None}


class NvramCopy(object):
    """The clone's own NVRAM file: a copy of the source's (none yet: libvirt makes it from the template)."""

    def __init__(self, source, path):
        self.source = source
        self.path = path
        self.copied = os.path.exists(source)

    def create(self):
        if self.copied:
            copy_file_once(self.source, self.path)

    def remove(self):
        if self.copied and os.path.exists(self.path):
            os.remove(self.path)

    def report(self):
        return {'source': self.source, 'path': self.path, 'copied': self.copied}


def copy_file_once(source, target):
    """Copy source to target with its mode and owner; never over an existing target, never a partial one."""
    partial = os.path.join(os.path.dirname(target), '.%s.%d.partial' % (os.path.basename(target), os.getpid()))
    try:
        shutil.copyfile(source, partial)
        shutil.copymode(source, partial)
        found = os.stat(source)
        if os.geteuid() == 0:
            os.chown(partial, found.st_uid, found.st_gid)
        os.link(partial, target)  # fails when the target appeared meanwhile: it is not ours to replace
    finally:
        if os.path.exists(partial):
            os.remove(partial)


class ClonePlan(object):
    """What making one clone takes, checked; ``carry_out`` does it."""

    def __init__(self, source, linked, pool, copies, nvram, shared, root):
        self.source = source
        self.linked = linked
        self.pool = pool
        self.copies = copies
        self.nvram = nvram
        self.shared = shared
        self.root = root  # the clone's definition before the item's structured options apply

    def carry_out(self, spec, define):
        """Create the volumes and the NVRAM file, then ``define()``; on a failure remove what was created."""
        created = []
        nvram_made = False
        try:
            for disk in self.copies:
                created.append(self._create_volume(spec, disk))
            if self.nvram is not None:
                self._create_nvram(spec)
                nvram_made = True
            return define()
        except BaseException:
            for volume in reversed(created):
                try:
                    volume.delete(0)
                except libvirt.libvirtError:
                    pass
            if nvram_made:
                self.nvram.remove()
            raise

    def _create_volume(self, spec, disk):
        try:
            return disk.create()
        except libvirt.libvirtError as exc:
            what = 'an overlay on' if self.linked else 'a copy of'
            raise LibvirtFailure("%scannot create volume '%s' in pool '%s' as %s disk %s (%s) of domain '%s': %s. "
                                 "Nothing was left behind." % (where(spec.label), disk.name, disk.pool.name(), what,
                                                               disk.target, disk.source_path, self.source,
                                                               error_text(exc)),
                                 about="domain '%s'" % spec.name)

    def _create_nvram(self, spec):
        try:
            self.nvram.create()
        except OSError as exc:
            raise LibvirtFailure("%scannot copy the NVRAM file %s of domain '%s' to %s: %s. Nothing was left behind."
                                 % (where(spec.label), self.nvram.source, self.source, self.nvram.path, exc),
                                 about="domain '%s'" % spec.name)

    def report(self):
        return {'source': self.source, 'linked': self.linked, 'pool': self.pool.name() if self.pool else None,
                'volumes': [disk.report() for disk in self.copies],
                'nvram': self.nvram.report() if self.nvram else None, 'shared': self.shared}


# --- plan (reads the host) -------------------------------------------------------------------------

class ClonePlanner(object):
    """Plans clones: reads each source, the pools and what the clone would create (names are the clone's own:
    clones of one call cannot collide, as their names are unique)."""

    def __init__(self, conn, uri):
        self.conn = conn
        self.uri = uri

    def plan(self, spec):
        """The ClonePlan of a clone that does not exist yet; raises LibvirtFailure naming what stands in the way."""
        label = where(spec.label + '.clone_from' if spec.label else 'clone_from')
        failure = _Failures(label, spec.name)
        asked = spec.clone_from
        source = self._source(asked['name'], failure)
        root = dx.parse(source.xml, "the definition of domain '%s'" % asked['name'])
        disks = [disk for disk in root.findall('devices/disk') if not is_shared(disk)]
        volumes = [self._source_volume(asked['name'], disk, failure) for disk in disks]
        pool = self._target_pool(asked, volumes, failure)
        copies = []
        for disk, volume in zip(disks, volumes):
            copies.append(self._disk_copy(spec, disk, volume, pool, failure))
        nvram = self._nvram(spec, root, failure)
        shared = [dx.disk_source(disk)[1] for disk in root.findall('devices/disk')
                  if is_shared(disk) and dx.disk_source(disk) is not None]
        clone_root = clone_definition(root, spec.name, dict((disk.target, disk) for disk in copies),
                                      nvram.path if nvram else None)
        return ClonePlan(asked['name'], asked['linked'], pool, copies, nvram, shared, clone_root)

    def _source(self, name, failure):
        source = read_domain(self.conn, name)
        if source is None:
            raise failure("domain '%s' to clone does not exist at %s" % (name, self.uri))
        if source.active:
            raise failure("domain '%s' to clone is %s; shut it down first: its disks must not change while they are "
                          "copied" % (name, ACTIVE_STATE_WORDS.get(source.state, source.state)))
        if source.managed_save:
            raise failure("domain '%s' to clone has a saved state (managed save) that its disks belong to; start it "
                          "and shut it down first, or remove the saved state (virsh managedsave-remove %s)"
                          % (name, name))
        return source

    def _source_volume(self, source, disk, failure):
        """The storage volume behind a disk of the source; a disk libvirt knows no volume of is refused."""
        target = dx.target_dev(disk)
        found = dx.disk_source(disk)
        if found is None:
            raise failure("disk %s of domain '%s' is of type %s, which cannot be cloned; only file, block and volume "
                          "disks in a storage pool can" % (target, source, disk.get('type')))
        kind, value = found
        try:
            if kind == 'volume':
                pool, name = value.split('/', 1)
                return self.conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
            return self.conn.storageVolLookupByPath(value)
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_STORAGE_VOL', 'VIR_ERR_NO_STORAGE_POOL'):
                raise
        if kind == 'volume':
            raise failure("disk %s of domain '%s' is volume %s, which does not exist" % (target, source, value))
        hint = ('a block device outside a storage pool is not cloned: put it into a logical or disk pool, or detach it '
                'from the source first' if kind == 'block' else
                'define and start a dir pool with target %s (virsh pool-define-as NAME dir --target %s) so that '
                'libvirt can copy it' % (os.path.dirname(value), os.path.dirname(value)))
        raise failure("disk %s of domain '%s' (%s) is not a volume of an active storage pool; %s"
                      % (target, source, value, hint))

    def _target_pool(self, asked, volumes, failure):
        if asked.get('pool'):
            name, why = asked['pool'], "pool '%s'" % asked['pool']
        elif volumes:
            name = volumes[0].storagePoolLookupByVolume().name()
            why = "pool '%s' (the pool of the first disk of domain '%s'; set clone_from.pool for another)" \
                % (name, asked['name'])
        else:
            return None
        try:
            pool = self.conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_STORAGE_POOL'):
                raise
            raise failure('storage %s does not exist' % why)
        if not pool.isActive():
            raise failure('storage %s is not active; start it first' % why)
        pool_type = ET.fromstring(pool.XMLDesc(0)).get('type')
        if pool_type not in FILE_POOL_TYPES:
            raise failure('storage %s is of type %s; clones go into pools of type %s'
                          % (why, pool_type, ', '.join(FILE_POOL_TYPES)))
        try:
            pool.refresh(0)  # volumes made outside libvirt since the pool was started
        except libvirt.libvirtError:
            pass  # another job on the pool: what libvirt lists is still what it will refuse to overwrite
        return pool

    def _disk_copy(self, spec, disk, volume, pool, failure):
        target = dx.target_dev(disk)
        linked = spec.clone_from['linked']
        image_format = disk_format(disk)
        name = volume_name(spec.name, target, 'qcow2' if linked else image_format)
        pool_path = ET.fromstring(pool.XMLDesc(0)).findtext('target/path')
        planned = DiskCopy(target, volume, volume.path(), image_format, pool, pool_path, name, linked,
                           as_volume=disk.get('type') == 'volume')
        try:
            pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_STORAGE_VOL'):
                raise
        else:
            raise failure("volume '%s' (%s) that the clone would create for disk %s already exists in pool '%s'; "
                          "remove it, or give the clone another name" % (name, planned.path, target, pool.name()))
        return planned

    def _nvram(self, spec, root, failure):
        try:
            source = nvram_path(root)
        except ValueError as exc:
            raise failure("domain '%s' to clone has %s, which cannot be cloned" % (spec.clone_from['name'], exc))
        if source is None:
            return None
        if urlparse(self.uri).netloc:
            raise failure("domain '%s' to clone has an NVRAM file (UEFI), which is copied only when the module runs on "
                          "the hypervisor itself: use a uri without a host (qemu:///system) and delegate the task to "
                          "the hypervisor" % spec.clone_from['name'])
        nvram = NvramCopy(source, os.path.join(os.path.dirname(source), NVRAM_FILE % spec.name))
        if os.path.lexists(nvram.path):
            raise failure("the NVRAM file %s that the clone would get already exists; remove it, or give the clone "
                          "another name" % nvram.path)
        return nvram


class _Failures(object):
    """LibvirtFailures about one clone: prefixed with where it was asked, about the domain to create."""

    def __init__(self, label, name):
        self.label = label
        self.name = name

    def __call__(self, message):
        return LibvirtFailure(self.label + message, about="domain '%s'" % self.name)
