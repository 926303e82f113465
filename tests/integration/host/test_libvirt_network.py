# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_network and libvirt_network_info on qemu:///system inside the lvhost container: each change made four
ways and checked with virsh and with the files libvirt writes for dnsmasq; a live DHCP host change keeps dnsmasq's
PID and the bridge; a TCG guest gets its reserved address from dnsmasq. Bridges, dnsmasq and NAT rules live in the
container's network namespace only."""

from __future__ import annotations

import ipaddress
import itertools
import time

import pytest

from virtops_testlib import PREFIX, READY

_numbers = itertools.count()
DNSMASQ = '/var/lib/libvirt/dnsmasq'
WEB1 = {'mac': '52:54:00:00:77:10', 'ip': '10.77.{n}.10', 'name': 'web1'}
WEB2 = {'mac': '52:54:00:00:77:11', 'ip': '10.77.{n}.11', 'name': 'web2'}


class Net(object):
    """A test network: its name, a bridge name and a /24 of its own."""

    def __init__(self, number):
        self.number = number
        self.name = '%snet-%d' % (PREFIX, number)
        self.bridge = 'vit-br%d' % number

    def host(self, template, **changes):
        found = dict(template, ip=template['ip'].format(n=self.number))
        found.update(changes)
        return found

    def args(self, *hosts, **extra):
        n = self.number
        found = {'name': self.name, 'forward': 'nat', 'bridge': self.bridge, 'domain': 'lab.internal', 'ipv4': {
            'address': '10.77.%d.1' % n, 'prefix': 24,
            'dhcp': {'range': {'start': '10.77.%d.100' % n, 'end': '10.77.%d.199' % n}, 'hosts': list(hosts)}}}
        found.update(extra)
        return found


@pytest.fixture
def net(lvhost):
    made = Net(next(_numbers))
    yield made
    lvhost.sh('virsh net-destroy {0} >/dev/null 2>&1 || true; virsh net-undefine {0} >/dev/null 2>&1 || true'
              .format(made.name), check=False)


@pytest.fixture
def guest(lvhost, net):
    """Options of a tiny guest on the test network (DHCP on eth0); removed afterwards."""
    name = '%sguest-%d' % (PREFIX, net.number)
    log = '/var/log/libvirt/qemu/%s-serial.log' % name

    def options(mac, **extra):
        found = {'name': name, 'domain_type': 'qemu', 'memory': 128, 'vcpus': 1, 'state': 'running',
                 'boot': {'kernel': '%s/vmlinuz' % lvhost.guest_dir, 'initrd': '%s/initrd.img' % lvhost.guest_dir,
                          'cmdline': 'console=ttyS0 quiet no_timer_check virtops.dhcp'},
                 'serial_console': True, 'serial_log': log,
                 'interfaces': [{'type': 'network', 'network': net.name, 'mac': mac}]}
        found.update(extra)
        return found
    options.name = name
    options.log = log
    yield options
    lvhost.sh('virsh destroy {0} >/dev/null 2>&1 || true; virsh undefine {0} >/dev/null 2>&1 || true; rm -f {1}'
              .format(name, log), check=False)


