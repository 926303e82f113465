# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vbox_vm_info against a real VirtualBox 7.2 in a container (see conftest.py)."""

from __future__ import annotations

import uuid


def test_info_settings_disks_snapshots_and_missing(vbox):
    name = 'it-%s-info' % uuid.uuid4().hex[:6]
    disk = '/srv/virtops/%s.vdi' % name
    try:
        vbox.vboxmanage('createvm', '--name', name, '--ostype', 'Debian_64', '--register')
        vbox.vboxmanage('modifyvm', name, '--memory', 640, '--cpus', 2, '--firmware', 'efi', '--description', 'a\nb',
                        '--nic1', 'bridged', '--bridgeadapter1', 'eth0', '--nictype1', 'virtio',
                        '--macaddress1', '080027000001', '--boot1', 'disk', '--boot2', 'none')
        vbox.vboxmanage('createmedium', 'disk', '--filename', disk, '--size', 8)
        vbox.vboxmanage('storagectl', name, '--name', 'SATA', '--add', 'sata', '--portcount', 2)
        vbox.vboxmanage('storageattach', name, '--storagectl', 'SATA', '--port', 0, '--device', 0, '--type', 'hdd',
                        '--medium', disk)
        vbox.vboxmanage('snapshot', name, 'take', 'one', '--description', 'first')
        vbox.vboxmanage('snapshot', name, 'take', 'two')
        result = vbox.run_module('vbox_vm_info', {'name': [name, 'no-such-vm']})
        assert not result['changed'] and result['missing'] == ['no-such-vm']
        vm = result['vms'][0]
        assert (vm['name'], vm['state'], vm['ostype'], vm['memory'], vm['cpus'], vm['firmware'], vm['description']) == (
            name, 'poweroff', 'Debian_64', 640, 2, 'efi', 'a\nb')
        assert vm['nics'][0] == {'type': 'bridged', 'adapter': 'eth0', 'model': 'virtio', 'mac': '080027000001',
                                 'cable_connected': True}
        assert vm['boot_order'][:2] == ['disk', 'none']
        sata = vm['storage_controllers'][0]
        assert (sata['name'], sata['type'], sata['port_count']) == ('SATA', 'sata', 2)
        attached = sata['disks'][0]
        assert (attached['type'], attached['base'], attached['format'], attached['virtual_size']) == (
            'hdd', disk, 'VDI', 8 << 20)
        assert [(s['name'], s['parent'], s['current']) for s in vm['snapshots']] == [
            ('one', None, False), ('two', 'one', True)]
        assert vm['snapshots'][0]['description'] == 'first'
        assert vm['current_snapshot'] == 'two'
        assert vm['config_file'] == '/root/VirtualBox VMs/%s/%s.vbox' % (name, name)
        everything = vbox.run_module('vbox_vm_info', {})
        assert name in [item['name'] for item in everything['vms']] and everything['missing'] == []
    finally:
        vbox.vboxmanage('unregistervm', name, '--delete', check=False)
