# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_ovf: reading the envelope VirtualBox 7.2 exported (tests/unit/fixtures/ovf), OVAs made from it, and reading
back the envelopes and OVAs this collection writes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _ovf

FIXTURE = Path(__file__).resolve().parents[2] / 'fixtures' / 'ovf' / 'virtualbox-7.2-efi.ovf'
VM = {'name': 'web1', 'description': 'from libvirt', 'ostype': 'Debian_64', 'vcpus': 3, 'memory': 192,
      'firmware': 'efi', 'disks': [{'file': 'web1-disk1.vmdk', 'capacity': 48 << 20, 'bus': 'virtio'},
                                   {'file': 'web1-disk2.vmdk', 'capacity': 1 << 30, 'bus': 'scsi'}],
      'cdroms': [{'bus': 'sata'}],
      'nics': [{'model': 'virtio', 'mac': '52:54:00:cd:00:01'}, {'model': 'e1000', 'mac': '52:54:00:cd:00:02'}]}


def make_ova(path, members):
    with tarfile.open(str(path), 'w', format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return str(path)


def test_the_virtualbox_export_reads_with_what_only_its_machine_section_holds(tmp_path):
    ova = make_ova(tmp_path / 'proto1.ova', [('proto1.ovf', FIXTURE.read_bytes()),
                                             ('proto1-disk001.vmdk', b'\0' * 1024)])
    vm = _ovf.read_appliance(ova)
    assert (vm['name'], vm['description'], vm['ostype'], vm['os_id']) == ('proto1', 'a test VM', 'Debian_64', 96)
    assert (vm['vcpus'], vm['memory'], vm['firmware'], vm['format']) == (2, 256, 'efi', 'ova')
    disk, = vm['disks']
    assert (disk['file'], disk['format'], disk['subformat'], disk['capacity']) == (
        'proto1-disk001.vmdk', 'vmdk', 'streamOptimized', 33554432)
    assert (disk['controller'], disk['bus'], disk['address'], disk['offset'], disk['size']) == (
        'sata', 'sata', 0, 8192, 1024)
    assert vm['cdroms'] == [{'controller': 'sata', 'bus': 'sata', 'controller_index': 0, 'address': 1, 'file': None}]
    assert vm['nics'] == [
        {'network': 'NAT', 'model': 'virtio', 'adapter_type': 'virtio', 'mac': '52:54:00:1a:2b:3c',
         'attachment': 'nat'},
        {'network': 'Internal', 'model': 'e1000', 'adapter_type': '82540EM', 'mac': '08:00:27:f6:bc:1a',
         'attachment': 'intnet'}]
    assert vm['source_digest'] is None


def test_the_disk_offset_is_where_its_bytes_are(tmp_path):
    payload = b'KDMV' + b'x' * 2000
    ova = make_ova(tmp_path / 'p.ova', [('proto1.ovf', FIXTURE.read_bytes()), ('proto1-disk001.vmdk', payload)])
    disk = _ovf.read_appliance(ova)['disks'][0]
    with open(ova, 'rb') as handle:
        handle.seek(disk['offset'])
        assert handle.read(disk['size']) == payload


def test_an_ovf_with_its_disk_beside_it_reads_too(tmp_path):
    (tmp_path / 'proto1.ovf').write_bytes(FIXTURE.read_bytes())
    (tmp_path / 'proto1-disk001.vmdk').write_bytes(b'\0' * 10)
    vm = _ovf.read_appliance(str(tmp_path / 'proto1.ovf'))
    assert vm['format'] == 'ovf' and vm['disks'][0]['path'] == str(tmp_path / 'proto1-disk001.vmdk')


def test_a_missing_disk_is_named(tmp_path):
    ova = make_ova(tmp_path / 'p.ova', [('proto1.ovf', FIXTURE.read_bytes())])
    with pytest.raises(_ovf.OVFError, match='proto1-disk001.vmdk; the appliance is incomplete'):
        _ovf.read_appliance(ova)


@pytest.mark.parametrize('content, message', [
    (b'hello\n', 'neither an OVA'),
    (b'<html/>', 'not an OVF envelope'),
    (b'<Envelope', 'not well-formed XML'),
])
def test_what_is_not_an_ovf_fails_clearly(tmp_path, content, message):
    path = tmp_path / 'x.ovf'
    path.write_bytes(content)
    with pytest.raises(_ovf.OVFError, match=message):
        _ovf.read_appliance(str(path))


def test_a_tar_without_an_envelope_is_not_an_ova(tmp_path):
    with pytest.raises(_ovf.OVFError, match='without an .ovf member'):
        _ovf.read_appliance(make_ova(tmp_path / 'x.ova', [('disk.vmdk', b'1')]))


def test_what_is_written_reads_back_the_same(tmp_path):
    disks = []
    for disk in VM['disks']:
        path = tmp_path / disk['file']
        path.write_bytes(disk['file'].encode() * 100)
        disks.append((disk['file'], str(path)))
    ova = tmp_path / 'web1.ova'
    with open(str(ova), 'wb') as handle:
        _ovf.write_ova(handle, 'web1.ovf', _ovf.envelope(VM, 'sha256:feed'), disks)
    with tarfile.open(str(ova)) as archive:
        assert archive.getnames() == ['web1.ovf', 'web1.mf', 'web1-disk1.vmdk', 'web1-disk2.vmdk']
    vm = _ovf.read_appliance(str(ova))
    assert (vm['name'], vm['description'], vm['ostype'], vm['vcpus'], vm['memory'], vm['firmware']) == (
        'web1', 'from libvirt', 'Debian_64', 3, 192, 'efi')
    assert [(d['file'], d['capacity'], d['controller'], d['address'], d['subformat']) for d in vm['disks']] == [
        ('web1-disk1.vmdk', 48 << 20, 'sata', 0, 'streamOptimized'), ('web1-disk2.vmdk', 1 << 30, 'scsi', 0,
                                                                      'streamOptimized')]
    assert [(c['controller'], c['address']) for c in vm['cdroms']] == [('sata', 1)]
    assert [(n['model'], n['adapter_type'], n['mac']) for n in vm['nics']] == [
        ('virtio', 'virtio', '52:54:00:cd:00:01'), ('e1000', '82540EM', '52:54:00:cd:00:02')]
    assert vm['source_digest'] == 'sha256:feed'
    assert _ovf.verify_manifest(str(ova), vm) == []


def test_the_same_description_writes_the_same_envelope():
    assert _ovf.envelope(VM, 'sha256:1') == _ovf.envelope(dict(VM), 'sha256:1')
    assert _ovf.envelope(VM, 'sha256:1') != _ovf.envelope(VM, 'sha256:2')


def test_a_changed_file_fails_the_manifest(tmp_path):
    disk = tmp_path / 'web1-disk1.vmdk'
    disk.write_bytes(b'a' * 100)
    ova = tmp_path / 'web1.ova'
    vm = dict(VM, disks=VM['disks'][:1])
    with open(str(ova), 'wb') as handle:
        _ovf.write_ova(handle, 'web1.ovf', _ovf.envelope(vm), [('web1-disk1.vmdk', str(disk))])
    data = bytearray(ova.read_bytes())
    offset = _ovf.read_appliance(str(ova))['disks'][0]['offset']
    data[offset] = ord('b')
    ova.write_bytes(bytes(data))
    problems = _ovf.verify_manifest(str(ova), _ovf.read_appliance(str(ova)))
    assert len(problems) == 1 and problems[0].startswith('web1-disk1.vmdk: SHA256 is')


@pytest.mark.parametrize('units, factor', [(None, 1), ('byte', 1), ('byte * 2^20', 1 << 20), ('MegaBytes', 1 << 20),
                                           ('byte * 2^30', 1 << 30)])
def test_allocation_units(units, factor):
    assert _ovf.scale(units) == factor


def test_vmware_firmware_key_is_read():
    text = FIXTURE.read_text().replace('<Firmware type="EFI"/>', '').replace(
        '</VirtualHardwareSection>', '<vmw:Config xmlns:vmw="http://www.vmware.com/schema/ovf" ovf:required="false" '
        'vmw:key="firmware" vmw:value="efi"/></VirtualHardwareSection>')
    import xml.etree.ElementTree as ET  # pylint: disable=import-outside-toplevel
    assert _ovf.parse_envelope(ET.fromstring(text))['firmware'] == 'efi'
    bios = FIXTURE.read_text().replace('<Firmware type="EFI"/>', '')
    assert _ovf.parse_envelope(ET.fromstring(bios))['firmware'] == 'bios'
