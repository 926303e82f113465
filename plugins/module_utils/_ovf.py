# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""OVF appliances without a hypervisor: read an envelope into a plain hardware description, write one back.

Pure Python (xml.etree, tarfile, hashlib): it runs on targets. :func:`read_appliance` reads a ``.ovf`` (and the
files beside it) or the ``.ovf`` member of an ``.ova`` tar without extracting the disks, and returns what a VM
needs on another hypervisor: name, description, OS type, vCPUs, memory in MiB, firmware, disks (file, format,
capacity, controller, bus, where they are in the archive), CD/DVD drives and NICs (model mapped to libvirt's,
MAC address, network). :func:`envelope` writes an OVF 1.0 envelope from such a description, with a
``vbox:Machine`` section as VirtualBox writes one (so VirtualBox imports firmware, MACs and adapter types),
:func:`manifest` its SHA256 manifest, and :func:`write_ova` the tar in VirtualBox's order (ovf, mf, disks).

Facts from VirtualBox 7.2's ``VBoxManage export`` (the unit tests read such an export):
- the OVF 1.0 hardware items name no MAC and, for a virtio NIC, no adapter type; both are only in the
  ``vbox:Machine`` section (``Adapter MACAddress="5254001A2B3C" type="virtio"``), as is the firmware
  (``<Firmware type="EFI"/>``) and an empty DVD drive. VMware writes the firmware as
  ``<vmw:Config vmw:key="firmware" vmw:value="efi"/>``;
- disks are streamOptimized VMDK; no manifest unless ``--manifest``; members are in a plain (ustar) tar.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import uuid
import xml.etree.ElementTree as ET

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure

OVF_NS = 'http://schemas.dmtf.org/ovf/envelope/1'
RASD_NS = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData'
VSSD_NS = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData'
VBOX_NS = 'http://www.virtualbox.org/ovf/machine'
VMW_NS = 'http://www.vmware.com/schema/ovf'
XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance'
# The section this collection adds to the OVAs it writes: the digest of what the OVA was made from.
VIRTOPS_NS = 'urn:virtops:hypervisor:ova:1'
NAMESPACES = {'ovf': OVF_NS, 'rasd': RASD_NS, 'vssd': VSSD_NS, 'vbox': VBOX_NS, 'vmw': VMW_NS, 'virtops': VIRTOPS_NS}
STREAM_OPTIMIZED = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized'
# CIM resource types (DSP0243) of the items read here.
CPU, MEMORY, IDE, SCSI, NIC, CD, DVD, DISK, OTHER_STORAGE = 3, 4, 5, 6, 10, 15, 16, 17, 20
# Adapter types as OVF items (rasd:ResourceSubType) and VirtualBox (Adapter type) name them -> libvirt models.
NIC_MODELS = {
    'e1000': 'e1000', 'e1000e': 'e1000e', 'pcnet32': 'pcnet', 'pcnet': 'pcnet', 'vmxnet3': 'vmxnet3',
    'virtio': 'virtio', 'virtionet': 'virtio', 'virtio-net': 'virtio', 'rtl8139': 'rtl8139',
    '82540em': 'e1000', '82543gc': 'e1000', '82545em': 'e1000', 'am79c970a': 'pcnet', 'am79c973': 'pcnet',
    'am79c960': 'pcnet',
}
# libvirt model -> (OVF ResourceSubType, VirtualBox adapter type) for the OVAs written here.
VBOX_NIC = {'virtio': ('virtio', 'virtio'), 'e1000': ('E1000', '82540EM'), 'e1000e': ('E1000', '82540EM'),
            'pcnet': ('PCNet32', 'Am79C973'), 'rtl8139': ('E1000', '82540EM'), 'vmxnet3': ('E1000', '82540EM')}
# Storage controllers: (resource type, subtype) -> (controller, libvirt bus, VirtualBox type).
CONTROLLERS = {
    'ide': ('ide', 'ide', 'PIIX4'), 'sata': ('sata', 'sata', 'AHCI'), 'scsi': ('scsi', 'scsi', 'LsiLogic'),
    'sas': ('sas', 'scsi', 'LsiLogicSas'), 'nvme': ('nvme', 'sata', 'NVMe'), 'virtio': ('virtio', 'scsi', 'VirtioSCSI'),
}
# libvirt bus -> the controller the OVAs written here put such disks on.
BUS_CONTROLLER = {'virtio': 'sata', 'sata': 'sata', 'scsi': 'scsi', 'ide': 'ide', 'usb': 'sata'}
# CIM OS ids VirtualBox uses for its OS types (the common ones); unknown types are written as Other_64.
VBOX_OS_IDS = {'Other': 1, 'Other_64': 102, 'Linux': 36, 'Linux_64': 101, 'Debian': 95, 'Debian_64': 96,
               'Ubuntu': 93, 'Ubuntu_64': 94, 'RedHat': 79, 'RedHat_64': 80, 'Fedora': 100, 'Fedora_64': 101,
               'OpenSUSE': 36, 'OpenSUSE_64': 101, 'Windows10_64': 105, 'Windows11_64': 105, 'Windows2019_64': 105,
               'FreeBSD': 42, 'FreeBSD_64': 78}
