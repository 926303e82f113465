# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The addresses of a domain's interfaces and the state of its guest agent, as libvirt knows them.

libvirt has three sources of addresses (virDomainInterfaceAddresses): the DHCP leases of libvirt's own
networks (``lease``), the QEMU guest agent inside the guest (``agent``) and the host's ARP table (``arp``).
Each answer is matched to the domain's interfaces by MAC address: the agent also reports the guest's
loopback and interfaces libvirt does not know (containers, bridges inside the guest), which are dropped.
A source that cannot answer (no agent, no lease API, an inactive domain) adds nothing and never raises.

Used by libvirt_domain_info, libvirt_domain's ``wait_for`` and the ``virtops.hypervisor.libvirt`` inventory.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET

from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import libvirt

SOURCES = ('lease', 'agent', 'arp')
AGENT_CHANNEL = 'org.qemu.guest_agent.0'
_SOURCE_FLAGS = {
    'lease': 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE',
    'agent': 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT',
    'arp': 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP',
}
_FAMILIES = {0: 'ipv4', 1: 'ipv6'}  # VIR_IP_ADDR_TYPE_IPV4, VIR_IP_ADDR_TYPE_IPV6
_ATF_COM = 0x2  # /proc/net/arp flag of a resolved entry


def live_root(dom):
    """The domain's live XML (the inactive one for a domain that does not run), parsed."""
    return ET.fromstring(dom.XMLDesc(0))


def interfaces_of(root):
    """The interfaces of a domain XML, without addresses: mac (lower case), name (the host-side device, such as
    vnet0: qemu names it when the domain starts), network and bridge (None when not known)."""
    found = []
    for interface in root.findall('devices/interface'):
        mac = interface.find('mac')
        source = interface.find('source')
        target = interface.find('target')
        found.append({
            'mac': mac.get('address').lower() if mac is not None and mac.get('address') else None,
            'name': target.get('dev') if target is not None else None,
            'network': source.get('network') if source is not None else None,
            'bridge': source.get('bridge') if source is not None else None,
            'addresses': [],
        })
    return found


def agent_state_of(root):
    """'connected' or 'disconnected' from the guest agent channel's target, 'absent' without the channel."""
    for target in root.findall('devices/channel/target'):
        if target.get('name') == AGENT_CHANNEL:
            return 'connected' if target.get('state') == 'connected' else 'disconnected'
    return 'absent'


def agent_state(dom):
    """The guest agent's state as libvirt sees it: connected, disconnected or absent (no agent channel)."""
    return agent_state_of(live_root(dom))


def add_answer(interfaces, source, answer):
    """Add the addresses of one virDomainInterfaceAddresses answer ({name: {'hwaddr', 'addrs'}}) to the
    interfaces with the same MAC; an address a source reports twice is added once."""
    by_mac = {interface['mac']: interface for interface in interfaces if interface['mac']}
    for reported in (answer or {}).values():
        interface = by_mac.get((reported.get('hwaddr') or '').lower())
        if interface is None:
            continue  # the guest's loopback or a device libvirt does not manage
        for addr in reported.get('addrs') or ():
            entry = {
                'address': addr['addr'],
                'prefix': addr.get('prefix') or None,  # the ARP table knows no prefix (0)
                'family': _FAMILIES.get(addr.get('type'), 'ipv4'),
                'source': source,
            }
            if entry not in interface['addresses']:
                interface['addresses'].append(entry)
    return interfaces


def query(dom, source):
    """The answer of one source, or {} when it cannot answer (agent not connected, no lease API, no ARP entry)."""
    flag = getattr(libvirt, _SOURCE_FLAGS[source], None)
    if flag is None:
        return {}  # bindings older than the source
    try:
        return dom.interfaceAddresses(flag) or {}
    except libvirt.libvirtError:
        if source == 'arp' and is_local(dom.connect()):
            # libvirt 9.0 (Debian 12) fails every ARP query with "internal error: wrong nlmsg len": read the
            # table it would have read. Only for a local daemon: this module runs on the hypervisor.
            return host_arp_table()
        return {}


def is_local(conn):
    """Whether the connection is to a daemon on this machine (no host in its URI)."""
    try:
        return not urlparse(conn.getURI()).netloc
    except libvirt.libvirtError:
        return False


def host_arp_table(path='/proc/net/arp'):
    """This machine's complete ARP entries in the shape of a libvirt ARP answer ({key: {hwaddr, addrs}})."""
    try:
        with open(path) as table:
            lines = table.read().splitlines()[1:]
    except (IOError, OSError):
        return {}
    found = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or not int(fields[2], 16) & _ATF_COM or fields[3] == '00:00:00:00:00:00':
            continue
        found['%s %s' % (fields[5], fields[0])] = {'hwaddr': fields[3], 'addrs': [
            {'addr': fields[0], 'prefix': 0, 'type': 0}]}
    return found


def interface_addresses(dom, sources=SOURCES, root=None):
    """One entry per interface of the domain's live XML with the addresses the sources report, in the order of
    ``sources``. A domain that does not run has interfaces but no addresses; the agent is asked only while
    its channel is connected (asking a disconnected agent only costs time). ``root``: the live XML when the
    caller has read it already."""
    root = live_root(dom) if root is None else root
    interfaces = interfaces_of(root)
    if not dom.isActive():
        return interfaces
    for source in sources:
        if source == 'agent' and agent_state_of(root) != 'connected':
            continue
        add_answer(interfaces, source, query(dom, source))
    return interfaces


def usable(address):
    """Whether an address can reach the guest from elsewhere: not loopback, not link-local, not unspecified."""
    try:
        parsed = ipaddress.ip_address(address.split('%')[0])
    except ValueError:
        return False
    return not (parsed.is_loopback or parsed.is_link_local or parsed.is_unspecified)


def primary_address(interfaces, preference=SOURCES, family='ipv4'):
    """The first usable address of the family: by source preference first, then in interface order."""
    for source in preference:
        for interface in interfaces:
            for entry in interface['addresses']:
                if entry['source'] == source and entry['family'] == family and usable(entry['address']):
                    return entry['address']
    return None
