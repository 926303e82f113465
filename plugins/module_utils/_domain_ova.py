# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain_ova: write an OVA appliance of a shut-off libvirt domain, again only when the domain changed.

Read, compare, act. The domain's inactive definition is read once and described (:func:`describe_domain`: name,
description, vCPUs, memory, firmware, disks, CD-ROM drives, NICs with MAC and model); each disk is read with
qemu-img info and stat. Their digest (:func:`source_digest`) is written into the OVA (a section of its own,
``ovf:required="false"``), so a rerun compares it with the one in the existing OVA and writes nothing when they
match. A write converts each disk to a streamOptimized VMDK in a temporary directory beside the OVA, writes the
tar to a temporary file there and renames it over the path: a failure leaves the old OVA (or none) and no
temporary file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET

from ansible.module_utils.common.text.converters import to_native
from ansible_collections.virtops.hypervisor.plugins.module_utils import _ovf
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import LibvirtFailure, read_domain
from ansible_collections.virtops.hypervisor.plugins.module_utils._qemu_img import QemuImg, clean_error

# Bump when the OVA written from the same domain changes, so that reruns write the new form once.
OVA_FORMAT = 1
# libosinfo short ids (domain metadata) -> VirtualBox OS types; the first match of a prefix wins.
OSINFO_VBOX = (('debian', 'Debian_64'), ('ubuntu', 'Ubuntu_64'), ('fedora', 'Fedora_64'), ('rhel', 'RedHat_64'),
               ('centos', 'RedHat_64'), ('rocky', 'RedHat_64'), ('almalinux', 'RedHat_64'),
               ('opensuse', 'OpenSUSE_64'), ('sles', 'OpenSUSE_64'), ('freebsd', 'FreeBSD_64'),
               ('win11', 'Windows11_64'), ('win10', 'Windows10_64'), ('win2k19', 'Windows2019_64'))
MEMORY_UNITS = {'b': 1, 'bytes': 1, 'k': 1 << 10, 'kib': 1 << 10, 'kb': 1000, 'm': 1 << 20, 'mib': 1 << 20,
                'mb': 1000 ** 2, 'g': 1 << 30, 'gib': 1 << 30, 'gb': 1000 ** 3}


def describe_domain(xml):
    """The hardware description (as _ovf.envelope takes it, without disk files) of a libvirt domain XML."""
    root = ET.fromstring(xml)
    memory = root.find('memory')
    unit = (memory.get('unit') or 'KiB').lower()
    os_elem = root.find('os')
    loader = os_elem.find('loader') if os_elem is not None else None
    efi = os_elem is not None and (os_elem.get('firmware') == 'efi' or (
        loader is not None and loader.get('type') == 'pflash'))
    vm = {'name': root.findtext('name'), 'description': (root.findtext('description') or '').strip() or None,
          'vcpus': int(root.findtext('vcpu') or 1),
          'memory': int(memory.text) * MEMORY_UNITS.get(unit, 1 << 10) // (1 << 20),
          'firmware': 'efi' if efi else 'bios', 'ostype': _ostype(root), 'disks': [], 'cdroms': [], 'nics': []}
    for disk in root.findall('devices/disk'):
        target = disk.find('target')
        bus = target.get('bus') if target is not None else None
        source = disk.find('source')
        if disk.get('device', 'disk') == 'cdrom':
            vm['cdroms'].append({'bus': bus, 'target': target.get('dev') if target is not None else None})
            continue
        if disk.get('device', 'disk') != 'disk':
            continue
        driver = disk.find('driver')
        vm['disks'].append({'bus': bus, 'target': target.get('dev') if target is not None else None,
                            'format': driver.get('type') if driver is not None else None,
                            'source': _source(disk.get('type'), source)})
    for interface in root.findall('devices/interface'):
        mac = interface.find('mac')
        model = interface.find('model')
        vm['nics'].append({'mac': mac.get('address').lower() if mac is not None else None,
                           'model': model.get('type') if model is not None else 'rtl8139'})
    return vm


def _source(kind, source):
    if source is None:
        return None
    if kind == 'volume':
        return {'pool': source.get('pool'), 'volume': source.get('volume')}
    return source.get('file') or source.get('dev')


def _ostype(root):
    for elem in root.iter():
        if elem.tag.endswith('}os') and elem.get('id'):
            short = elem.get('id').rstrip('/').rsplit('/', 2)
            name = ''.join(short[-2:]).lower()
            for prefix, ostype in OSINFO_VBOX:
                if name.startswith(prefix) or prefix in elem.get('id'):
                    return ostype
    return None


def source_digest(vm, disks, ostype):
    """The digest of what an OVA is made from: the description and each disk's identity (stat, format, size)."""
    data = {'format': OVA_FORMAT, 'vm': dict(vm, disks=[dict(disk, source=None) for disk in vm['disks']]),
            'disks': disks, 'ostype': ostype}
    return 'sha256:' + hashlib.sha256(json.dumps(data, sort_keys=True).encode('utf-8')).hexdigest()