UNITS = re.compile(r'^\s*byte\s*(?:\*\s*(\d+)\s*\^\s*(\d+))?\s*$', re.I)
NAMED_UNITS = {'bytes': 1, 'kilobytes': 1 << 10, 'megabytes': 1 << 20, 'gigabytes': 1 << 30, 'kb': 1 << 10,
               'mb': 1 << 20, 'gb': 1 << 30}
CHUNK = 1 << 20

for _prefix, _uri in (('ovf', OVF_NS), ('rasd', RASD_NS), ('vssd', VSSD_NS), ('vbox', VBOX_NS), ('xsi', XSI_NS),
                      ('virtops', VIRTOPS_NS)):
    ET.register_namespace(_prefix, _uri)
ET.register_namespace('', OVF_NS)


class OVFError(ModuleFailure):
    """The file is not an OVF appliance this module can read, or lacks a file its envelope names."""


def _q(prefix, tag):
    return '{%s}%s' % (NAMESPACES[prefix], tag)


def _attr(elem, name, prefix='ovf'):
    """An attribute in the OVF namespace, or without one (some writers leave the prefix out)."""
    value = elem.get(_q(prefix, name))
    return value if value is not None else elem.get(name)


def _text(elem, tag, prefix='rasd'):
    found = elem.find(_q(prefix, tag))
    return found.text.strip() if found is not None and found.text is not None else None


def scale(units):
    """Bytes per unit of an OVF allocation unit: 'byte * 2^20' -> 1048576, 'MegaBytes' -> 1048576."""
    if not units:
        return 1
    match = UNITS.match(units)
    if match:
        return int(match.group(1)) ** int(match.group(2)) if match.group(1) else 1
    factor = NAMED_UNITS.get(units.strip().lower())
    if factor is None:
        raise OVFError("unknown OVF allocation unit '%s'" % units)
    return factor


def mac_address(value):
    """'5254001A2B3C' or '52-54-00-1a-2b-3c' -> '52:54:00:1a:2b:3c'; None for anything else."""
    digits = re.sub(r'[^0-9a-fA-F]', '', value or '')
    if len(digits) != 12:
        return None
    return ':'.join(digits[i:i + 2] for i in range(0, 12, 2)).lower()


# --- reading ---------------------------------------------------------------------------------------------

def read_appliance(path):
    """The appliance at path (.ova tar, or .ovf with its files beside it): the envelope's hardware description
    plus where each file is. Reads only the envelope (and the tar's headers); fails naming a missing file."""
    members, text, ovf_name = _open(path)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise OVFError('%s: the OVF envelope %s is not well-formed XML (%s)' % (path, ovf_name, exc), about=path)
    if root.tag != _q('ovf', 'Envelope'):
        raise OVFError('%s: %s is XML but not an OVF envelope (root element %s, expected Envelope in %s)'
                       % (path, ovf_name, root.tag, OVF_NS), about=path)
    description = parse_envelope(root)
    files = description.pop('files')
    missing = sorted(name for name in files.values() if name not in members)
    if missing:
        raise OVFError('%s: the OVF names file(s) that are not in the %s: %s; the appliance is incomplete (copy it '
                       'again, or export it again)' % (path, 'archive' if path_is_ova(members) else 'directory',
                                                       ', '.join(missing)), about=path)
    for disk in description['disks'] + description['cdroms']:
        if disk.get('file'):
            disk.update(members[disk['file']])
    description.update(path=path, ovf=ovf_name, format='ova' if path_is_ova(members) else 'ovf',
                       files=[dict(members[name], name=name) for name in sorted(members) if name != ovf_name])
    return description


def path_is_ova(members):
    return any(item.get('offset') is not None for item in members.values())


