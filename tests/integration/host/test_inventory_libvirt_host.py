# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtops.hypervisor.libvirt inventory of the lvhost container's libvirtd, with a guest on a NAT network:
ansible_host is the guest's DHCP lease (the tiny guest has no sshd: the end-to-end test connects to cloud guests).

ansible-inventory runs on this machine and talks to the container's libvirtd through its socket, reached as
/proc/<container pid>/root/run/libvirt/libvirt-sock (a unix socket connects through that path): no daemon
listens on a network, and the network, its bridge and dnsmasq stay in the container's namespace.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from virtops_testlib import PREFIX, ansible_inventory

NET = PREFIX + 'inv-net'
BRIDGE = 'vit-inv0'
SUBNET = '10.81.0'
RESERVED = {'mac': '52:54:00:00:81:10', 'ip': SUBNET + '.10', 'name': 'web1'}


@pytest.fixture(scope='module')
def socket_uri(lvhost):
    pid = subprocess.run(['podman', 'inspect', '-f', '{{.State.Pid}}', lvhost.name], capture_output=True, text=True,
                         check=True).stdout.strip()
    return 'qemu+unix:///system?socket=/proc/%s/root/run/libvirt/libvirt-sock' % pid


@pytest.fixture(scope='module')
def tagged_guest(lvhost):
    """A tiny guest with tags on a NAT network, running with its reserved DHCP address; removed afterwards."""
    network = {'name': NET, 'forward': 'nat', 'bridge': BRIDGE, 'ipv4': {
        'address': SUBNET + '.1', 'prefix': 24,
        'dhcp': {'range': {'start': SUBNET + '.100', 'end': SUBNET + '.199'}, 'hosts': [RESERVED]}}}
    name = PREFIX + 'inv-web1'
    guest = {'name': name, 'domain_type': 'qemu', 'memory': 128, 'vcpus': 1, 'state': 'running',
             'boot': {'kernel': '%s/vmlinuz' % lvhost.guest_dir, 'initrd': '%s/initrd.img' % lvhost.guest_dir,
                      'cmdline': 'console=ttyS0 quiet no_timer_check virtops.dhcp'},
             'interfaces': [{'type': 'network', 'network': NET, 'mac': RESERVED['mac']}],
             'tags': ['web'], 'metadata': {'role': 'frontend'}, 'wait_for': 'ip', 'wait_timeout': 180}
    try:
        for module, args in (('libvirt_network', network), ('libvirt_domain', guest)):
            report = lvhost.run_module(module, args)
            assert not report.get('failed'), report
        yield name
    finally:
        lvhost.sh('virsh destroy {0} >/dev/null 2>&1 || true; virsh undefine {0} >/dev/null 2>&1 || true; '
                  'virsh net-destroy {1} >/dev/null 2>&1 || true; virsh net-undefine {1} >/dev/null 2>&1 || true'
                  .format(name, NET), check=False)


def test_ansible_host_is_the_lease_of_a_guest_on_a_nat_network(lvhost, socket_uri, tagged_guest, tmp_path):
    source = tmp_path / 'lvhost.libvirt.yml'
    source.write_text(yaml.safe_dump({'plugin': 'virtops.hypervisor.libvirt', 'uris': [socket_uri],
                                      'address_sources': ['lease'],
                                      'filters': ['libvirt_name.startswith(%r)' % PREFIX]}))
    inventory, stderr, seconds = ansible_inventory(source)
    print('ansible-inventory --list took %.2f s' % seconds)
    assert 'WARNING' not in stderr, stderr
    web1 = inventory['_meta']['hostvars'][tagged_guest]
    assert (web1['ansible_host'], web1['libvirt_address']) == (RESERVED['ip'], RESERVED['ip'])
    assert web1['libvirt_interfaces'] == [{
        'mac': RESERVED['mac'], 'name': web1['libvirt_interfaces'][0]['name'], 'network': NET, 'bridge': BRIDGE,
        'addresses': [{'address': RESERVED['ip'], 'prefix': 24, 'family': 'ipv4', 'source': 'lease'}]}]
    assert web1['libvirt_interfaces'][0]['name'].startswith('vnet')
    assert web1['libvirt_hypervisor_host'] == lvhost.sh('hostname').stdout.strip()
    assert inventory['tag_web']['hosts'] == [tagged_guest]