def wait_for_line(lvhost, path, text, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lvhost.exists(path) and text in lvhost.read_file(path):
            return
        time.sleep(0.5)
    raise AssertionError('%s: no %r within %d s:\n%s' % (path, text, timeout,
                                                         lvhost.read_file(path) if lvhost.exists(path) else ''))


def dnsmasq_pid(lvhost, net):
    return lvhost.read_file('/run/libvirt/network/%s.pid' % net.name).strip()


def bridge_index(lvhost, net):
    return lvhost.read_file('/sys/class/net/%s/ifindex' % net.bridge).strip()


def inactive_xml(lvhost, net):
    return lvhost.virsh('net-dumpxml', '--inactive', net.name)


def test_a_nat_network_with_reserved_addresses_four_ways(lvhost, net):
    args = net.args(net.host(WEB1), autostart=True,
                    dns_hosts=[{'ip': net.host(WEB1)['ip'], 'names': ['web1.lab.internal']}])

    def verify():
        assert 'Active:         yes' in lvhost.virsh('net-info', net.name)
        assert 'Autostart:      yes' in lvhost.virsh('net-info', net.name)
        assert lvhost.exists('/sys/class/net/%s' % net.bridge)
        hosts = lvhost.read_file('%s/%s.hostsfile' % (DNSMASQ, net.name))
        assert '52:54:00:00:77:10,10.77.%d.10,web1' % net.number in hosts
        assert 'web1.lab.internal' in lvhost.read_file('%s/%s.addnhosts' % (DNSMASQ, net.name))
    check, real, rerun = lvhost.four_ways('libvirt_network', args, verify)[:3]
    assert real['actions'] == ['define', 'autostart', 'start']
    assert (rerun['state'], rerun['bridge'], rerun['restart_required']) == ('active', net.bridge, False)
    assert check['diff']['after'] == real['diff']['after']
    assert "<mac address='" in inactive_xml(lvhost, net)  # libvirt's own MAC, kept by the rerun


def test_a_bridge_name_libvirt_picks_is_kept(lvhost, net):
    args = net.args()
    del args['bridge']
    real, rerun = lvhost.four_ways('libvirt_network', args)[1:3]
    assert real['bridge'].startswith('virbr') and rerun['bridge'] == real['bridge']


def test_dhcp_hosts_change_live_keeping_dnsmasq_and_the_bridge(lvhost, net):
    ipv6 = {'address': 'fd00:77:%d::1' % net.number, 'prefix': 64, 'dhcp': {
        'range': {'start': 'fd00:77:%d::100' % net.number, 'end': 'fd00:77:%d::1ff' % net.number},
        'hosts': [{'name': 'web1', 'ip': 'fd00:77:%d::10' % net.number}]}}
    assert lvhost.run_module('libvirt_network', net.args(net.host(WEB1), ipv6=ipv6))['changed']
    pid, index = dnsmasq_pid(lvhost, net), bridge_index(lvhost, net)
    hostsfile = '%s/%s.hostsfile' % (DNSMASQ, net.name)
    ipv6['dhcp']['hosts'].append({'name': 'web2', 'ip': 'fd00:77:%d::11' % net.number})
    moved = net.host(WEB1, ip='10.77.%d.12' % net.number)

    def verify():
        hosts = lvhost.read_file(hostsfile)
        assert '52:54:00:00:77:10,10.77.%d.12,web1' % net.number in hosts
        assert '52:54:00:00:77:11,10.77.%d.11,web2' % net.number in hosts
        assert '10.77.%d.10,' % net.number not in hosts
        assert 'web2,[%s]' % ipaddress.ip_address('fd00:77:%d::11' % net.number) in hosts
        assert dnsmasq_pid(lvhost, net) == pid and bridge_index(lvhost, net) == index
        stored = inactive_xml(lvhost, net)
        assert "ip='10.77.%d.12'" % net.number in stored
        assert "ip='%s'" % ipaddress.ip_address('fd00:77:%d::11' % net.number) in stored
    real, rerun = lvhost.four_ways('libvirt_network', net.args(moved, net.host(WEB2), ipv6=ipv6), verify)[1:3]
    assert real['actions'] == ['update hosts (3)'] and not rerun['restart_required']
    # removing every host, also live
    ipv6['dhcp']['hosts'] = []
    real = lvhost.four_ways('libvirt_network', net.args(ipv6=ipv6))[1]
    assert real['actions'] == ['update hosts (4)']
    assert '52:54:00' not in lvhost.read_file(hostsfile)
    assert dnsmasq_pid(lvhost, net) == pid and bridge_index(lvhost, net) == index


def test_dns_hosts_change_live_keeping_dnsmasq(lvhost, net):
    assert lvhost.run_module('libvirt_network', net.args())['changed']
    index, pid = bridge_index(lvhost, net), dnsmasq_pid(lvhost, net)
    dns = [{'ip': '10.77.%d.10' % net.number, 'names': ['web1.lab.internal', 'www.lab.internal']}]
    real = lvhost.four_ways('libvirt_network', net.args(dns_hosts=dns))[1]
    assert real['actions'] == ['update hosts (1)']
    assert 'www.lab.internal' in lvhost.read_file('%s/%s.addnhosts' % (DNSMASQ, net.name))
    dns[0]['names'] = ['web1.lab.internal']
    real = lvhost.four_ways('libvirt_network', net.args(dns_hosts=dns))[1]
    assert real['actions'] == ['update hosts (2)']  # libvirt 9 cannot modify a DNS host: delete, add
    assert 'www.lab.internal' not in lvhost.read_file('%s/%s.addnhosts' % (DNSMASQ, net.name))
    assert bridge_index(lvhost, net) == index and dnsmasq_pid(lvhost, net) == pid


def test_other_changes_wait_for_a_restart_unless_asked(lvhost, net):
    assert lvhost.run_module('libvirt_network', net.args())['changed']
    index = bridge_index(lvhost, net)
    report = lvhost.run_module('libvirt_network', net.args(mtu=9000), check=True)
    assert report['changed'] and report['actions'] == ['define']
    report = lvhost.run_module('libvirt_network', net.args(mtu=9000))
    assert report['changed'] and report['actions'] == ['define']
    assert report['restart_required'] and report['restart_reasons'] == ['mtu: none -> 9000']
    assert "<mtu size='9000'/>" in inactive_xml(lvhost, net) and bridge_index(lvhost, net) == index
    for check in (False, True):
        rerun = lvhost.run_module('libvirt_network', net.args(mtu=9000), check=check)
        assert not rerun['changed'] and rerun['restart_required'], rerun
    real, rerun = lvhost.four_ways('libvirt_network', net.args(mtu=9000, apply='restart'))[1:3]
    assert real['actions'] == ['restart'] and not rerun['restart_required'] and rerun['restart_reasons'] == []
    assert lvhost.read_file('/sys/class/net/%s/mtu' % net.bridge).strip() == '9000'


def test_full_xml_keeps_what_libvirt_assigned(lvhost, net):
    xml = ("<network><name>{0}</name><forward mode='nat'/><ip address='10.77.{1}.1' netmask='255.255.255.0'>"
           "<dhcp><range start='10.77.{1}.100' end='10.77.{1}.199'/><host mac='52:54:00:AA:77:10' ip='10.77.{1}.10'/>"
           "</dhcp></ip></network>").format(net.name, net.number)
    real = lvhost.four_ways('libvirt_network', {'xml': xml})[1]
    uuid = real['uuid']
    moved = xml.replace("ip='10.77.%d.10'" % net.number, "ip='10.77.%d.20'" % net.number)
    real = lvhost.four_ways('libvirt_network', {'xml': moved})[1]
    assert real['actions'] == ['update hosts (1)'] and real['uuid'] == uuid
    # what the structured options do not cover: stored, then applied by a restart
    forwarder = moved.replace("<forward mode='nat'/>", "<forward mode='nat'/><dns><forwarder addr='192.0.2.53'/></dns>")
    for check in (True, False):
        report = lvhost.run_module('libvirt_network', {'xml': forwarder}, check=check)
        assert report['changed'] and report['actions'] == ['define'] and report['restart_required'], report
    for check in (False, True):
        report = lvhost.run_module('libvirt_network', {'xml': forwarder}, check=check)
        assert not report['changed'] and report['restart_reasons'] == [
            'xml: settings the structured options do not cover differ'], report
    rerun = lvhost.four_ways('libvirt_network', {'xml': forwarder, 'apply': 'restart'})[2]
    assert not rerun['restart_required']
    assert 'server=192.0.2.53' in lvhost.read_file('%s/%s.conf' % (DNSMASQ, net.name))


def test_a_guest_gets_its_reserved_address_and_keeps_the_network_up(lvhost, net, guest):
    assert lvhost.run_module('libvirt_network', net.args(net.host(WEB1)))['changed']
    report = lvhost.run_module('libvirt_domain', guest(WEB1['mac']))
    assert report['changed'] and not report.get('failed'), report
    wait_for_line(lvhost, guest.log, READY)
    wait_for_line(lvhost, guest.log, 'virtops-guest: ip 10.77.%d.10/24' % net.number)
    info = lvhost.run_module('libvirt_network_info', {'networks': [net.name]})
    leases = info['networks'][0]['leases']
    assert [(lease['mac'], lease['ip'], lease['prefix']) for lease in leases] == [
        ('52:54:00:00:77:10', '10.77.%d.10' % net.number, 24)], info
    assert leases[0]['expiry_time'] > time.time()
    stored = inactive_xml(lvhost, net)
    for args in (dict(net.args(), state='absent'), dict(net.args(net.host(WEB1), mtu=1400), apply='restart'),
                 dict(net.args(), state='inactive')):
        for check in (True, False):
            report = lvhost.run_module('libvirt_network', args, check=check)
            assert report['failed'] and not report['changed'], report
            assert report['domains'] == [guest.name] and 'running domains use it (%s)' % guest.name in report['msg']
    assert 'Active:         yes' in lvhost.virsh('net-info', net.name)
    assert inactive_xml(lvhost, net) == stored
    # a live DHCP host change with the guest up: dnsmasq keeps running, the lease stays
    pid = dnsmasq_pid(lvhost, net)
    real = lvhost.four_ways('libvirt_network', net.args(net.host(WEB1), net.host(WEB2)))[1]
    assert real['actions'] == ['update hosts (1)'] and dnsmasq_pid(lvhost, net) == pid
    info = lvhost.run_module('libvirt_network_info', {'networks': [net.name]})
    assert [lease['ip'] for lease in info['networks'][0]['leases']] == ['10.77.%d.10' % net.number]


def test_bad_inputs_change_nothing(lvhost, net):
    before = lvhost.virsh('net-list', '--all', '--name')
    other = Net(next(_numbers))
    bad = [
        {'networks': [net.args(), other.args(other.host(WEB1), other.host(WEB2, ip='10.9.9.9'))]},
        {'networks': [net.args(), dict(other.args(), bridge='this-name-is-too-long')]},
        {'networks': [net.args(), other.args(other.host(WEB1), other.host(WEB2, mac=WEB1['mac']))]},
    ]
    messages = []
    for args in bad:
        for check in (True, False):
            report = lvhost.run_module('libvirt_network', args, check=check)
            assert report['failed'] and not report['changed'], report
            messages.append(report['msg'])
    assert messages[0].startswith('networks[1].ipv4.dhcp.hosts[1].ip: 10.9.9.9 is outside the subnet')
    assert messages[2].startswith("networks[1].bridge: 'this-name-is-too-long' is not an interface name")
    assert messages[4].startswith('networks[1].ipv4.dhcp.hosts[1].mac: 52:54:00:00:77:10 is also the mac of hosts[0]')
    assert lvhost.virsh('net-list', '--all', '--name') == before


@pytest.fixture
def host_devices(lvhost, net):
    """A host bridge and a veth interface inside the container for forward bridge, macvtap and route (the
    host kernel has no dummy module to load)."""
    bridge, veth = 'vit-hbr%d' % net.number, 'vit-veth%d' % net.number
    remove = 'ip link del {0} 2>/dev/null || true; ip link del {1} 2>/dev/null || true'.format(bridge, veth)
    lvhost.sh('{2}; ip link add {0} type bridge && ip link set {0} up && ip link add {1} type veth peer name {1}p && '
              'ip link set {1} up'.format(bridge, veth, remove))
    yield bridge, veth
    lvhost.sh(remove, check=False)


@pytest.mark.parametrize('forward', ['bridge', 'macvtap', 'route'])
def test_networks_on_host_devices_four_ways(lvhost, net, host_devices, forward):
    bridge, dummy = host_devices
    args = {'name': net.name, 'forward': forward}
    if forward == 'bridge':
        args['bridge'] = bridge
    else:
        args['interface'] = dummy
    if forward == 'route':
        args['ipv4'] = {'address': '10.77.%d.1' % net.number, 'prefix': 24}
    rerun = lvhost.four_ways('libvirt_network', args)[2]
    info = lvhost.run_module('libvirt_network_info', {'networks': [net.name]})['networks'][0]
    assert (info['forward'], info['state'], info['interface']) == (forward, 'active', args.get('interface'))
    assert rerun['bridge'] == info['bridge']
    if forward == 'route':
        assert info['bridge'].startswith('virbr')  # picked by libvirt and kept by the rerun
    else:
        assert info['bridge'] == {'bridge': bridge, 'macvtap': None}[forward]
