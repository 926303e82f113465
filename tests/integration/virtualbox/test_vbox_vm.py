# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vbox_vm against a real VirtualBox 7.2 in a container (see conftest.py): every change is made as a check run,
a real run, a rerun and a check rerun, and verified with VBoxManage itself."""

from __future__ import annotations

import os
import uuid

import pytest

SHARED = '/srv/virtops'


@pytest.fixture
def names(vbox):
    """Unique VM names for one test; every VM whose name starts with the prefix is removed afterwards."""
    prefix = 'it-%s' % uuid.uuid4().hex[:6]
    yield lambda suffix: '%s-%s' % (prefix, suffix)
    listed = vbox.vboxmanage('list', 'vms', check=False).stdout.splitlines()
    found = [line.split('" {')[0].lstrip('"') for line in listed if line.startswith('"%s' % prefix)]
    # Linked clones first: their source's disks are their parents.
    for name in sorted(found, key=lambda item: ('-l' not in item, item)):
        vbox.vboxmanage('unregistervm', name, '--delete', check=False)


def registered(vbox, name):
    return vbox.vboxmanage('showvminfo', name, '--machinereadable', check=False).returncode == 0


def make_disk(vbox, name, size=16):
    path = '%s/%s.vdi' % (SHARED, name)
    vbox.vboxmanage('createmedium', 'disk', '--filename', path, '--size', size, '--format', 'VDI')
    return path


def four_runs(vbox, args, verify=None):
    """Check run (changed, nothing done), real run (changed), rerun and check rerun (unchanged)."""
    first = vbox.run_module('vbox_vm', args, check=True)
    assert first['changed'], first
    if verify:
        verify(False)
    real = vbox.run_module('vbox_vm', args)
    assert real['changed'], real
    assert real['diff'] == first['diff']
    assert real['actions'] == first['actions']
    if verify:
        verify(True)
    again = vbox.run_module('vbox_vm', args)
    assert not again['changed'], again
    check_again = vbox.run_module('vbox_vm', args, check=True)
    assert not check_again['changed'], check_again
    return first, real


def test_create_check_real_rerun(vbox, names):
    name = names('create')
    args = {'name': name, 'ostype': 'debian_64', 'memory': 512, 'cpus': 2, 'firmware': 'efi',
            'description': 'line one\nline "two"', 'nics': [{'type': 'nat'}], 'boot_order': ['disk', 'dvd']}

    def verify(done):
        assert registered(vbox, name) == done
    first, real = four_runs(vbox, args, verify)
    assert first['actions'] == ['create']
    assert first['diff']['before'] == {'state': 'absent'}
    assert first['diff']['after'] == {'state': 'poweroff', 'ostype': 'Debian_64', 'memory': 512, 'cpus': 2,
                                      'firmware': 'efi', 'description': 'line one\nline "two"',
                                      'nics': [{'type': 'nat'}], 'boot_order': ['disk', 'dvd', 'none', 'none']}
    values = vbox.machinereadable(name)
    assert (values['memory'], values['cpus'], values['firmware'], values['ostype']) == (
        '512', '2', 'EFI', 'Debian (64-bit)')
    assert (values['nic1'], values['nic2'], values['boot1'], values['boot2'], values['boot3']) == (
        'nat', 'none', 'disk', 'dvd', 'none')
    vm = real['vm']
    assert (vm['name'], vm['state'], vm['ostype'], vm['description']) == (name, 'poweroff', 'Debian_64',
                                                                          'line one\nline "two"')


def test_modify_settings_nics_storage_boot_order(vbox, names):
    name = names('modify')
    assert vbox.run_module('vbox_vm', {'name': name, 'memory': 256, 'nics': [{'type': 'nat'}]})['changed']
    disk = make_disk(vbox, name)
    args = {'name': name, 'memory': 1024, 'cpus': 2, 'boot_order': ['dvd', 'disk', 'net'],
            'nics': [{'type': 'nat', 'cable_connected': False},
                     {'type': 'intnet', 'network': 'lab', 'model': 'virtio', 'mac': '08:00:27:aa:bb:01'}],
            'storage_controllers': [{'name': 'SATA', 'type': 'sata', 'port_count': 2, 'disks': [
                {'port': 0, 'medium': disk}, {'port': 1, 'type': 'dvddrive'}]}]}

    def verify(done):
        values = vbox.machinereadable(name)
        assert values['memory'] == ('1024' if done else '256')
        assert ('SATA-0-0' in values) == done
    first, real = four_runs(vbox, args, verify)
    assert first['actions'] == ['modify']
    assert first['differences'][:3] == ['memory: 256 -> 1024', 'cpus: 1 -> 2', 'nics[0].cable_connected: true -> false']
    assert 'storage_controllers[0]: add sata controller SATA' in first['differences']
    before, after = first['diff']['before'], first['diff']['after']
    assert (before['memory'], after['memory'], before['cpus'], after['cpus']) == (256, 1024, 1, 2)
    assert before['nics'] == [{'type': 'nat', 'cable_connected': True}, {'type': 'none'}]
    assert after['nics'] == [{'type': 'nat', 'cable_connected': False},
                             {'type': 'intnet', 'network': 'lab', 'model': 'virtio', 'mac': '080027AABB01'}]
    assert before['storage_controllers'] == [{'name': 'SATA', 'exists': False}]
    assert after['storage_controllers'][0]['disks'] == [
        {'port': 0, 'device': 0, 'type': 'hdd', 'medium': disk},
        {'port': 1, 'device': 0, 'type': 'dvddrive', 'medium': 'emptydrive'}]
    assert (before['boot_order'], after['boot_order']) == (['floppy', 'dvd', 'disk', 'none'],
                                                           ['dvd', 'disk', 'net', 'none'])
    values = vbox.machinereadable(name)
    assert (values['SATA-0-0'], values['SATA-1-0'], values['storagecontrollerportcount0']) == (disk, 'emptydrive', '2')
    assert (values['nic2'], values['intnet2'], values['nictype2'], values['macaddress2']) == (
        'intnet', 'lab', 'virtio', '080027AABB01')
    assert values['cableconnected1'] == 'off'
    # An unrelated setting is kept; a setting not given is not compared.
    vbox.vboxmanage('modifyvm', name, '--vram', 32)
    assert not vbox.run_module('vbox_vm', {'name': name, 'memory': 1024})['changed']
    assert vbox.machinereadable(name)['vram'] == '32'
    # A snapshot puts the VM on a differencing image: the attached base image still counts as attached.
    vbox.vboxmanage('snapshot', name, 'take', 'base')
    assert not vbox.run_module('vbox_vm', args)['changed']
    # Leaving the NIC out of the list removes it.
    result = vbox.run_module('vbox_vm', {'name': name, 'nics': [{'type': 'nat'}]})
    assert result['changed'] and 'nics[1].type: intnet -> none' in result['differences']
    assert vbox.machinereadable(name)['nic2'] == 'none'


def test_clone_full_and_linked(vbox, names):
    source, full, linked = names('src'), names('full'), names('l')
    disk = make_disk(vbox, source)
    assert vbox.run_module('vbox_vm', {'name': source, 'memory': 512, 'storage_controllers': [
        {'name': 'SATA', 'type': 'sata', 'disks': [{'port': 0, 'medium': disk}]}]})['changed']
    first, real = four_runs(vbox, {'name': full, 'clone_from': source, 'memory': 768})
    assert first['actions'] == ['clone']
    values = vbox.machinereadable(full)
    assert values['memory'] == '768'
    assert values['SATA-0-0'] != disk and values['SATA-0-0'].endswith('.vdi')
    # Linked clones need a snapshot: asked without one, nothing is made.
    bad = vbox.run_module('vbox_vm', {'name': linked, 'clone_from': source, 'clone_mode': 'linked'})
    assert bad['failed'] and 'clone_snapshot' in bad['msg']
    missing = vbox.run_module('vbox_vm', {'name': linked, 'clone_from': source, 'clone_mode': 'linked',
                                          'clone_snapshot': 'nope'})
    assert missing['failed'] and "has no snapshot 'nope'" in missing['msg']
    assert not registered(vbox, linked)
    vbox.vboxmanage('snapshot', source, 'take', 'base')
    four_runs(vbox, {'name': linked, 'clone_from': source, 'clone_mode': 'linked', 'clone_snapshot': 'base'})
    attached = vbox.machinereadable(linked)['SATA-0-0']
    assert '/Snapshots/{' in attached
    info = vbox.run_module('vbox_vm_info', {'name': [linked]})['vms'][0]
    assert info['storage_controllers'][0]['disks'][0]['base'] == disk
    # Removing the source with its files keeps the image the linked clone is based on.
    gone = vbox.run_module('vbox_vm', {'name': source, 'state': 'absent', 'delete_files': True})
    assert gone['changed'] and gone['actions'] == ['unregister', 'delete_files']
    assert [item['location'] for item in gone['kept_media']] == [disk]
    assert linked in gone['kept_media'][0]['reason']
    assert not registered(vbox, source)
    assert vbox.exec(['test', '-f', disk]).returncode == 0
    assert vbox.exec(['test', '-e', '/root/VirtualBox VMs/%s' % source]).returncode != 0
    assert registered(vbox, linked)


def test_export_ova_then_import_with_override(vbox, names):
    source, copy = names('exp'), names('imp')
    disk = make_disk(vbox, source)
    assert vbox.run_module('vbox_vm', {'name': source, 'ostype': 'Debian_64', 'memory': 512, 'cpus': 1,
                                       'storage_controllers': [{'name': 'SATA', 'type': 'sata', 'disks': [
                                           {'port': 0, 'medium': disk}]}]})['changed']
    ova = '%s/%s.ova' % (SHARED, source)
    args = {'name': source, 'export_to': ova, 'export_format': 'ovf-2.0'}

    def verify(done):
        assert os.path.exists(str(vbox.shared / os.path.basename(ova))) == done
    first, real = four_runs(vbox, args, verify)
    assert first['actions'] == ['export'] and real['export'] == ova
    assert [item for item in os.listdir(str(vbox.shared)) if item.startswith('.')] == []
    forced = vbox.run_module('vbox_vm', dict(args, force_export=True))
    assert forced['changed'] and forced['actions'] == ['export']

    imported = {'name': copy, 'import_from': ova, 'memory': 1024}

    def verify_import(done):
        assert registered(vbox, copy) == done
    first, real = four_runs(vbox, imported, verify_import)
    assert first['actions'] == ['import']
    assert first['appliance']['memory'] == 512 and first['appliance']['ostype'] == 'Debian_64'
    values = vbox.machinereadable(copy)
    assert (values['memory'], values['ostype']) == ('1024', 'Debian (64-bit)')
    assert values['SATA-0-0'].startswith('/root/VirtualBox VMs/%s/' % copy)
    # An .ovf export writes the disk next to it.
    ovf = vbox.run_module('vbox_vm', {'name': copy, 'export_to': '%s/%s.ovf' % (SHARED, copy)})
    assert ovf['changed']
    assert any(item.endswith('.vmdk') for item in os.listdir(str(vbox.shared)))


def test_unregister_with_and_without_delete_files(vbox, names):
    keep, delete = names('keep'), names('delete')
    for name in (keep, delete):
        disk = make_disk(vbox, name)
        assert vbox.run_module('vbox_vm', {'name': name, 'storage_controllers': [
            {'name': 'SATA', 'type': 'sata', 'disks': [{'port': 0, 'medium': disk}]}]})['changed']
    config = '/root/VirtualBox VMs/%s/%s.vbox' % (keep, keep)

    def verify_keep(done):
        assert registered(vbox, keep) != done
        assert vbox.exec(['test', '-f', config]).returncode == 0
    first, _real = four_runs(vbox, {'name': keep, 'state': 'absent'}, verify_keep)
    assert first['actions'] == ['unregister']
    assert first['diff'] == {'before': {'state': 'poweroff'}, 'after': {'state': 'absent'}}
    assert vbox.exec(['test', '-f', '%s/%s.vdi' % (SHARED, keep)]).returncode == 0
    vbox.vboxmanage('closemedium', 'disk', '%s/%s.vdi' % (SHARED, keep), check=False)

    def verify_delete(done):
        assert vbox.exec(['test', '-f', '%s/%s.vdi' % (SHARED, delete)]).returncode == (1 if done else 0)
    first, real = four_runs(vbox, {'name': delete, 'state': 'absent', 'delete_files': True}, verify_delete)
    assert real['deleted_media'] == ['%s/%s.vdi' % (SHARED, delete)] and real['kept_media'] == []
    assert vbox.exec(['test', '-e', '/root/VirtualBox VMs/%s' % delete]).returncode != 0


def test_bad_inputs_change_nothing(vbox, names):
    name = names('bad')
    assert vbox.run_module('vbox_vm', {'name': name, 'memory': 256})['changed']
    before = vbox.settings(name)
    cases = [
        ({'memory': 512, 'nics': [{'type': 'nat'}, {'type': 'nat'}, {'type': 'bridged'}]},
         'nics[2].adapter is required with type bridged'),
        ({'memory': 512, 'storage_controllers': [{'name': 'SATA', 'type': 'sata', 'disks': [
            {'port': 0, 'type': 'dvddrive'}, {'port': 1, 'medium': '%s/missing.vdi' % SHARED}]}]},
         'storage_controllers[0].disks[1].medium %s/missing.vdi does not exist' % SHARED),
        ({'memory': 512, 'ostype': 'Debain_64'}, "ostype 'Debain_64' is not a guest OS type"),
        ({'memory': 512, 'storage_controllers': [{'name': 'New'}]}, 'storage_controllers[0].type is required'),
        ({'memory': 512, 'export_to': '%s/x.zip' % SHARED}, 'must end with .ova'),
        ({'memory': 512, 'nics': [{'type': 'nat', 'mac': 'zz'}]}, "nics[0].mac 'zz' is not a MAC address"),
    ]
    for extra, message in cases:
        for check in (True, False):
            result = vbox.run_module('vbox_vm', dict(extra, name=name), check=check)
            assert result.get('failed') and message in result['msg'], result
    assert vbox.settings(name) == before
    # A new VM with a bad request is not created.
    result = vbox.run_module('vbox_vm', {'name': names('never'), 'storage_controllers': [{'name': 'SATA'}]})
    assert result.get('failed') and not registered(vbox, names('never'))


def test_start_without_driver_fails_and_changes_nothing(vbox, names):
    name = names('run')
    assert vbox.run_module('vbox_vm', {'name': name, 'memory': 256})['changed']
    before = vbox.settings(name)
    for state in ('running', 'paused'):
        for check in (True, False):
            result = vbox.run_module('vbox_vm', {'name': name, 'state': state, 'memory': 1024}, check=check)
            assert result.get('failed'), result
            assert '/dev/vboxdrv does not exist' in result['msg']
            assert 'virtualbox-dkms' in result['msg'] and 'Nothing was changed' in result['msg']
    assert vbox.settings(name) == before
    # A new VM that must run is not even created.
    result = vbox.run_module('vbox_vm', {'name': names('newrun'), 'state': 'running'})
    assert result.get('failed') and not registered(vbox, names('newrun'))
    # Powering off a powered-off VM is no change; saving it is refused.
    assert not vbox.run_module('vbox_vm', {'name': name, 'state': 'poweroff'})['changed']
    assert not vbox.run_module('vbox_vm', {'name': name, 'state': 'acpi_shutdown'})['changed']
    saved = vbox.run_module('vbox_vm', {'name': name, 'state': 'saved'})
    assert saved.get('failed') and 'no running state to save' in saved['msg']
