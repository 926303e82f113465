# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""VMs across hypervisors through OVAs, with the real tools on both sides: VirtualBox 7.2 in its container
(VBoxManage export and import), this machine's libvirtd (qemu:///system, TCG guests) and qemu-img.

vbox_to_libvirt: a VirtualBox VM with a disk that boots by itself (tests/lib/virtops_boot_disk.py) is exported
by VBoxManage; playbooks/move_vm.yml turns the OVA into a libvirt domain that boots here (its serial console
prints the guest's ready line). libvirt_to_vbox: a shut-off domain becomes an OVA (libvirt_domain_ova) that
vbox_vm imports with the same CPUs, memory, firmware, disks, NIC types and MACs. Each run four ways (check,
real, rerun, check rerun); bad input fails clearly and changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from virtops_boot_disk import build_boot_disk
from virtops_cloud import build_image
from virtops_testlib import COLLECTIONS, PREFIX, REPO, URI, failed_messages, run_module, run_playbook, \
    serial_log, virsh, wait_for_console

PLAYBOOK = 'move_vm.yml'
IMAGES = Path('/var/lib/libvirt/images')


def changed_tasks(report):
    return sorted(set(task['task']['name'] for play in report['plays'] for task in play['tasks']
                      for host in task['hosts'].values() if host.get('changed')))


def unchanged(report):
    return report['rc'] == 0 and all(stats['changed'] == 0 for stats in report['stats'].values())


@pytest.fixture
def disk_dir():
    path = IMAGES / (PREFIX + 'ova-disks')
    path.mkdir(exist_ok=True)
    yield path
    subprocess.run(['rm', '-rf', str(path)], check=False)


def remove_domain(name):
    subprocess.run(['virsh', '-c', URI, 'destroy', name], capture_output=True, check=False)
    subprocess.run(['virsh', '-c', URI, 'undefine', name, '--nvram'], capture_output=True, check=False)


def domain_xml(name):
    return virsh('dumpxml', '--inactive', name)


def test_a_virtualbox_ova_becomes_a_libvirt_domain_that_boots(vbox, guest_dir, disk_dir):
    name = PREFIX + 'ova-from-vbox'
    vm = PREFIX + 'ova-vbox1'
    raw = vbox.shared / 'boot.raw'
    build_boot_disk(build_image(), guest_dir, raw)
    subprocess.run(['qemu-img', 'convert', '-O', 'vdi', str(raw), str(vbox.shared / 'boot.vdi')], check=True)
    os.chmod(str(vbox.shared / 'boot.vdi'), 0o666)
    ova = vbox.shared / 'vbox1.ova'
    variables = {'move_vm_direction': 'vbox_to_libvirt', 'move_vm_ova': str(ova), 'move_vm_name': name,
                 'move_vm_disk_dir': str(disk_dir), 'move_vm_domain_type': 'qemu', 'move_vm_state': 'running',
                 'move_vm_interface': {'type': 'user'}, 'move_vm_serial_log': serial_log(name)}
    try:
        vbox.vboxmanage('createvm', '--name', vm, '--ostype', 'Debian_64', '--register')
        vbox.vboxmanage('modifyvm', vm, '--memory', 160, '--cpus', 2, '--firmware', 'bios',
                        '--nic1', 'nat', '--nictype1', 'virtio', '--macaddress1', '525400AB0001',
                        '--nic2', 'nat', '--nictype2', '82540EM', '--macaddress2', '525400AB0002')
        vbox.vboxmanage('storagectl', vm, '--name', 'SATA', '--add', 'sata', '--portcount', 2)
        vbox.vboxmanage('storageattach', vm, '--storagectl', 'SATA', '--port', 0, '--type', 'hdd',
                        '--medium', '/srv/virtops/boot.vdi')
        vbox.vboxmanage('storageattach', vm, '--storagectl', 'SATA', '--port', 1, '--type', 'dvddrive',
                        '--medium', 'emptydrive')
        vbox.vboxmanage('export', vm, '-o', '/srv/virtops/vbox1.ova')

        info = run_module('ovf_info', {'path': str(ova)})
        assert info['changed'] is False and 'failed' not in info, info
        appliance = info['appliance']
        assert (appliance['vcpus'], appliance['memory'], appliance['firmware']) == (2, 160, 'bios')
        assert [(nic['model'], nic['mac']) for nic in appliance['nics']] == [
            ('virtio', '52:54:00:ab:00:01'), ('e1000', '52:54:00:ab:00:02')]
        assert [(disk['bus'], disk['subformat'], disk['capacity']) for disk in appliance['disks']] == [
            ('sata', 'streamOptimized', 32 << 20)]
        assert len(appliance['cdroms']) == 1

        checked = run_playbook(PLAYBOOK, variables, check=True)
        assert checked['rc'] == 0, failed_messages(checked)
        assert changed_tasks(checked) == ["Convert the OVA's disks to qcow2 (read in place from the archive)",
                                          "Define the libvirt domain with the OVA's hardware"]
        assert not (disk_dir / (name + '-disk1.qcow2')).exists()
        assert name not in virsh('list', '--all', '--name').split()

        first = run_playbook(PLAYBOOK, variables)
        assert first['rc'] == 0, failed_messages(first)
        assert changed_tasks(first) == changed_tasks(checked)
        seconds = wait_for_console(name, timeout=120)
        print('%s booted from the converted disk in %.1f s' % (name, seconds))
        compare = subprocess.run(['qemu-img', 'compare', '-U', '-f', 'raw', '-F', 'qcow2', str(raw),
                                  str(disk_dir / (name + '-disk1.qcow2'))], capture_output=True, text=True, check=False)
        assert compare.returncode == 0, compare.stdout + compare.stderr
        xml = domain_xml(name)
        assert "<vcpu placement='static'>2</vcpu>" in xml and "<memory unit='KiB'>163840</memory>" in xml
        assert "bus='sata'" in xml and "device='cdrom'" in xml and 'firmware=' not in xml
        assert "<mac address='52:54:00:ab:00:01'/>" in xml and "<model type='virtio'/>" in xml
        assert "<mac address='52:54:00:ab:00:02'/>" in xml and "<model type='e1000'/>" in xml

        for check in (False, True):
            again = run_playbook(PLAYBOOK, variables, check=check)
            assert unchanged(again), (changed_tasks(again), failed_messages(again))
    finally:
        remove_domain(name)
        vbox.vboxmanage('unregistervm', vm, '--delete', check=False)
        for leftover in ('boot.raw', 'boot.vdi', 'vbox1.ova'):
            subprocess.run(['rm', '-f', str(vbox.shared / leftover)], check=False)


def two_host_playbook(vbox, tmp_path, variables, check=False, diff=False):
    """move_vm.yml with the KVM side on this machine and the VirtualBox side in the container."""
    inventory = tmp_path / 'inventory.json'
    inventory.write_text(json.dumps({'all': {'hosts': {
        'kvm': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable},
        'vbox': {'ansible_connection': 'containers.podman.podman', 'ansible_host': vbox.name,
                 'ansible_python_interpreter': '/usr/bin/python3'}}}}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK='json',
               ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'))
    argv = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', str(inventory),
            '-e', json.dumps(dict(variables, move_vm_kvm_hosts='kvm', move_vm_vbox_hosts='vbox')),
            str(REPO / 'playbooks' / PLAYBOOK)] + (['--check'] if check else []) + (['--diff'] if diff else [])
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('no JSON report:\n%s\n%s' % (proc.stdout, proc.stderr))
    report['rc'] = proc.returncode
    return report


def test_a_libvirt_domain_becomes_a_virtualbox_vm_with_the_same_settings(vbox, disk_dir, tmp_path):
    name = PREFIX + 'ova-to-vbox'
    disk = disk_dir / 'to-vbox.qcow2'
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', str(disk), '48M'], check=True, capture_output=True)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 2M', str(disk)], check=True, capture_output=True)
    ova = vbox.shared / 'to-vbox.ova'
    domain = {'name': name, 'domain_type': 'qemu', 'memory': 192, 'vcpus': 3, 'firmware': 'efi',
              'disks': [{'path': str(disk), 'bus': 'virtio'}, {'device': 'cdrom', 'bus': 'sata'}],
              'interfaces': [{'type': 'user', 'mac': '52:54:00:cd:00:01', 'model': 'virtio'},
                             {'type': 'user', 'mac': '52:54:00:cd:00:02', 'model': 'e1000'}],
              'machine': 'q35'}
    try:
        defined = run_module('libvirt_domain', domain)
        assert defined.get('failed') is not True, defined
        args = {'name': name, 'path': str(ova), 'ostype': 'Debian_64'}

        # The module four ways (the playbook below then finds the OVA up to date).
        first = run_module('libvirt_domain_ova', args, check=True)
        assert first['changed'] is True and first['actions'] == ['write'] and not ova.exists(), first
        assert first['diff']['after']['firmware'] == 'efi' and first['diff']['before'] == {'exists': False}
        real = run_module('libvirt_domain_ova', args)
        assert real['changed'] is True and real['actions'] == ['write'], real
        assert [entry.name for entry in sorted(ova.parent.iterdir()) if entry.name.startswith('.')] == []
        for check in (False, True):
            again = run_module('libvirt_domain_ova', args, check=check)
            assert again['changed'] is False and again['actions'] == [], again
        members = subprocess.run(['tar', 'tf', str(ova)], capture_output=True, text=True, check=True).stdout.split()
        assert members == [name + '.ovf', name + '.mf', name + '-disk1.vmdk']
        verified = run_module('ovf_info', {'path': str(ova), 'verify': True})
        assert verified.get('verified') is True, verified
        assert verified['appliance']['source_digest'] == real['source_digest']

        variables = {'move_vm_direction': 'libvirt_to_vbox', 'move_vm_ova': str(ova), 'move_vm_name': name,
                     'move_vm_vbox_ova': '/srv/virtops/to-vbox.ova', 'move_vm_ostype': 'Debian_64'}
        checked = two_host_playbook(vbox, tmp_path, variables, check=True, diff=True)
        assert checked['rc'] == 0, failed_messages(checked)
        assert changed_tasks(checked) == ['Import the OVA into VirtualBox with the domain\'s MAC addresses and '
                                          'adapter types']
        assert name not in vbox.vboxmanage('list', 'vms').stdout
        imported = two_host_playbook(vbox, tmp_path, variables)
        assert imported['rc'] == 0, failed_messages(imported)
        assert changed_tasks(imported) == changed_tasks(checked)
        settings = vbox.machinereadable(name)
        assert (settings['cpus'], settings['memory'], settings['firmware']) == ('3', '192', 'EFI')
        assert (settings['nic1'], settings['nictype1'], settings['macaddress1']) == ('nat', 'virtio', '525400CD0001')
        assert (settings['nic2'], settings['nictype2'], settings['macaddress2']) == ('nat', '82540EM', '525400CD0002')
        assert settings['nic3'] == 'none' and settings['storagecontrollertype0'] == 'IntelAhci'
        vdisk = settings['SATA-0-0']
        assert vdisk.endswith('.vmdk') and settings['SATA-1-0'] == 'emptydrive'
        size = vbox.exec(['qemu-img', 'info', '--output=json', vdisk], check=True)
        assert json.loads(size.stdout)['virtual-size'] == 48 << 20
        for check in (False, True):
            again = two_host_playbook(vbox, tmp_path, variables, check=check, diff=check)
            assert unchanged(again), (changed_tasks(again), failed_messages(again))
    finally:
        remove_domain(name)
        vbox.vboxmanage('unregistervm', name, '--delete', check=False)
        subprocess.run(['rm', '-f', str(ova)], check=False)