def _open(path):
    """(members {name: {offset, size}} or {name: {path, size}}, envelope text, envelope name)."""
    try:
        is_tar = tarfile.is_tarfile(path)
    except OSError as exc:
        raise OVFError('cannot read %s: %s' % (path, exc), about=path)
    if is_tar:
        return _open_ova(path)
    try:
        with open(path, 'rb') as handle:
            text = handle.read()
    except OSError as exc:
        raise OVFError('cannot read %s: %s' % (path, exc), about=path)
    if not text.lstrip().startswith(b'<'):
        raise OVFError('%s is neither an OVA (a tar archive) nor an OVF envelope (XML): give the .ova file or the '
                       '.ovf of an appliance' % path, about=path)
    directory = os.path.dirname(path)
    members = {}
    for name in os.listdir(directory or '.'):
        full = os.path.join(directory, name)
        if os.path.isfile(full):
            members[name] = {'path': full, 'size': os.path.getsize(full)}
    return members, text, os.path.basename(path)


def _open_ova(path):
    try:
        with tarfile.open(path, 'r:') as archive:
            infos = [info for info in archive.getmembers() if info.isfile()]
            envelopes = [info for info in infos if info.name.lower().endswith('.ovf')]
            if not envelopes:
                raise OVFError('%s is a tar archive without an .ovf member: not an OVA' % path, about=path)
            # OVF 1.0 (DSP0243 5.3): the descriptor is the archive's first file.
            handle = archive.extractfile(envelopes[0])
            text = handle.read()
    except (tarfile.TarError, OSError) as exc:
        raise OVFError('cannot read the OVA %s: %s (it must be an uncompressed tar archive)' % (path, exc), about=path)
    members = {info.name: {'offset': info.offset_data, 'size': info.size} for info in infos}
    return members, text, envelopes[0].name


def parse_envelope(root):
    """The hardware description of the envelope's (first) virtual system; ``files`` maps file ids to names."""
    files = {_attr(ref, 'id'): _attr(ref, 'href') for ref in root.iter(_q('ovf', 'File'))}
    disks = {}
    for disk in root.iter(_q('ovf', 'Disk')):
        capacity = _attr(disk, 'capacity')
        fmt = _attr(disk, 'format') or ''
        disks[_attr(disk, 'diskId')] = {
            'file': files.get(_attr(disk, 'fileRef')),
            'capacity': int(capacity) * scale(_attr(disk, 'capacityAllocationUnits')) if capacity else None,
            'format': 'vmdk' if 'vmdk' in fmt.lower() else (fmt.rsplit('/', 1)[-1] or None),
            'subformat': fmt.rsplit('#', 1)[-1] if '#' in fmt else None,
            'format_uri': fmt,
        }
    system = root.find('.//' + _q('ovf', 'VirtualSystem'))
    if system is None:
        raise OVFError('the OVF envelope holds no VirtualSystem (a VirtualSystemCollection is not supported)')
    machine = system.find(_q('vbox', 'Machine'))
    hardware = system.find(_q('ovf', 'VirtualHardwareSection'))
    if hardware is None:
        raise OVFError('the virtual system %s has no VirtualHardwareSection' % _attr(system, 'id'))
    items = list(hardware.findall(_q('ovf', 'Item'))) + list(hardware.findall(_q('ovf', 'StorageItem'))) \
        + list(hardware.findall(_q('ovf', 'EthernetPortItem')))
    os_section = system.find(_q('ovf', 'OperatingSystemSection'))
    result = {
        'name': _attr(system, 'id'),
        'description': _section_text(system, 'AnnotationSection', 'Annotation'),
        'ostype': None, 'os_id': None, 'vcpus': None, 'memory': None,
        'firmware': _firmware(hardware, machine),
        'disks': [], 'cdroms': [], 'nics': [], 'boot_order': [],
        'source_digest': _source_digest(system),
        'files': files,
    }
    name_elem = system.find(_q('ovf', 'Name'))
    if name_elem is not None and name_elem.text:
        result['name'] = name_elem.text.strip()
    if os_section is not None:
        result['os_id'] = int(_attr(os_section, 'id')) if (_attr(os_section, 'id') or '').isdigit() else None
        vbox_os = os_section.find(_q('vbox', 'OSType'))
        result['ostype'] = (vbox_os.text.strip() if vbox_os is not None and vbox_os.text else
                            _section_text(system, 'OperatingSystemSection', 'Description'))
    controllers = {}
    for item in items:
        kind = int(_text(item, 'ResourceType') or 0)
        if kind == CPU:
            result['vcpus'] = int(_text(item, 'VirtualQuantity'))
        elif kind == MEMORY:
            result['memory'] = int(_text(item, 'VirtualQuantity')) * scale(_text(item, 'AllocationUnits')) // (1 << 20)
        elif kind in (IDE, SCSI, OTHER_STORAGE):
            controllers[_text(item, 'InstanceID')] = _controller(kind, _text(item, 'ResourceSubType'),
                                                                 _text(item, 'Address'))
    vbox_nics = _vbox_adapters(machine)
    for item in items:
        kind = int(_text(item, 'ResourceType') or 0)
        if kind in (DISK, CD, DVD):
            _storage_item(item, kind, controllers, disks, files, result)
        elif kind == NIC:
            result['nics'].append(_nic(item, vbox_nics[len(result['nics'])] if len(vbox_nics) > len(result['nics'])
                                       else None))
    _vbox_storage(machine, result)
    result['boot_order'] = _boot_order(machine)
    if result['vcpus'] is None:
        result['vcpus'] = 1
    return result