def summary(vm):
    """What diff mode shows of an appliance: the settings an import takes from it."""
    if vm is None:
        return {'exists': False}
    return {'exists': True, 'name': vm['name'], 'ostype': vm.get('ostype'), 'vcpus': vm['vcpus'],
            'memory': vm['memory'], 'firmware': vm['firmware'],
            'disks': [{'file': disk.get('file'), 'capacity': disk.get('capacity'), 'bus': disk.get('bus')}
                      for disk in vm['disks']],
            'cdroms': len(vm.get('cdroms') or []),
            'nics': [{'mac': nic.get('mac'), 'model': nic.get('model')} for nic in vm['nics']],
            'source_digest': vm.get('source_digest')}


class DomainOVA(object):
    """Converge one OVA file on one shut-off domain."""

    def __init__(self, module, conn, result):
        self.module = module
        self.params = module.params
        self.conn = conn
        self.result = result
        self.path = os.path.abspath(self.params['path'])
        self.reasons = []

    def run(self):
        name = self.params['name']
        self.result.set(path=self.path, reasons=self.reasons)
        if not self.path.endswith('.ova'):
            raise LibvirtFailure('path %s must end with .ova (the appliance is one tar file)' % self.path,
                                 about=self.path)
        if not os.path.isdir(os.path.dirname(self.path)):
            raise LibvirtFailure('the directory of %s does not exist: create it first; nothing was written'
                                 % self.path, about=self.path)
        reading = read_domain(self.conn, name)
        if reading is None:
            raise LibvirtFailure("domain '%s' does not exist; nothing was written" % name, about="domain '%s'" % name)
        if reading.state != 'shutoff':
            raise LibvirtFailure("domain '%s' is %s: its disks change while it runs, so an OVA of them would not be "
                                 "consistent. Shut it down first (virtops.hypervisor.libvirt_domain state=shutdown) and "
                                 "run again; nothing was written" % (name, reading.state), about="domain '%s'" % name)
        vm = describe_domain(reading.xml)
        vm['name'] = self.params['ova_name'] or vm['name']
        ostype = self.params['ostype'] or vm['ostype'] or 'Other_64'
        vm['ostype'] = ostype
        qemu = QemuImg(self.module)
        identities = []
        for index, disk in enumerate(vm['disks']):
            disk['path'] = self._disk_path(name, index, disk)
            info = qemu.info(disk['path'], fmt=disk['format'])
            if info is None:
                raise LibvirtFailure("disk %s of domain '%s' does not exist; nothing was written"
                                     % (disk['path'], name), about="domain '%s'" % name)
            st = os.stat(disk['path'])
            disk.update(capacity=info['virtual_size'], format=info['format'],
                        file='%s-disk%d.vmdk' % (vm['name'], index + 1))
            identities.append({'path': disk['path'], 'size': st.st_size, 'mtime_ns': st.st_mtime_ns,
                               'inode': st.st_ino, 'format': info['format'], 'virtual_size': info['virtual_size']})
        digest = source_digest(vm, identities, ostype)
        before = self._existing()
        self.result.set(source_digest=digest, appliance=summary(dict(vm, source_digest=digest)))
        if before is None:
            self.reasons.append('%s does not exist' % self.path)
        elif self.params['force']:
            self.reasons.append('force: true')
        elif before.get('source_digest') != digest:
            self.reasons.append('written from another state of the domain or its disks (source digest %s, now %s)'
                                % (before.get('source_digest'), digest))
        after = dict(vm, source_digest=digest)
        self.result.add_diff(summary(before), summary(after) if self.reasons else summary(before),
                             self.path, self.path)
        if self.reasons:
            self.result.perform('write', self._write, qemu, vm, digest)

    def _disk_path(self, name, index, disk):
        source = disk['source']
        if isinstance(source, dict):
            pool = self.conn.storagePoolLookupByName(source['pool'])
            return pool.storageVolLookupByName(source['volume']).path()
        if not source:
            raise LibvirtFailure("disk %d (%s) of domain '%s' has no source: an OVA needs every disk's image"
                                 % (index + 1, disk.get('target'), name), about="domain '%s'" % name)
        return source

    def _existing(self):
        if not os.path.exists(self.path):
            return None
        try:
            return _ovf.read_appliance(self.path)
        except _ovf.OVFError as exc:
            self.reasons.append('the existing file cannot be read as an OVA (%s)' % exc)
            return None

    def _write(self, qemu, vm, digest):
        directory = os.path.dirname(self.path)
        work = tempfile.mkdtemp(prefix='.%s.' % os.path.basename(self.path), suffix='.tmp', dir=directory)
        try:
            files = []
            for disk in vm['disks']:
                vmdk = os.path.join(work, disk['file'])
                rc, _out, err = qemu.run(['convert', '-f', disk['format'], '-O', 'vmdk', '-o',
                                          'subformat=streamOptimized', disk['path'], vmdk])
                if rc != 0:
                    raise LibvirtFailure('cannot convert %s to a streamOptimized VMDK for %s: %s; nothing was written'
                                         % (disk['path'], self.path, clean_error(err)), about=self.path)
                files.append((disk['file'], vmdk))
            ovf_name = '%s.ovf' % vm['name']
            tmp = os.path.join(work, 'appliance.ova')
            try:
                with open(tmp, 'wb') as handle:
                    _ovf.write_ova(handle, ovf_name, _ovf.envelope(vm, digest), files)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o644)
                os.rename(tmp, self.path)
            except OSError as exc:
                raise LibvirtFailure('cannot write %s: %s; nothing was written' % (self.path, to_native(exc)),
                                     about=self.path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