def test_bad_input_fails_clearly_and_changes_nothing(vbox, disk_dir, guest_dir):
    not_ova = vbox.shared / 'not-an.ova'
    not_ova.write_text('hello\n')
    failed = run_module('ovf_info', {'path': str(not_ova)})
    assert failed['failed'] is True and 'neither an OVA' in failed['msg'], failed

    # An OVA whose disk is missing: VirtualBox's export with the disk member left out.
    broken = vbox.shared / 'broken.ova'
    good = IMAGES / (PREFIX + 'ova-disks') / 'good.ova'
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', str(disk_dir / 'd.qcow2'), '16M'], check=True,
                   capture_output=True)
    name = PREFIX + 'ova-bad'
    try:
        assert run_module('libvirt_domain', {'name': name, 'domain_type': 'qemu', 'memory': 128,
                                             'boot': {'kernel': str(Path(guest_dir) / 'vmlinuz'),
                                                      'initrd': str(Path(guest_dir) / 'initrd.img'),
                                                      'cmdline': 'console=ttyS0 no_timer_check'},
                                             'disks': [{'path': str(disk_dir / 'd.qcow2')}],
                                             'state': 'running'}).get('failed') is not True
        running = run_module('libvirt_domain_ova', {'name': name, 'path': str(good)})
        assert running['failed'] is True and running['changed'] is False, running
        assert 'is running' in running['msg'] and 'Shut it down first' in running['msg']
        assert not good.exists() and [p.name for p in disk_dir.iterdir() if p.name.startswith('.')] == []

        virsh('destroy', name)
        assert run_module('libvirt_domain_ova', {'name': name, 'path': str(good)})['changed'] is True
        ovf = subprocess.run(['tar', 'xOf', str(good), name + '.ovf'], capture_output=True, check=True).stdout
        (disk_dir / (name + '.ovf')).write_bytes(ovf)
        subprocess.run(['tar', 'cf', str(broken), '-C', str(disk_dir), name + '.ovf'], check=True)
        missing = run_module('ovf_info', {'path': str(broken)})
        assert missing['failed'] is True and name + '-disk1.vmdk' in missing['msg'] and 'incomplete' in missing['msg']

        target = disk_dir / 'x.qcow2'
        for check in (True, False):
            result = run_module('qemu_image', {'src': str(broken), 'src_member': name + '-disk1.vmdk',
                                               'path': str(target)}, check=check)
            assert result['failed'] is True and 'is not in the archive' in result['msg'], result
        assert not target.exists()
        listed = vbox.exec(['ls', '/srv/virtops']).stdout
        assert '.tmp' not in listed
    finally:
        remove_domain(name)
        for leftover in (not_ova, broken):
            subprocess.run(['rm', '-f', str(leftover)], check=False)