def _section_text(system, section, tag):
    elem = system.find('%s/%s' % (_q('ovf', section), _q('ovf', tag)))
    return elem.text.strip() if elem is not None and elem.text is not None else None


def _source_digest(system):
    section = system.find(_q('virtops', 'SourceSection'))
    return _text(section, 'Digest', 'virtops') if section is not None else None


def _firmware(hardware, machine):
    if machine is not None:
        firmware = machine.find('%s/%s' % (_q('ovf', 'Hardware'), _q('ovf', 'Firmware')))
        if firmware is None:
            firmware = machine.find('Hardware/Firmware')
        if firmware is not None:
            return 'efi' if (firmware.get('type') or '').upper().startswith('EFI') else 'bios'
    for config in hardware.iter(_q('vmw', 'Config')):
        if (config.get(_q('vmw', 'key')) or '') == 'firmware':
            return 'efi' if (config.get(_q('vmw', 'value')) or '').lower() == 'efi' else 'bios'
    return 'bios'


def _controller(kind, subtype, address):
    subtype = (subtype or '').lower()
    if kind == IDE:
        name = 'ide'
    elif kind == SCSI:
        name = 'sas' if 'sas' in subtype else ('virtio' if 'virtio' in subtype else 'scsi')
    elif 'nvme' in subtype:
        name = 'nvme'
    elif 'virtio' in subtype:
        name = 'virtio'
    else:
        name = 'sata'
    controller, bus, _vbox = CONTROLLERS[name]
    return {'controller': controller, 'bus': bus, 'index': int(address) if (address or '').isdigit() else 0}


def _storage_item(item, kind, controllers, disks, files, result):
    parent = controllers.get(_text(item, 'Parent'), {'controller': 'sata', 'bus': 'sata', 'index': 0})
    address = _text(item, 'AddressOnParent')
    slot = {'controller': parent['controller'], 'bus': parent['bus'], 'controller_index': parent['index'],
            'address': int(address) if (address or '').isdigit() else None}
    resource = _text(item, 'HostResource') or ''
    if kind == DISK:
        disk_id = resource.rsplit('/', 1)[-1]
        if disk_id not in disks:
            raise OVFError("a disk item refers to '%s', which the DiskSection does not define" % resource)
        disk = dict(disks[disk_id], disk_id=disk_id, **slot)
        if disk['file'] is None:
            raise OVFError("disk '%s' has no file in the OVF (an empty disk to create is not supported)" % disk_id)
        result['disks'].append(disk)
    else:
        file_id = resource.rsplit('/', 1)[-1] if resource.startswith('ovf:/file/') else None
        result['cdroms'].append(dict(slot, file=files.get(file_id) if file_id else None))


def _nic(item, vbox):
    subtype = (_text(item, 'ResourceSubType') or '').lower()
    adapter_type = vbox['type'] if vbox is not None and vbox.get('type') else (_text(item, 'ResourceSubType') or None)
    model = NIC_MODELS.get((adapter_type or '').lower()) or NIC_MODELS.get(subtype) or 'e1000'
    return {'network': _text(item, 'Connection'), 'model': model, 'adapter_type': adapter_type,
            'mac': mac_address(_text(item, 'Address')) or (vbox or {}).get('mac'),
            'attachment': (vbox or {}).get('attachment')}


def _vbox_children(machine, path):
    """Elements under vbox:Machine: VirtualBox writes them in the OVF namespace (the default one)."""
    if machine is None:
        return []
    found = machine.findall('/'.join(_q('ovf', tag) for tag in path.split('/')))
    return found or machine.findall(path)


