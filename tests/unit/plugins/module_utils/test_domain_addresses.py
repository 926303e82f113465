# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Interface addresses and guest agent state: the pure matching on answers shaped like qemu's, and the queries
against libvirt's test driver (test:///default answers every source with the same made-up address per NIC and
drops the agent channel's state, so the agent query is covered by the integration tests)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import libvirt
import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_addresses as da  # noqa: E402

_names = itertools.count()

# The live XML of a running qemu guest on a libvirt network, with a connected guest agent (libvirt 9.0).
LIVE = """<domain type='qemu' id='3'><name>web1</name><devices>
  <interface type='network'>
    <mac address='52:54:00:AA:00:01'/>
    <source network='lab' portid='9d3c0f5e-3b43-4c4b-a6a8-0c1f7f3c2a11' bridge='virbr1'/>
    <target dev='vnet0'/><model type='virtio'/>
  </interface>
  <interface type='bridge'>
    <mac address='52:54:00:aa:00:02'/><source bridge='br0'/><target dev='vnet1'/>
  </interface>
  <channel type='unix'>
    <source mode='bind' path='/run/libvirt/qemu/channel/3-web1/org.qemu.guest_agent.0'/>
    <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
  </channel>
</devices></domain>"""

# What qemu-ga answers through libvirt: loopback and a docker bridge besides the two NICs, names as in the guest.
AGENT_ANSWER = {
    'lo': {'hwaddr': '00:00:00:00:00:00', 'addrs': [{'addr': '127.0.0.1', 'prefix': 8, 'type': 0},
                                                    {'addr': '::1', 'prefix': 128, 'type': 1}]},
    'enp1s0': {'hwaddr': '52:54:00:aa:00:01', 'addrs': [{'addr': '10.79.0.10', 'prefix': 24, 'type': 0},
                                                        {'addr': 'fe80::5054:ff:feaa:1', 'prefix': 64, 'type': 1},
                                                        {'addr': 'fd00:79::10', 'prefix': 64, 'type': 1}]},
    'enp2s0': {'hwaddr': '52:54:00:aa:00:02', 'addrs': [{'addr': '192.168.5.7', 'prefix': 24, 'type': 0}]},
    'docker0': {'hwaddr': '02:42:8e:11:22:33', 'addrs': [{'addr': '172.17.0.1', 'prefix': 16, 'type': 0}]},
}
LEASE_ANSWER = {'vnet0': {'hwaddr': '52:54:00:aa:00:01', 'addrs': [{'addr': '10.79.0.10', 'prefix': 24, 'type': 0}]}}
ARP_ANSWER = {'vnet0': {'hwaddr': '52:54:00:aa:00:01', 'addrs': [{'addr': '10.79.0.10', 'prefix': 0, 'type': 0}]}}


def live_interfaces():
    return da.interfaces_of(ET.fromstring(LIVE))


def test_interfaces_come_from_the_live_xml_with_lower_case_macs():
    assert live_interfaces() == [
        {'mac': '52:54:00:aa:00:01', 'name': 'vnet0', 'network': 'lab', 'bridge': 'virbr1', 'addresses': []},
        {'mac': '52:54:00:aa:00:02', 'name': 'vnet1', 'network': None, 'bridge': 'br0', 'addresses': []},
    ]


def test_agent_addresses_keep_only_the_domains_nics():
    found = da.add_answer(live_interfaces(), 'agent', AGENT_ANSWER)
    assert [entry['address'] for entry in found[0]['addresses']] == ['10.79.0.10', 'fe80::5054:ff:feaa:1', 'fd00:79::10']
    assert found[0]['addresses'][2] == {'address': 'fd00:79::10', 'prefix': 64, 'family': 'ipv6', 'source': 'agent'}
    assert found[1]['addresses'] == [{'address': '192.168.5.7', 'prefix': 24, 'family': 'ipv4', 'source': 'agent'}]
    assert found[0]['name'] == 'vnet0'  # the host's name, not the guest's enp1s0


def test_each_source_lists_an_address_it_reports_and_arp_knows_no_prefix():
    found = live_interfaces()
    for source, answer in (('lease', LEASE_ANSWER), ('arp', ARP_ANSWER), ('arp', ARP_ANSWER)):
        da.add_answer(found, source, answer)
    assert found[0]['addresses'] == [
        {'address': '10.79.0.10', 'prefix': 24, 'family': 'ipv4', 'source': 'lease'},
        {'address': '10.79.0.10', 'prefix': None, 'family': 'ipv4', 'source': 'arp'},
    ]


def test_primary_address_by_source_preference_then_interface_order():
    found = da.add_answer(live_interfaces(), 'agent', AGENT_ANSWER)
    assert da.primary_address(found) == '10.79.0.10'
    assert da.primary_address(found, family='ipv6') == 'fd00:79::10'  # fe80:: is link-local
    lease = {'addrs': [{'addr': '192.168.5.7', 'prefix': 24, 'type': 0}], 'hwaddr': '52:54:00:aa:00:02'}
    da.add_answer(found, 'lease', {'vnet1': lease})
    assert da.primary_address(found) == '192.168.5.7'  # a lease comes before what the agent says
    assert da.primary_address(found, preference=('agent',)) == '10.79.0.10'
    assert da.primary_address(found, preference=('arp',)) is None


