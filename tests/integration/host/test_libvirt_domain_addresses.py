# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Guest addresses on qemu:///system inside the lvhost container: libvirt_domain's wait_for and
libvirt_domain_info's addresses for tiny TCG guests (scripts/build-guest.sh) on a NAT network with a DHCP
reservation. The tiny guest has neither sshd nor a guest agent: waiting for SSH times out saying it has a
lease, a guest without DHCP times out saying it has no address. Positive ssh and agent waits need the cloud
image (the end-to-end test). The network, its bridge and dnsmasq live in the container's namespace only."""

from __future__ import annotations

import re

import pytest

from test_libvirt_network import wait_for_line
from virtops_testlib import PREFIX

NET = PREFIX + 'addr-net'
BRIDGE = 'vit-addr0'
SUBNET = '10.79.0'
RESERVED = {'mac': '52:54:00:00:79:10', 'ip': SUBNET + '.10', 'name': 'web1'}
NO_DHCP_MAC = '52:54:00:00:79:11'


@pytest.fixture(scope='module')
def network(lvhost):
    """A NAT network with one DHCP reservation (RESERVED), for the module's guests."""
    args = {'name': NET, 'forward': 'nat', 'bridge': BRIDGE, 'ipv4': {
        'address': SUBNET + '.1', 'prefix': 24,
        'dhcp': {'range': {'start': SUBNET + '.100', 'end': SUBNET + '.199'}, 'hosts': [RESERVED]}}}
    report = lvhost.run_module('libvirt_network', args)
    assert report['changed'] and not report.get('failed'), report
    yield NET
    lvhost.sh('virsh net-destroy {0} >/dev/null 2>&1 || true; virsh net-undefine {0} >/dev/null 2>&1 || true'
              .format(NET), check=False)


@pytest.fixture
def guests(lvhost, network):
    """guests(suffix, mac, dhcp=True): libvirt_domain options of a tiny guest on the network; all removed after."""
    made = []

    def options(suffix, mac, dhcp=True, **extra):
        name = '%saddr-%s' % (PREFIX, suffix)
        made.append(name)
        cmdline = 'console=ttyS0 quiet no_timer_check' + (' virtops.dhcp' if dhcp else '')
        found = {'name': name, 'domain_type': 'qemu', 'memory': 128, 'vcpus': 1, 'state': 'running',
                 'boot': {'kernel': '%s/vmlinuz' % lvhost.guest_dir, 'initrd': '%s/initrd.img' % lvhost.guest_dir,
                          'cmdline': cmdline},
                 'serial_console': True, 'serial_log': '/var/log/libvirt/qemu/%s-serial.log' % name,
                 'interfaces': [{'type': 'network', 'network': network, 'mac': mac}]}
        found.update(extra)
        return found
    yield options
    for name in made:
        lvhost.sh('virsh destroy {0} >/dev/null 2>&1 || true; virsh undefine {0} >/dev/null 2>&1 || true; '
                  'rm -f /var/log/libvirt/qemu/{0}-serial.log'.format(name), check=False)


def info_of(lvhost, name, **args):
    report = lvhost.run_module('libvirt_domain_info', dict(args, name=[name]))
    assert not report.get('failed'), report
    return report['domains'][0]


def test_wait_for_ip_returns_the_reserved_address_from_the_lease(lvhost, guests):
    args = guests('web1', RESERVED['mac'], wait_for='ip', wait_timeout=180)
    check, real, rerun, check_rerun = lvhost.four_ways('libvirt_domain', args)
    assert check['wait'] == {'for': 'ip', 'ready': False, 'seconds': 0.0} and check['address'] is None
    assert real['actions'] == ['define', 'start'] and real['wait']['ready'], real
    assert real['address'] == RESERVED['ip']
    assert real['addresses'][0] == {'address': RESERVED['ip'], 'prefix': 24, 'family': 'ipv4', 'source': 'lease',
                                    'mac': RESERVED['mac']}
    assert real['guest_agent'] == 'absent'
    for report in (rerun, check_rerun):  # running already: ready at the first look, in check mode too
        assert report['wait']['ready'] and report['address'] == RESERVED['ip'], report
        assert report['wait']['seconds'] < 5


def test_wait_for_ssh_on_a_guest_without_sshd_says_lease_but_no_ssh(lvhost, guests):
    args = guests('web1', RESERVED['mac'], wait_for='ip', wait_timeout=180)
    assert lvhost.run_module('libvirt_domain', args)['wait']['ready']
    # dnsmasq keeps the lease of an earlier test's guest with this MAC, so the lease alone does not say the guest
    # is up yet: its console does.
    wait_for_line(lvhost, args['serial_log'], 'virtops-guest: ip %s/24' % RESERVED['ip'])
    failed = lvhost.run_module('libvirt_domain', dict(args, wait_for='ssh', wait_timeout=3))
    assert failed['failed'] and not failed['changed'], failed
    # The first SSH attempt makes the container resolve the guest's MAC: later looks find it in the ARP table too.
    assert re.fullmatch(
        r'wait_for: 1 of 1 domains not ready: %s: address %s \(lease(, arp)?\), no SSH banner on %s:22 after 3 s: '
        r'connection refused\.' % (args['name'], re.escape(RESERVED['ip']), re.escape(RESERVED['ip'])),
        failed['msg']), failed['msg']
    assert failed['failed_object'] == "domain '%s'" % args['name'] and failed['wait']['ready'] is False
    found = info_of(lvhost, args['name'])
    assert (found['address'], found['guest_agent']) == (RESERVED['ip'], 'absent')
    addresses = found['interfaces'][0]['addresses']
    assert [(entry['address'], entry['source'], entry['prefix']) for entry in addresses] == [
        (RESERVED['ip'], 'lease', 24), (RESERVED['ip'], 'arp', None)], found
    leased = info_of(lvhost, args['name'], address_sources=['lease'])
    assert [entry['source'] for entry in leased['interfaces'][0]['addresses']] == ['lease']


def test_wait_for_ip_names_the_guest_without_an_address_and_reports_the_other_ready(lvhost, guests):
    ready = guests('web1', RESERVED['mac'])
    silent = guests('quiet', NO_DHCP_MAC, dhcp=False, wait_timeout=20)
    failed = lvhost.run_module('libvirt_domain', {'state': 'running', 'wait_for': 'ip', 'wait_timeout': 180,
                                                  'domains': [ready, silent]})
    assert failed['failed'] and failed['changed'], failed
    assert failed['msg'] == ('wait_for: 1 of 2 domains not ready: %s: no address after 20 s (no lease, no guest '
                             'agent, no ARP entry). Ready: %s.' % (silent['name'], ready['name'])), failed['msg']
    first, second = failed['domains']
    assert first['wait']['ready'] and first['address'] == RESERVED['ip'] and first['actions'] == ['define', 'start']
    assert second['wait'] == {'for': 'ip', 'ready': False, 'seconds': second['wait']['seconds']}
    assert second['wait']['seconds'] >= 20 and second['address'] is None and second['addresses'] == []
    assert info_of(lvhost, silent['name'])['state'] == 'running'  # a timeout leaves the guests as they are