def _local(tag):
    return tag.rsplit('}', 1)[-1]


def _vbox_adapters(machine):
    adapters = []
    for adapter in sorted(_vbox_children(machine, 'Hardware/Network/Adapter'), key=lambda a: int(a.get('slot', 0))):
        if adapter.get('enabled', 'false') != 'true':
            continue
        attachment = None
        for child in adapter:
            name = _local(child.tag)
            if name in ('NAT', 'BridgedInterface', 'InternalNetwork', 'HostOnlyInterface', 'NATNetwork',
                        'GenericInterface'):
                attachment = {'NAT': 'nat', 'BridgedInterface': 'bridged', 'InternalNetwork': 'intnet',
                              'HostOnlyInterface': 'hostonly', 'NATNetwork': 'natnetwork',
                              'GenericInterface': 'generic'}[name]
        adapters.append({'mac': mac_address(adapter.get('MACAddress')), 'type': adapter.get('type'),
                         'attachment': attachment})
    return adapters


def _vbox_storage(machine, result):
    """DVD drives VirtualBox leaves out of the OVF items (an empty drive) are only in vbox:Machine."""
    have = set((item['controller'], item['address']) for item in result['cdroms'])
    for controller in _vbox_children(machine, 'Hardware/StorageControllers/StorageController'):
        kind = {'AHCI': 'sata', 'PIIX3': 'ide', 'PIIX4': 'ide', 'ICH6': 'ide', 'LsiLogic': 'scsi',
                'BusLogic': 'scsi', 'LsiLogicSas': 'sas', 'NVMe': 'nvme', 'VirtioSCSI': 'virtio'}.get(
                    controller.get('type'), 'sata')
        for device in controller:
            if _local(device.tag) == 'AttachedDevice' and device.get('type') == 'DVD':
                port = int(device.get('port', 0))
                address = port * 2 + int(device.get('device', 0)) if kind == 'ide' else port
                if (kind, address) not in have and (kind, port) not in have:
                    result['cdroms'].append({'controller': kind, 'bus': CONTROLLERS[kind][1], 'controller_index': 0,
                                             'address': address, 'file': None})


def _boot_order(machine):
    devices = {'HardDisk': 'disk', 'DVD': 'dvd', 'Network': 'net', 'Floppy': 'floppy'}
    order = []
    for item in sorted(_vbox_children(machine, 'Hardware/Boot/Order'), key=lambda o: int(o.get('position', 0))):
        if item.get('device') in devices:
            order.append(devices[item.get('device')])
    return order


# --- writing ---------------------------------------------------------------------------------------------

def _sub(parent, prefix, tag, text=None, **attrs):
    elem = ET.SubElement(parent, _q(prefix, tag), {(_q('ovf', k) if ':' not in k else k): v for k, v in attrs.items()})
    if text is not None:
        elem.text = str(text)
    return elem


def _rasd_item(hardware, fields):
    item = _sub(hardware, 'ovf', 'Item')
    for key in sorted(fields):
        if fields[key] is not None:
            _sub(item, 'rasd', key, fields[key])
    return item


