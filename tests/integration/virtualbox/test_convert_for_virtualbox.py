# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/convert_for_virtualbox.yml end to end in the VirtualBox container: a KVM guest's qcow2
disk becomes a VDI (qemu_image) attached to a new VirtualBox VM (vbox_vm); reruns change nothing."""

from __future__ import annotations

PLAYBOOK = 'convert_for_virtualbox.yml'


def changed_tasks(report):
    return sorted(task['task']['name'] for play in report['plays'] for task in play['tasks']
                  for host in task['hosts'].values() if host.get('changed'))


def test_a_kvm_disk_moves_to_a_virtualbox_vm(vbox):
    work = '/srv/virtops/convert'
    vbox.exec(['mkdir', '-p', work], check=True)
    vbox.exec(['qemu-img', 'create', '-f', 'qcow2', work + '/web1.qcow2', '64M'], check=True)
    vbox.exec(['qemu-io', '-f', 'qcow2', '-c', 'write -P 0x5a 0 1M', work + '/web1.qcow2'], check=True)
    variables = {'qcow2_image': work + '/web1.qcow2', 'vdi_image': work + '/web1.vdi', 'vbox_vm': 'virtops-it-web1'}
    try:
        checked = vbox.run_playbook(PLAYBOOK, variables, check=True)
        assert checked['rc'] == 0, checked
        assert changed_tasks(checked) == ['Convert the qcow2 image to VDI']
        assert vbox.exec(['test', '-e', work + '/web1.vdi']).returncode == 1
        assert 'virtops-it-web1' not in vbox.vboxmanage('list', 'vms').stdout
        first = vbox.run_playbook(PLAYBOOK, variables)
        assert first['rc'] == 0, first
        assert changed_tasks(first) == ['Convert the qcow2 image to VDI', 'Define the VirtualBox VM with the disk']
        vm = vbox.machinereadable('virtops-it-web1')
        assert vm['SATA-0-0'] == work + '/web1.vdi'
        assert (vm['memory'], vm['cpus'], vm['boot1'], vm['nic1']) == ('1024', '1', 'disk', 'nat')
        compare = vbox.exec(['qemu-img', 'compare', '-f', 'qcow2', '-F', 'vdi', work + '/web1.qcow2',
                             work + '/web1.vdi'])
        assert compare.returncode == 0, compare.stdout + compare.stderr

        for check in (True, False):
            again = vbox.run_playbook(PLAYBOOK, variables, check=check)
            assert again['rc'] == 0 and changed_tasks(again) == [], again
            assert all(stats['changed'] == 0 for stats in again['stats'].values())
    finally:
        vbox.vboxmanage('unregistervm', 'virtops-it-web1', '--delete', check=False)
        vbox.exec(['rm', '-rf', work])
