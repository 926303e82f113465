# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt network XML, pure (no connection): read it into the module's model, patch it, compare it.

The model is what libvirt_network's structured options describe, normalized so that the network as
libvirt stores it and the network as asked compare equal when they mean the same (MACs in lower case,
addresses in their canonical text, prefixes instead of netmasks, host lists in a fixed order)::

    {'forward': 'nat', 'bridge': 'virbr1', 'interface': None, 'mtu': None, 'domain': None,
     'ipv4': {'address': '10.77.0.1', 'prefix': 24,
              'dhcp': {'range': {'start': ..., 'end': ...}, 'hosts': [{'mac', 'ip', 'name'}]}},
     'ipv6': None, 'dns_hosts': [{'ip': ..., 'names': [...]}]}
"""

from __future__ import annotations

import copy
import ipaddress
import xml.etree.ElementTree as ET

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure

MODEL_KEYS = ('forward', 'bridge', 'interface', 'mtu', 'domain', 'ipv4', 'ipv6', 'dns_hosts')
FAMILIES = ('ipv4', 'ipv6')
# What libvirt adds to a network by itself; not a difference when the asked XML leaves it out.
ASSIGNED_BRIDGE_ATTRIBUTES = ('name', 'stp', 'delay')
ADDRESS_ATTRIBUTES = ('address', 'ip', 'start', 'end')
DEFAULT_NAT = ('nat', (), '', (('port', (('end', '65535'), ('start', '1024')), '', ()),))


class NetworkXMLError(ModuleFailure):
    """The XML given for a network cannot be used."""


def parse(text, label='xml'):
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise NetworkXMLError('%s: not well-formed XML: %s' % (label, exc))
    if root.tag != 'network':
        raise NetworkXMLError('%s: the root element is <%s>, not <network>' % (label, root.tag))
    if not (root.findtext('name') or '').strip():
        raise NetworkXMLError('%s: the network has no <name>' % label)
    return root


def canonical_address(text):
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return text


def host_key(host):
    return (host.get('mac') or '', host.get('name') or '', host['ip'])


def sort_hosts(hosts):
    return sorted(hosts, key=lambda host: (ipaddress.ip_address(host['ip']), host_key(host)))


def sort_dns_hosts(hosts):
    return sorted(({'ip': host['ip'], 'names': sorted(host['names'])} for host in hosts),
                  key=lambda host: ipaddress.ip_address(host['ip']))


# --- XML -> model ----------------------------------------------------------------------------------

def describe(root):
    """The model of a network's XML (a parsed <network> element)."""
    forward, interface = _describe_forward(root.find('forward'))
    bridge = root.find('bridge')
    mtu = root.find('mtu')
    domain = root.find('domain')
    model = {
        'forward': forward,
        'interface': interface,
        'bridge': bridge.get('name') if bridge is not None else None,
        'mtu': int(mtu.get('size')) if mtu is not None and mtu.get('size') else None,
        'domain': domain.get('name') if domain is not None else None,
        'dns_hosts': sort_dns_hosts({'ip': canonical_address(host.get('ip', '')),
                                     'names': [name.text.strip() for name in host.findall('hostname') if name.text]}
                                    for host in root.findall('dns/host')),
    }
    for family in FAMILIES:
        element = ip_elements(root).get(family)
        model[family] = _describe_ip(element[1]) if element else None
    return model


def _describe_forward(forward):
    if forward is None:
        return 'isolated', None
    dev = forward.get('dev')
    if not dev:
        first = forward.find('interface')
        dev = first.get('dev') if first is not None else None
    mode = forward.get('mode') or 'nat'
    if mode == 'bridge':
        return ('macvtap' if dev else 'bridge'), dev
    return mode, dev


def ip_family(element):
    family = element.get('family')
    if family:
        return family
    return 'ipv6' if ':' in (element.get('address') or '') else 'ipv4'


def ip_elements(root):
    """{family: (index among all <ip> elements, element)} for the first <ip> of each family; the index is
    the parentIndex virNetworkUpdate takes for that element's DHCP hosts."""
    found = {}
    for index, element in enumerate(root.findall('ip')):
        found.setdefault(ip_family(element), (index, element))
    return found