def envelope(vm, digest=None):
    """An OVF 1.0 envelope (bytes) for vm: name, description, ostype, vcpus, memory (MiB), firmware, disks
    [{file, capacity, bus, populated_size?}], cdroms [{bus}], nics [{model, mac, network}]. Disks are
    streamOptimized VMDK files; every disk and NIC gets its vbox:Machine entry. digest is recorded in a
    section of this collection (ovf:required="false", which OVF readers skip)."""
    root = ET.Element(_q('ovf', 'Envelope'),
                      {_q('ovf', 'version'): '1.0', '{http://www.w3.org/XML/1998/namespace}lang': 'en-US'})
    references = _sub(root, 'ovf', 'References')
    disk_section = _sub(root, 'ovf', 'DiskSection')
    _sub(disk_section, 'ovf', 'Info', 'List of the virtual disks used in the package')
    uuids = []
    for index, disk in enumerate(vm['disks'], 1):
        _sub(references, 'ovf', 'File', id='file%d' % index, href=disk['file'])
        disk_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, 'virtops:%s:%s:%s' % (vm['name'], index, digest or '')))
        uuids.append(disk_uuid)
        attrs = {'capacity': str(disk['capacity']), 'diskId': 'vmdisk%d' % index, 'fileRef': 'file%d' % index,
                 'format': STREAM_OPTIMIZED, _q('vbox', 'uuid'): disk_uuid}
        if disk.get('populated_size'):
            attrs['populatedSize'] = str(disk['populated_size'])
        _sub(disk_section, 'ovf', 'Disk', **attrs)
    network_section = _sub(root, 'ovf', 'NetworkSection')
    _sub(network_section, 'ovf', 'Info', 'Logical networks used in the package')
    _sub(_sub(network_section, 'ovf', 'Network', name='NAT'), 'ovf', 'Description',
         'Logical network used by this appliance.')
    system = _sub(root, 'ovf', 'VirtualSystem', id=vm['name'])
    _sub(system, 'ovf', 'Info', 'A virtual machine')
    if vm.get('description'):
        annotation = _sub(system, 'ovf', 'AnnotationSection')
        _sub(annotation, 'ovf', 'Info', 'A human-readable annotation')
        _sub(annotation, 'ovf', 'Annotation', vm['description'])
    ostype = vm.get('ostype') or 'Other_64'
    os_section = _sub(system, 'ovf', 'OperatingSystemSection', id=str(VBOX_OS_IDS.get(ostype, 102)))
    _sub(os_section, 'ovf', 'Info', 'The kind of installed guest operating system')
    _sub(os_section, 'ovf', 'Description', ostype)
    _sub(os_section, 'vbox', 'OSType', ostype, required='false')
    hardware = _sub(system, 'ovf', 'VirtualHardwareSection')
    _sub(hardware, 'ovf', 'Info', 'Virtual hardware requirements for a virtual machine')
    sys_elem = _sub(hardware, 'ovf', 'System')
    for key, value in (('ElementName', 'Virtual Hardware Family'), ('InstanceID', '0'),
                       ('VirtualSystemIdentifier', vm['name']), ('VirtualSystemType', 'virtualbox-2.2')):
        _sub(sys_elem, 'vssd', key, value)
    instance = [0]

    def next_id():
        instance[0] += 1
        return str(instance[0])

    _rasd_item(hardware, {'Caption': '%d virtual CPU(s)' % vm['vcpus'], 'Description': 'Number of virtual CPUs',
                          'ElementName': '%d virtual CPU(s)' % vm['vcpus'], 'InstanceID': next_id(),
                          'ResourceType': CPU, 'VirtualQuantity': vm['vcpus']})
    _rasd_item(hardware, {'AllocationUnits': 'MegaBytes', 'Caption': '%d MB of memory' % vm['memory'],
                          'Description': 'Memory Size', 'ElementName': '%d MB of memory' % vm['memory'],
                          'InstanceID': next_id(), 'ResourceType': MEMORY, 'VirtualQuantity': vm['memory']})
    slots = _slots(vm)
    controller_ids = {}
    for controller in sorted(set(slot['controller'] for slot in slots)):
        kind, subtype = {'ide': (IDE, 'PIIX4'), 'sata': (OTHER_STORAGE, 'AHCI'), 'scsi': (SCSI, 'lsilogic')}[controller]
        controller_ids[controller] = next_id()
        _rasd_item(hardware, {'Address': 0, 'Caption': '%sController0' % controller,
                              'Description': '%s Controller' % controller.upper(),
                              'ElementName': '%sController0' % controller, 'InstanceID': controller_ids[controller],
                              'ResourceSubType': subtype, 'ResourceType': kind})
    for slot in slots:
        fields = {'AddressOnParent': slot['address'], 'InstanceID': next_id(),
                  'Parent': controller_ids[slot['controller']]}
        if slot['kind'] == 'disk':
            fields.update(Caption='disk%d' % (slot['index'] + 1), Description='Disk Image',
                          ElementName='disk%d' % (slot['index'] + 1),
                          HostResource='ovf:/disk/vmdisk%d' % (slot['index'] + 1), ResourceType=DISK)
        else:
            fields.update(AutomaticAllocation='false', Caption='cdrom%d' % (slot['index'] + 1),
                          Description='CD-ROM Drive', ElementName='cdrom%d' % (slot['index'] + 1),
                          ResourceType=CD)
        _rasd_item(hardware, fields)
    for nic in vm['nics']:
        subtype = VBOX_NIC.get(nic.get('model') or 'virtio', VBOX_NIC['e1000'])[0]
        _rasd_item(hardware, {'AutomaticAllocation': 'true', 'Caption': "Ethernet adapter on 'NAT'",
                              'Connection': 'NAT', 'ElementName': "Ethernet adapter on 'NAT'",
                              'InstanceID': next_id(), 'ResourceSubType': subtype, 'ResourceType': NIC})
    if vm.get('firmware') == 'efi':
        config = ET.SubElement(hardware, _q('vmw', 'Config'), {_q('ovf', 'required'): 'false',
                                                               _q('vmw', 'key'): 'firmware',
                                                               _q('vmw', 'value'): 'efi'})
        config.tail = None
    _vbox_machine(system, vm, slots, uuids)
    if digest:
        section = _sub(system, 'virtops', 'SourceSection', required='false')
        _sub(section, 'ovf', 'Info', 'What virtops.hypervisor made this appliance from (a digest, for reruns)')
        _sub(section, 'virtops', 'Digest', digest)
    _indent(root)
    return b'<?xml version="1.0"?>\n' + ET.tostring(root, encoding='utf-8') + b'\n'


