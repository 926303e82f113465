# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain_info's addresses and guest agent state against libvirt's test driver (test:///default), which
answers every address source with one made-up address per interface. Real leases, ARP entries and agents:
tests/integration/host/test_libvirt_domain_addresses.py."""

from __future__ import annotations

import itertools

import pytest

from virtops_unitlib import run_main  # noqa: E402

from ansible_collections.virtops.hypervisor.plugins.modules import libvirt_domain_info  # noqa: E402

URI = 'test:///default'
_names = itertools.count()


@pytest.fixture
def guest(libvirt_test_conn):
    """A defined domain with a NIC on a network, one on a bridge and a guest agent channel."""
    name = 'info-addresses-%d' % next(_names)
    dom = libvirt_test_conn.defineXML(
        "<domain type='test'><name>%s</name><memory>1024</memory><os><type>hvm</type></os><devices>"
        "<interface type='network'><mac address='52:54:00:00:10:01'/><source network='default'/></interface>"
        "<interface type='bridge'><mac address='52:54:00:00:10:02'/><source bridge='br0'/></interface>"
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        "</devices></domain>" % name)
    yield dom
    if dom.isActive():
        dom.destroy()
    dom.undefine()


@pytest.fixture
def info(capsys):
    def call(**args):
        return run_main(libvirt_domain_info, dict(args, uri=URI), capsys)
    return call


def test_a_shut_off_domain_has_no_addresses(guest, info):
    found = info(name=[guest.name()])['domains'][0]
    assert [interface['addresses'] for interface in found['interfaces']] == [[], []]
    assert (found['address'], found['guest_agent']) == (None, 'disconnected')


def test_a_running_domain_has_its_addresses_by_source(guest, info):
    guest.create()
    found = info(name=[guest.name()])['domains'][0]
    first, second = found['interfaces']
    # The test driver's agent channel never connects: the agent is not asked.
    assert [entry['source'] for entry in first['addresses']] == ['lease', 'arp']
    assert first['addresses'][0]['family'] == 'ipv4' and first['addresses'][0]['prefix'] == 24
    assert second['addresses'] and second['addresses'][0]['address'] != first['addresses'][0]['address']
    assert found['address'] == first['addresses'][0]['address']
    assert found['guest_agent'] == 'disconnected'


def test_address_sources_limit_the_queries_in_their_fixed_order(guest, info):
    guest.create()
    found = info(name=[guest.name()], address_sources=['arp', 'lease'])['domains'][0]
    assert [entry['source'] for entry in found['interfaces'][0]['addresses']] == ['lease', 'arp']
    found = info(name=[guest.name()], address_sources=['arp'])['domains'][0]
    assert [entry['source'] for entry in found['interfaces'][0]['addresses']] == ['arp']
    assert found['address'] == found['interfaces'][0]['addresses'][0]['address']
    found = info(name=[guest.name()], address_sources=[])['domains'][0]
    assert found['interfaces'][0]['addresses'] == [] and found['address'] is None


def test_a_domain_without_agent_channel_says_absent(libvirt_test_conn, info):
    found = info(name=['test'])['domains'][0]  # the test driver's own domain
    assert found['guest_agent'] == 'absent' and found['address']