def _describe_ip(element):
    prefix = element.get('prefix')
    if prefix is None and element.get('netmask'):
        prefix = ipaddress.ip_network('0.0.0.0/%s' % element.get('netmask')).prefixlen
    dhcp = element.find('dhcp')
    described = {'address': canonical_address(element.get('address', '')),
                 'prefix': int(prefix) if prefix is not None else None, 'dhcp': None}
    if dhcp is not None:
        first = dhcp.find('range')
        described['dhcp'] = {
            'range': {'start': canonical_address(first.get('start', '')), 'end': canonical_address(first.get('end', ''))}
            if first is not None else None,
            'hosts': sort_hosts(_describe_host(host) for host in dhcp.findall('host')),
        }
    return described


def _describe_host(host):
    return {'mac': host.get('mac').lower() if host.get('mac') else None,
            'ip': canonical_address(host.get('ip', '')), 'name': host.get('name')}


# --- model -> XML ----------------------------------------------------------------------------------

def empty_model():
    """The model of a network that defines nothing: libvirt makes it isolated."""
    model = dict((key, None) for key in MODEL_KEYS)
    model.update(forward='isolated', dns_hosts=[])
    return model


def new_network(name):
    root = ET.Element('network')
    ET.SubElement(root, 'name').text = name
    return root


def patched(root, have, want):
    """A copy of root (a <network>) with each part of the model that differs between have and want
    rewritten as want says; what the model does not cover (NAT port ranges, DNS forwarders, TFTP) stays."""
    root = copy.deepcopy(root)
    if (have['forward'], have['interface']) != (want['forward'], want['interface']):
        _set_forward(root, want['forward'], want['interface'])
    if have['bridge'] != want['bridge'] or have['forward'] != want['forward']:
        _set_bridge(root, want['bridge'], want['forward'])
    if have['mtu'] != want['mtu']:
        _set_single(root, 'mtu', {'size': str(want['mtu'])} if want['mtu'] else None)
    if have['domain'] != want['domain']:
        _set_single(root, 'domain', {'name': want['domain']} if want['domain'] else None)
    for family in FAMILIES:
        if have[family] != want[family]:
            _set_ip(root, family, want[family])
    if have['dns_hosts'] != want['dns_hosts']:
        _set_dns_hosts(root, want['dns_hosts'])
    return root


def _set_forward(root, forward, interface):
    old = root.find('forward')
    position = list(root).index(old) if old is not None else _after(root, ('name', 'uuid'))
    if old is not None:
        root.remove(old)
    if forward == 'isolated':
        return
    element = ET.Element('forward', {'mode': 'bridge' if forward == 'macvtap' else forward})
    if interface:
        element.set('dev', interface)
    root.insert(position, element)


def _set_bridge(root, name, forward):
    bridge = root.find('bridge')
    if bridge is None:
        if not name:
            return
        bridge = ET.Element('bridge')
        root.insert(_after(root, ('name', 'uuid', 'forward')), bridge)
    if name:
        bridge.set('name', name)
    else:
        bridge.attrib.pop('name', None)
    if forward in ('bridge', 'macvtap'):  # libvirt takes stp and delay only for bridges it creates
        for key in ('stp', 'delay'):
            bridge.attrib.pop(key, None)
    if forward == 'macvtap' or not bridge.attrib:
        root.remove(bridge)


def _set_single(root, tag, attributes):
    old = root.find(tag)
    if old is not None:
        root.remove(old)
    if attributes:
        root.append(ET.Element(tag, attributes))


def _set_ip(root, family, wanted):
    found = ip_elements(root).get(family)
    old = found[1] if found else None
    if wanted is None:
        if old is not None:
            root.remove(old)
        return
    element = ET.Element('ip', {'address': wanted['address'], 'prefix': str(wanted['prefix'])})
    if family == 'ipv6':
        element.set('family', 'ipv6')
    old_dhcp = old.find('dhcp') if old is not None else None
    for child in list(old) if old is not None else ():
        if child.tag != 'dhcp':
            element.append(child)  # tftp and the like: not the model's
    if wanted['dhcp'] is not None:
        dhcp = ET.SubElement(element, 'dhcp')
        if wanted['dhcp']['range']:
            ET.SubElement(dhcp, 'range', wanted['dhcp']['range'])
        for host in wanted['dhcp']['hosts']:
            dhcp.append(ET.fromstring(dhcp_host_xml(host)))
        for child in list(old_dhcp) if old_dhcp is not None else ():
            if child.tag not in ('range', 'host'):
                dhcp.append(child)  # bootp
    if old is not None:
        index = list(root).index(old)
        root.remove(old)
        root.insert(index, element)
    else:
        root.append(element)