def _slots(vm):
    """Each disk and CD-ROM drive with its controller (sata, scsi, ide) and address, in the order given."""
    slots = []
    used = {}
    for kind, devices in (('disk', vm['disks']), ('cdrom', vm.get('cdroms') or [])):
        for index, device in enumerate(devices):
            controller = BUS_CONTROLLER.get(device.get('bus') or 'sata', 'sata')
            address = used.get(controller, 0)
            used[controller] = address + 1
            slots.append({'kind': kind, 'index': index, 'controller': controller, 'address': address})
    return slots


def _vbox_machine(system, vm, slots, uuids):
    """The vbox:Machine section VirtualBox reads on import: firmware, CPUs, memory, adapters with MACs, storage."""
    machine = _sub(system, 'vbox', 'Machine', required='false')
    machine.set('version', '1.16-linux')
    machine.set('uuid', '{%s}' % uuid.uuid5(uuid.NAMESPACE_URL, 'virtops:machine:%s:%s' % (vm['name'], uuids)))
    machine.set('name', vm['name'])
    machine.set('OSType', vm.get('ostype') or 'Other_64')
    _sub(machine, 'ovf', 'Info', 'Complete VirtualBox machine configuration in VirtualBox format')
    if vm.get('description'):
        _sub(machine, 'ovf', 'Description', vm['description'])
    hardware = _sub(machine, 'ovf', 'Hardware')
    _sub(hardware, 'ovf', 'Memory').set('RAMSize', str(vm['memory']))
    _sub(hardware, 'ovf', 'Firmware').set('type', 'EFI' if vm.get('firmware') == 'efi' else 'BIOS')
    boot = _sub(hardware, 'ovf', 'Boot')
    for position, device in enumerate(['HardDisk', 'DVD', 'None', 'None'], 1):
        order = _sub(boot, 'ovf', 'Order')
        order.set('position', str(position))
        order.set('device', device)
    network = _sub(hardware, 'ovf', 'Network')
    for slot, nic in enumerate(vm['nics']):
        adapter = _sub(network, 'ovf', 'Adapter')
        adapter.set('slot', str(slot))
        adapter.set('enabled', 'true')
        if nic.get('mac'):
            adapter.set('MACAddress', nic['mac'].replace(':', '').upper())
        adapter.set('type', VBOX_NIC.get(nic.get('model') or 'virtio', VBOX_NIC['e1000'])[1])
        _sub(adapter, 'ovf', 'NAT')
    controllers = _sub(hardware, 'ovf', 'StorageControllers')
    for name in sorted(set(slot['controller'] for slot in slots)):
        controller = _sub(controllers, 'ovf', 'StorageController')
        used = [slot for slot in slots if slot['controller'] == name]
        for key, value in (('name', name.upper()), ('type', CONTROLLERS[name][2]),
                           ('PortCount', str(max(1, len(used)) if name != 'ide' else 2)), ('useHostIOCache', 'false'),
                           ('Bootable', 'true')):
            controller.set(key, value)
        for slot in used:
            device = _sub(controller, 'ovf', 'AttachedDevice')
            port, number = (divmod(slot['address'], 2) if name == 'ide' else (slot['address'], 0))
            device.set('type', 'HardDisk' if slot['kind'] == 'disk' else 'DVD')
            if slot['kind'] == 'cdrom':
                device.set('passthrough', 'false')
            device.set('hotpluggable', 'false')
            device.set('port', str(port))
            device.set('device', str(number))
            if slot['kind'] == 'disk':
                _sub(device, 'ovf', 'Image').set('uuid', '{%s}' % uuids[slot['index']])
    cpu = _sub(hardware, 'ovf', 'CPU')
    cpu.set('count', str(vm['vcpus']))