@pytest.mark.parametrize('address', ['127.0.0.1', '169.254.3.4', '::1', 'fe80::1%eth0', '0.0.0.0', 'garbage'])
def test_loopback_link_local_and_garbage_are_never_primary(address):
    assert not da.usable(address)


@pytest.mark.parametrize('channel, state', [
    ("<target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>", 'connected'),
    ("<target type='virtio' name='org.qemu.guest_agent.0' state='disconnected'/>", 'disconnected'),
    ("<target type='virtio' name='org.qemu.guest_agent.0'/>", 'disconnected'),  # inactive XML: no state
    ("<target type='virtio' name='org.qemu.spice.0'/>", 'absent'),
    ('', 'absent'),
])
def test_agent_state_from_the_channel(channel, state):
    root = ET.fromstring("<domain><devices><channel type='unix'>%s</channel></devices></domain>" % channel)
    assert da.agent_state_of(root) == state


# --- against the test driver ----------------------------------------------------------------------------

@pytest.fixture
def two_nics(libvirt_test_conn):
    name = 'addresses-%d' % next(_names)
    dom = libvirt_test_conn.defineXML("""<domain type='test'><name>%s</name><memory>1024</memory><os><type>hvm</type></os><devices>
      <interface type='network'><mac address='52:54:00:00:00:01'/><source network='default'/></interface>
      <interface type='bridge'><mac address='52:54:00:00:00:02'/><source bridge='br0'/></interface>
      </devices></domain>""" % name)
    yield dom
    if dom.isActive():
        dom.destroy()
    dom.undefine()


def test_a_domain_that_does_not_run_has_interfaces_without_addresses(two_nics):
    found = da.interface_addresses(two_nics)
    assert [(entry['mac'], entry['network'], entry['bridge'], entry['addresses']) for entry in found] == [
        ('52:54:00:00:00:01', 'default', None, []), ('52:54:00:00:00:02', None, 'br0', [])]
    assert da.agent_state(two_nics) == 'absent'


def test_a_running_domain_has_an_address_per_source_asked(two_nics):
    two_nics.create()
    found = da.interface_addresses(two_nics, sources=('arp', 'lease'))
    assert [entry['name'] for entry in found] == ['testnet0', 'testnet1']
    assert [entry['source'] for entry in found[0]['addresses']] == ['arp', 'lease']
    assert found[0]['addresses'][1]['family'] == 'ipv4' and found[0]['addresses'][1]['prefix'] == 24
    assert da.primary_address(found) == found[0]['addresses'][1]['address']


def test_the_agent_is_not_asked_unless_its_channel_is_connected(two_nics):
    two_nics.create()
    assert da.interface_addresses(two_nics, sources=('agent',))[0]['addresses'] == []


def test_a_source_that_cannot_answer_adds_nothing(two_nics):
    two_nics.create()
    two_nics.destroy()  # the handle stays, queries fail with "domain is not running"
    assert da.query(two_nics, 'lease') == {}


# /proc/net/arp as Linux writes it: a resolved entry, an incomplete one (flags 0x0) and a resolved one elsewhere.
PROC_NET_ARP = """IP address       HW type     Flags       HW address            Mask     Device
10.79.0.10       0x1         0x2         52:54:00:00:79:10     *        vit-addr0
10.79.0.11       0x1         0x0         00:00:00:00:00:00     *        vit-addr0
192.168.1.1      0x1         0x2         f4:06:8d:aa:bb:cc     *        eth0
"""


class FailingArp(object):
    """A domain handle whose ARP query fails as libvirt 9.0's does, on a connection to uri."""

    def __init__(self, uri):
        self.uri = uri

    def interfaceAddresses(self, flag):
        raise libvirt.libvirtError('internal error: wrong nlmsg len')

    def connect(self):
        return type('Conn', (), {'getURI': lambda conn: self.uri})()


def test_the_host_arp_table_lists_resolved_entries(tmp_path):
    table = tmp_path / 'arp'
    table.write_text(PROC_NET_ARP)
    found = da.add_answer([{'mac': '52:54:00:00:79:10', 'addresses': []}], 'arp', da.host_arp_table(str(table)))
    assert found[0]['addresses'] == [{'address': '10.79.0.10', 'prefix': None, 'family': 'ipv4', 'source': 'arp'}]
    assert len(da.host_arp_table(str(table))) == 2 and da.host_arp_table(str(tmp_path / 'none')) == {}


def test_a_failing_arp_query_reads_the_table_only_for_a_local_daemon(monkeypatch):
    monkeypatch.setattr(da, 'host_arp_table', lambda: {'x': {'hwaddr': '52:54:00:00:79:10', 'addrs': []}})
    assert da.query(FailingArp('qemu:///system'), 'arp') == da.host_arp_table()
    assert da.query(FailingArp('qemu+ssh://kvm1/system'), 'arp') == {}
    assert da.query(FailingArp('qemu:///system'), 'lease') == {}
