# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure logic of _vbox_vm (reading a VM, checking a request, planning the VBoxManage calls) on output
captured from the real VBoxManage 7.2 (tests/unit/fixtures/vboxmanage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _vbox_vm as vm
from ansible_collections.virtops.hypervisor.plugins.module_utils import _vboxmanage as v

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'vboxmanage'


def fixture(name):
    return (FIXTURES / name).read_text()


OSTYPES = v.parse_ostypes(fixture('list_ostypes.txt'))
MEDIA = v.parse_hdds(fixture('list_hdds_long.txt'))


def rich():
    values = v.parse_machinereadable(v.strip_driver_warning(fixture('showvminfo_rich.txt'))[0])
    return vm.describe(values, OSTYPES, MEDIA)


def params(**kwargs):
    base = dict((key, None) for key in ('ostype', 'memory', 'cpus', 'firmware', 'description', 'nics',
                                        'storage_controllers', 'boot_order'))
    base.update(kwargs)
    return base


def test_describe_settings_and_nics():
    info = rich()
    assert (info['name'], info['state'], info['ostype'], info['ostype_description']) == (
        't1-full', 'poweroff', 'Debian_64', 'Debian (64-bit)')
    assert (info['memory'], info['cpus'], info['firmware']) == (1024, 2, 'bios')
    assert info['description'] == 'multi "quoted"\nline'
    assert info['boot_order'] == ['disk', 'dvd', 'none', 'none']
    assert [nic['type'] for nic in info['nics']] == [
        'nat', 'hostonly', 'bridged', 'intnet', 'natnetwork', 'null', 'none', 'none']
    assert info['nics'][1] == {'type': 'hostonly', 'adapter': 'vboxnet0', 'model': 'virtio', 'mac': '0800276086EF',
                               'cable_connected': True}
    assert info['nics'][3]['network'] == 'mynet' and info['nics'][4]['network'] == 'NatNetwork'
    assert info['nics'][5]['cable_connected'] is False
    assert info['current_snapshot'] == 'child2'
    assert info['config_file'] == '/root/VirtualBox VMs/t1-full/t1-full.vbox'


def test_describe_storage_resolves_snapshot_differencing_image():
    controllers = rich()['storage_controllers']
    assert [(c['name'], c['type'], c['chipset']) for c in controllers] == [
        ('SATA', 'sata', 'IntelAhci'), ('Cide', 'ide', 'PIIX4'), ('Cscsi', 'scsi', 'LsiLogic'),
        ('Csas', 'sas', 'LsiLogicSas'), ('Cfloppy', 'floppy', 'I82078'), ('Cusb', 'usb', 'USB'),
        ('Cpcie', 'pcie', 'NVMe'), ('Cvirtio', 'virtio', 'VirtioSCSI')]
    sata = controllers[0]
    assert (sata['port_count'], sata['bootable']) == (4, True)
    disk, dvd = sata['disks']
    assert disk['medium'].startswith('/root/VirtualBox VMs/t1-full/Snapshots/{')
    assert disk['base'] == '/root/VirtualBox VMs/t1-full/t1-full-disk1.vdi'
    assert (disk['format'], disk['virtual_size']) == ('VDI', 64 << 20)
    assert dvd == {'port': 1, 'device': 0, 'type': 'dvddrive', 'medium': 'emptydrive', 'uuid': None}


def test_describe_new_vm():
    values = v.parse_machinereadable(v.strip_driver_warning(fixture('showvminfo_new.txt'))[0])
    info = vm.describe(values, OSTYPES, [])
    assert info['ostype'] == 'Other' and info['description'] == ''
    assert all(nic == {'type': 'none'} for nic in info['nics'])
    assert info['storage_controllers'] == [] and info['snapshots'] == []


def test_nothing_to_do_when_settings_match():
    info = rich()
    wanted = vm.normalize(params(
        ostype='debian_64', memory=1024, cpus=2, firmware='bios', description='multi "quoted"\nline',
        nics=[{'type': 'nat'}, {'type': 'hostonly', 'adapter': 'vboxnet0', 'model': 'virtio', 'mac': '08:00:27:60:86:ef'},
              {'type': 'bridged', 'adapter': 'eth0'}, {'type': 'intnet', 'network': 'mynet'},
              {'type': 'natnetwork', 'network': 'NatNetwork'}, {'type': 'null', 'cable_connected': False}],
        storage_controllers=[{'name': 'SATA', 'type': 'sata', 'port_count': 4, 'disks': [
            {'port': 1, 'device': 0, 'type': 'dvddrive'}]}],
        boot_order=['disk', 'dvd']), OSTYPES)
    differences, commands, before, after = vm.plan(info, wanted)
    assert differences == [] and commands == []
    assert before == after


def test_one_modifyvm_for_all_settings():
    info = rich()
    wanted = vm.normalize(params(memory=2048, cpus=4, firmware='efi', boot_order=['net'],
                                 nics=[{'type': 'bridged', 'adapter': 'eth1', 'model': 'virtio'}]), OSTYPES)
    differences, commands, before, after = vm.plan(info, wanted)
    assert commands == [['modifyvm', 't1-full', '--memory', 2048, '--cpus', 4, '--firmware', 'efi',
                         '--nic1', 'bridged', '--bridgeadapter1', 'eth1', '--nictype1', 'virtio',
                         '--nic2', 'none', '--nic3', 'none', '--nic4', 'none', '--nic5', 'none', '--nic6', 'none',
                         '--boot1', 'net', '--boot2', 'none']]
    assert differences[:4] == ['memory: 1024 -> 2048', 'cpus: 2 -> 4', 'firmware: bios -> efi',
                               'nics[0].type: nat -> bridged']
    assert 'boot_order: disk,dvd,none,none -> net,none,none,none' in differences
    assert before['nics'][0] == {'type': 'nat', 'adapter': None, 'model': '82540EM'}
    assert after['nics'][0] == {'type': 'bridged', 'adapter': 'eth1', 'model': 'virtio'}
    # Adapters 7 and 8 are none before and after: not in the diff.
    assert len(before['nics']) == len(after['nics']) == 6


def test_storage_add_controller_and_attach(tmp_path, monkeypatch):
    image = tmp_path / 'd.vdi'
    image.write_bytes(b'')
    # The images of the captured VM are in the container, not here.
    monkeypatch.setattr(vm.os.path, 'isfile', lambda path: True)
    info = rich()
    wanted = vm.normalize(params(storage_controllers=[
        {'name': 'NVMe', 'type': 'nvme', 'port_count': 2, 'disks': [{'port': 1, 'medium': str(image)}]},
        {'name': 'SATA', 'disks': [{'port': 0, 'medium': '/root/VirtualBox VMs/t1-full/t1-full-disk1.vdi'},
                                   {'port': 1, 'state': 'absent'}]},
    ]))
    differences, commands, before, after = vm.plan(info, wanted)
    assert commands == [
        ['storagectl', 't1-full', '--name', 'NVMe', '--add', 'pcie', '--portcount', 2],
        ['storageattach', 't1-full', '--storagectl', 'NVMe', '--port', 1, '--device', 0, '--type', 'hdd',
         '--medium', str(image)],
        ['storageattach', 't1-full', '--storagectl', 'SATA', '--port', 1, '--device', 0, '--medium', 'none'],
    ]
    assert differences == [
        'storage_controllers[0]: add pcie controller NVMe',
        'storage_controllers[0].disks[0] (NVMe port 1 device 0): empty -> hdd %s' % image,
        'storage_controllers[1].disks[1] (SATA port 1 device 0): dvddrive emptydrive -> empty']
    assert before['storage_controllers'][0] == {'name': 'NVMe', 'exists': False}
    # The snapshot's differencing image counts as the base image the user attached.
    assert before['storage_controllers'][1]['disks'][0]['medium'] == '/root/VirtualBox VMs/t1-full/t1-full-disk1.vdi'


@pytest.mark.parametrize('request_params, message', [
    ({'nics': [{'type': 'nat'}, {'type': 'nat'}, {'type': 'bridged'}]}, 'nics[2].adapter is required with type bridged'),
    ({'nics': [{'type': 'nat', 'network': 'x'}]}, 'nics[0].network is not used with type nat'),
    ({'nics': [{'type': 'nat', 'mac': '01:00:27:00:00:01'}]}, 'nics[0].mac'),
    ({'nics': [{'type': 'nat', 'mac': 'xyz'}]}, "nics[0].mac 'xyz' is not a MAC address"),
    ({'nics': [{'type': 'nat'}] * 9}, 'nics has 9 entries'),
    ({'memory': 2}, 'memory must be at least 4'),
    ({'cpus': 0}, 'cpus must be between 1 and 64'),
    ({'boot_order': ['disk', 'dvd', 'net', 'floppy', 'none']}, 'boot_order has 5 entries'),
    ({'ostype': 'Debain_64'}, "ostype 'Debain_64' is not a guest OS type"),
    ({'storage_controllers': [{'name': 'SATA', 'disks': [{'port': 0}, {'port': 1, 'medium': '/nonexistent/x.vdi'}]}]},
     'storage_controllers[0].disks[0].medium is required for a hdd'),
    ({'storage_controllers': [{'name': 'SATA', 'disks': [{'port': 1, 'medium': '/nonexistent/x.vdi'}]}]},
     'storage_controllers[0].disks[0].medium /nonexistent/x.vdi does not exist'),
    ({'storage_controllers': [{'name': 'SATA', 'disks': [{'port': 1, 'medium': 'x.vdi'}]}]}, 'must be an absolute path'),
    ({'storage_controllers': [{'name': 'S', 'port_count': 2, 'disks': [{'port': 2, 'type': 'dvddrive'}]}]},
     'storage_controllers[0].disks[0].port 2 is beyond the port_count 2'),
    ({'storage_controllers': [{'name': 'S'}, {'name': 'S'}]}, "storage_controllers[1].name 'S' is given twice"),
])
def test_bad_input_names_the_option(request_params, message):
    with pytest.raises(v.VBoxFailure) as exc:
        vm.normalize(params(**request_params), OSTYPES)
    assert message in str(exc.value)


def test_controller_errors_name_the_item():
    info = rich()
    with pytest.raises(v.VBoxFailure, match=r'storage_controllers\[0\]\.type is required'):
        vm.plan(info, vm.normalize(params(storage_controllers=[{'name': 'New'}])))
    with pytest.raises(v.VBoxFailure, match=r"storage_controllers\[0\]\.type: controller 'SATA' .* is sata"):
        vm.plan(info, vm.normalize(params(storage_controllers=[{'name': 'SATA', 'type': 'ide'}])))


def test_new_vm_is_validated_against_a_blank_one():
    with pytest.raises(v.VBoxFailure, match=r'storage_controllers\[0\]\.type is required'):
        vm.plan(vm.blank('x'), vm.normalize(params(storage_controllers=[{'name': 'SATA'}])))
    view = vm.wanted_view(vm.normalize(params(nics=[{'type': 'nat'}], memory=512)))
    assert view == {'nics': [{'type': 'nat'}], 'memory': 512}


def test_classify_media_keeps_linked_clone_bases():
    media = [
        {'uuid': 'base', 'parent': None, 'location': '/v/base.vdi', 'in_use_by': ['src'], 'children': ['d1', 'd2']},
        {'uuid': 'd1', 'parent': 'base', 'location': '/v/src/Snapshots/{d1}.vdi', 'in_use_by': ['src'], 'children': []},
        {'uuid': 'd2', 'parent': 'base', 'location': '/v/clone/Snapshots/{d2}.vdi', 'in_use_by': ['clone'],
         'children': []},
        {'uuid': 'own', 'parent': None, 'location': '/v/src/data.vdi', 'in_use_by': ['src'], 'children': []},
    ]
    own, kept = vm.classify_media('src', media, {'clone': 'web-clone'})
    assert [m['uuid'] for m in own] == ['d1', 'own']
    assert kept == [{'location': '/v/base.vdi', 'reason': 'also used by VM(s) web-clone (directly or through linked '
                                                          'clones)'}]
    own, kept = vm.classify_media('clone', media)
    assert [m['uuid'] for m in own] == ['d2'] and kept == []