def _indent(elem, level=0):
    pad = '\n' + '  ' * level
    if len(elem):
        if not (elem.text or '').strip():
            elem.text = pad + '  '
        for child in elem:
            _indent(child, level + 1)
        if not (child.tail or '').strip():
            child.tail = pad
    if level and not (elem.tail or '').strip():
        elem.tail = pad


def manifest(files):
    """The OVF manifest (bytes) of [(name, sha256 hex)], as VirtualBox writes it: SHA256(name)= digest."""
    return ''.join('SHA256(%s)= %s\n' % (name, digest) for name, digest in files).encode('ascii')


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def write_ova(target, ovf_name, ovf_bytes, disks, mtime=0):
    """Write the OVA to the open binary file target: the envelope, its manifest, then the disks [(name, path)]
    (ustar, as VirtualBox writes them). The manifest covers the envelope and every disk."""
    hashes = [(ovf_name, hashlib.sha256(ovf_bytes).hexdigest())] + [(name, sha256_file(path)) for name, path in disks]
    mf_name = ovf_name[:-len('.ovf')] + '.mf'
    with tarfile.open(fileobj=target, mode='w', format=tarfile.USTAR_FORMAT) as archive:
        for name, data in ((ovf_name, ovf_bytes), (mf_name, manifest(hashes))):
            archive.addfile(_member(name, len(data), mtime), io.BytesIO(data))
        for name, path in disks:
            with open(path, 'rb') as handle:
                archive.addfile(_member(name, os.fstat(handle.fileno()).st_size, mtime), handle)
    return hashes


def _member(name, size, mtime):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = mtime
    info.uname = info.gname = 'someone'
    return info


def verify_manifest(path, description):
    """Check the SHA1/SHA256 lines of the appliance's manifest against its files; returns the problems found
    (an empty list when all match; None when the appliance has no manifest)."""
    files = {item['name']: item for item in description['files']}
    mf_names = [name for name in files if name.lower().endswith('.mf')]
    if not mf_names:
        return None
    text = _member_bytes(path, files[mf_names[0]]).decode('utf-8', 'replace')
    problems = []
    for line in text.splitlines():
        match = re.match(r'^\s*(SHA1|SHA256|SHA512)\((.+)\)\s*=\s*([0-9a-fA-F]+)\s*$', line)
        if not match:
            continue
        algorithm, name, expected = match.group(1).lower(), match.group(2), match.group(3).lower()
        if name == description['ovf']:
            item = {'path': path} if description['format'] == 'ovf' else None
            data_item = item if item is not None else _envelope_member(path, description)
        else:
            data_item = files.get(name)
        if data_item is None:
            problems.append('%s: listed in the manifest, not in the appliance' % name)
            continue
        actual = _member_hash(path, data_item, algorithm)
        if actual != expected:
            problems.append('%s: %s is %s, the manifest says %s' % (name, algorithm.upper(), actual, expected))
    return problems


def _envelope_member(path, description):
    with tarfile.open(path, 'r:') as archive:
        info = archive.getmember(description['ovf'])
        return {'offset': info.offset_data, 'size': info.size}


def _member_bytes(path, item):
    with open(item.get('path') or path, 'rb') as handle:
        if item.get('offset') is not None:
            handle.seek(item['offset'])
            return handle.read(item['size'])
        return handle.read()


def _member_hash(path, item, algorithm):
    digest = hashlib.new(algorithm)
    with open(item.get('path') or path, 'rb') as handle:
        left = item['size'] if item.get('offset') is not None else None
        if left is not None:
            handle.seek(item['offset'])
        while left is None or left > 0:
            chunk = handle.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            if left is not None:
                left -= len(chunk)
    return digest.hexdigest()


def appliance_facts(params):
    """What ovf_info returns: the appliance's description; with verify, its manifest checked."""
    path = os.path.abspath(params['path'])
    if not os.path.exists(path):
        raise OVFError('%s does not exist: give the path of an .ova file or of an .ovf envelope' % path, about=path)
    appliance = read_appliance(path)
    facts = {'appliance': appliance}
    if params.get('verify'):
        problems = verify_manifest(path, appliance)
        if problems is None:
            raise OVFError('%s has no manifest (.mf) to verify against; export it with a manifest (VBoxManage export '
                           '--manifest) or run without verify' % path, about=path)
        if problems:
            raise OVFError('%s does not match its manifest: %s' % (path, '; '.join(problems)), about=path)
        facts['verified'] = True
    return facts