def _set_dns_hosts(root, hosts):
    dns = root.find('dns')
    if dns is None:
        if not hosts:
            return
        dns = ET.SubElement(root, 'dns')
    for old in dns.findall('host'):
        dns.remove(old)
    for host in hosts:
        dns.append(ET.fromstring(dns_host_xml(host)))
    if not len(dns) and not dns.attrib:
        root.remove(dns)


def _after(root, tags):
    """The position after the last child whose tag is one of tags."""
    position = 0
    for index, child in enumerate(root):
        if child.tag in tags:
            position = index + 1
    return position


def dhcp_host_xml(host):
    attributes = dict((key, host[key]) for key in ('mac', 'name', 'ip') if host.get(key))
    return ET.tostring(ET.Element('host', attributes), encoding='unicode')


def dns_host_xml(host):
    element = ET.Element('host', {'ip': host['ip']})
    for name in host['names']:
        ET.SubElement(element, 'hostname').text = name
    return ET.tostring(element, encoding='unicode')


def to_text(root):
    root = copy.deepcopy(root)
    ET.indent(root)
    return ET.tostring(root, encoding='unicode') + '\n'


# --- comparing full XML ----------------------------------------------------------------------------

def kept_from(actual, asked):
    """asked with what libvirt assigned to the existing network (UUID, MAC, bridge name) where asked leaves
    it out, so that defining it keeps the network's identity."""
    asked = copy.deepcopy(asked)
    for tag in ('uuid', 'mac'):
        have = actual.find(tag)
        if have is not None and asked.find(tag) is None:
            asked.insert(_after(asked, ('name',)), copy.deepcopy(have))
    have_bridge = actual.find('bridge')
    if have_bridge is not None and have_bridge.get('name'):
        bridge = asked.find('bridge')
        if bridge is None and _describe_forward(asked.find('forward'))[0] not in ('bridge', 'macvtap'):
            bridge = ET.SubElement(asked, 'bridge')
        if bridge is not None and not bridge.get('name'):
            bridge.set('name', have_bridge.get('name'))
    return asked


def canonical(actual, asked, without_hosts=False):
    """actual (a <network> libvirt returned) as a comparable tree, leaving out what libvirt adds by itself
    where asked does not have it; canonical(asked, asked) is the asked side. without_hosts leaves out the
    DHCP and DNS hosts (what virNetworkUpdate changes on a running network)."""
    root = copy.deepcopy(actual)
    root.attrib.pop('connections', None)
    for tag in ('uuid', 'mac'):
        if asked.find(tag) is None:
            for element in root.findall(tag):
                root.remove(element)
    bridge, asked_bridge = root.find('bridge'), asked.find('bridge')
    if bridge is not None:
        for key in ASSIGNED_BRIDGE_ATTRIBUTES:
            if asked_bridge is None or asked_bridge.get(key) is None:
                bridge.attrib.pop(key, None)
        if not bridge.attrib and asked_bridge is None:
            root.remove(bridge)
    nat = root.find('forward/nat')
    if nat is not None and asked.find('forward/nat') is None and _tree(nat) == DEFAULT_NAT:
        root.find('forward').remove(nat)  # a running NAT network shows libvirt's default port range
    if without_hosts:
        for parent in root.findall('ip/dhcp') + root.findall('dns'):
            for host in parent.findall('host'):
                parent.remove(host)
    return _tree(root)


def _tree(element):
    attributes = []
    for key, value in sorted(element.attrib.items()):
        if key in ADDRESS_ATTRIBUTES:
            value = canonical_address(value)
        elif key == 'mac' or (element.tag == 'mac' and key == 'address'):
            value = value.lower()
        attributes.append((key, value))
    return (element.tag, tuple(attributes), (element.text or '').strip(),
            tuple(sorted(_tree(child) for child in element)))


def tree_text(tree, depth=0):
    """A canonical tree as indented lines, for diffs."""
    tag, attributes, text, children = tree
    line = '%s<%s%s>%s' % ('  ' * depth, tag, ''.join(" %s='%s'" % item for item in attributes), text)
    return [line] + [row for child in children for row in tree_text(child, depth + 1)]
