# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_network's options: the argument spec, and the items validated into NetworkSpecs (pure, no libvirt).

Every item of a batch is validated before the first change; an error names the input
(``networks[1].ipv4.dhcp.hosts[0].ip: ...``).
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.virtops.hypervisor.plugins.module_utils import _network_xml as nx
from ansible_collections.virtops.hypervisor.plugins.module_utils._batch import build_batch
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION

STATES = ('present', 'active', 'inactive', 'absent')
FORWARDS = ('nat', 'route', 'open', 'isolated', 'bridge', 'macvtap')
STRUCTURED_OPTIONS = nx.MODEL_KEYS
ITEM_DEFAULTS = {'state': 'active', 'autostart': None, 'apply': 'next_start', 'force': False}
MAC_PATTERN = re.compile(r'^([0-9a-f]{2}:){5}[0-9a-f]{2}$')
# What the kernel takes as an interface name (IFNAMSIZ - 1) and libvirt's schema allows.
DEVICE_PATTERN = re.compile(r'^[A-Za-z0-9_.-]{1,15}$')
DNS_NAME_PATTERN = re.compile(r'^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)'
                              r'(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$')


class NetworkSpecError(nx.NetworkXMLError):
    """An option of libvirt_network is wrong; the message names it."""


def _join(label, key):
    return '%s.%s' % (label, key) if label else key


def _fail(label, message, name=None):
    raise NetworkSpecError('%s: %s' % (label, message) if label else message,
                           about="network '%s'" % name if name else None)


class NetworkSpec(object):
    """One network as asked: its name, the model parts given (structured options) or full XML, and states.

    ``given`` holds the normalized value of each structured option that was set; the others are kept as
    libvirt has them (a new network gets libvirt's defaults: isolated, a bridge name libvirt picks).
    """

    def __init__(self, item, label):
        def asked(key):
            return item.get(key) if item.get(key) is not None else ITEM_DEFAULTS[key]
        self.label = label
        self.state = asked('state')
        self.autostart = asked('autostart')
        self.apply = asked('apply')
        self.force = asked('force')
        self.xml = None
        structured = sorted(key for key in STRUCTURED_OPTIONS if item.get(key) is not None)
        if item.get('xml'):
            if structured:
                _fail(label, 'xml and the structured options (%s) are mutually exclusive; put the settings '
                             'into the XML' % ', '.join(structured))
            self.xml = nx.parse(item['xml'], _join(label, 'xml'))
            self.name = self.xml.findtext('name').strip()
            if item.get('name') and item['name'] != self.name:
                _fail(label, "name '%s' differs from the <name> '%s' in its xml" % (item['name'], self.name))
            self.given = nx.describe(self.xml)
        elif item.get('name'):
            self.name = item['name']
            self.given = _Validator(label, self.name).options(item)
        else:
            _fail(label, 'give name (and structured options) or xml')
        if '/' in self.name:
            _fail(label, "name '%s' contains '/', which libvirt refuses in a network name" % self.name, self.name)

    def wanted(self, have):
        """The whole model asked for, given have (the model of the existing network, or None)."""
        if self.xml is not None:
            return dict(self.given)
        base = dict(have) if have is not None else nx.empty_model()
        base.update(self.given)
        if self.given.get('forward') == 'macvtap' or (have is None and base['forward'] == 'macvtap'):
            base['bridge'] = None  # macvtap networks have no bridge, not even one libvirt names
        return base


class _Validator(object):
    """Check the structured options of one item and return them normalized (the model's keys that were given)."""

    def __init__(self, label, name):
        self.label = label
        self.name = name

    def fail(self, key, message):
        _fail(_join(self.label, key), message, self.name)

    def options(self, item):
        given = {key: item[key] for key in STRUCTURED_OPTIONS if item.get(key) is not None}
        forward = given.get('forward')
        for key in ('bridge', 'interface'):
            if key in given and not DEVICE_PATTERN.match(given[key]):
                self.fail(key, "'%s' is not an interface name libvirt accepts (1 to 15 letters, digits, '_', "
                               "'.', '-')" % given[key])
        self._check_forward(forward, given)
        if 'mtu' in given and not 68 <= given['mtu'] <= 65535:
            self.fail('mtu', 'must be between 68 and 65535, not %s' % given['mtu'])
        if 'domain' in given and not DNS_NAME_PATTERN.match(given['domain']):
            self.fail('domain', "'%s' is not a DNS domain name" % given['domain'])
        for family in nx.FAMILIES:
            if family in given:
                given[family] = self._ip(family, given[family])
        if 'dns_hosts' in given:
            given['dns_hosts'] = self._dns_hosts(given['dns_hosts'])
        return given

    def _check_forward(self, forward, given):
        if forward == 'bridge' and 'bridge' not in given:
            self.fail('bridge', 'forward bridge needs the name of an existing host bridge')
        if forward == 'macvtap':
            if 'interface' not in given:
                self.fail('interface', 'forward macvtap needs the host interface (interface: eth1)')
            if 'bridge' in given:
                self.fail('bridge', 'forward macvtap uses no bridge; leave bridge out')
        if forward in ('isolated', 'open', 'bridge') and 'interface' in given:
            self.fail('interface', 'forward %s takes no host interface (interface is for nat, route and '
                                   'macvtap)' % forward)
        if forward in ('bridge', 'macvtap'):
            addressed = [key for key in nx.FAMILIES if key in given and given[key].get('address')]
            for key in addressed + [key for key in ('domain', 'dns_hosts') if given.get(key)]:
                self.fail(key, 'forward %s hands guests to a host device: libvirt runs no addresses, DHCP or '
                               'DNS there, leave %s out' % (forward, key))

    def _ip(self, family, block):
        label = family
        if not block.get('address'):
            if block.get('prefix') is not None or block.get('dhcp'):
                self.fail(label + '.address', 'is required with prefix and dhcp (ipv4: {} removes the block)')
            return None
        version = 4 if family == 'ipv4' else 6
        address = self._address(label + '.address', block['address'], version)
        prefix = block.get('prefix')
        if prefix is None:
            self.fail(label + '.prefix', 'is required with address')
        if not 1 <= prefix <= (30 if version == 4 else 126):
            self.fail(label + '.prefix', 'must be between 1 and %d, not %s' % (30 if version == 4 else 126, prefix))
        subnet = ipaddress.ip_network('%s/%d' % (address, prefix), strict=False)
        if address in (subnet.network_address, getattr(subnet, 'broadcast_address', None)) and version == 4:
            self.fail(label + '.address', '%s is the network or broadcast address of %s' % (address, subnet))
        return {'address': str(address), 'prefix': prefix,
                'dhcp': self._dhcp(label + '.dhcp', block['dhcp'], subnet, address) if block.get('dhcp') else None}

    def _address(self, label, text, version):
        try:
            address = ipaddress.ip_address(text.strip())
        except ValueError:
            self.fail(label, "'%s' is not an IPv%d address" % (text, version))
        if address.version != version:
            self.fail(label, "'%s' is not an IPv%d address" % (text, version))
        return address

    def _inside(self, label, text, subnet, gateway):
        address = self._address(label, text, subnet.version)
        if address not in subnet:
            self.fail(label, '%s is outside the subnet %s' % (address, subnet))
        if address == gateway:
            self.fail(label, "%s is the network's own address" % address)
        return address

    def _dhcp(self, label, dhcp, subnet, gateway):
        found = {'range': None, 'hosts': []}
        given_range = dhcp.get('range')
        if given_range:
            start = self._inside(label + '.range.start', given_range['start'], subnet, gateway)
            end = self._inside(label + '.range.end', given_range['end'], subnet, gateway)
            if start > end:
                self.fail(label + '.range', 'start %s comes after end %s' % (start, end))
            found['range'] = {'start': str(start), 'end': str(end)}
        seen = {}
        for index, host in enumerate(dhcp.get('hosts') or []):
            host_label = '%s.hosts[%d]' % (label, index)
            found['hosts'].append(self._dhcp_host(host_label, host, subnet, gateway, seen))
        found['hosts'] = nx.sort_hosts(found['hosts'])
        return found

    def _dhcp_host(self, label, host, subnet, gateway, seen):
        mac = host.get('mac').lower() if host.get('mac') else None
        if subnet.version == 6 and mac:
            self.fail(label + '.mac', 'IPv6 DHCP hosts are matched by name, not MAC; leave mac out')
        if mac and not MAC_PATTERN.match(mac):
            self.fail(label + '.mac', "'%s' is not a MAC address like 52:54:00:12:34:56" % host['mac'])
        if not host.get('ip'):
            self.fail(label + '.ip', 'is required')
        address = self._inside(label + '.ip', host['ip'], subnet, gateway)
        name = host.get('name')
        if name is not None and not DNS_NAME_PATTERN.match(name):
            self.fail(label + '.name', "'%s' is not a host name" % name)
        if not (mac or name):
            self.fail(label, 'give mac or name (IPv6: name)' if subnet.version == 4 else 'name is required')
        for key, value in (('mac', mac), ('ip', str(address)), ('name', name)):
            if value is None:
                continue
            if (key, value) in seen:
                self.fail('%s.%s' % (label, key), "%s is also the %s of %s" % (value, key, seen[(key, value)]))
            seen[(key, value)] = label.rsplit('.', 1)[-1]
        return {'mac': mac, 'ip': str(address), 'name': name}

    def _dns_hosts(self, hosts):
        seen = {}
        found = []
        for index, host in enumerate(hosts):
            label = 'dns_hosts[%d]' % index
            version = 6 if ':' in (host.get('ip') or '') else 4
            address = str(self._address(label + '.ip', host.get('ip') or '', version))
            names = host.get('names') or []
            if not names:
                self.fail(label + '.names', 'give at least one name')
            for key, value in [('ip', address)] + [('name', name) for name in names]:
                if key == 'name' and not DNS_NAME_PATTERN.match(value):
                    self.fail(label + '.names', "'%s' is not a host name" % value)
                if (key, value) in seen:
                    self.fail(label + ('.ip' if key == 'ip' else '.names'),
                              '%s is also in %s' % (value, seen[(key, value)]))
                seen[(key, value)] = label
            found.append({'ip': address, 'names': list(names)})
        return nx.sort_dns_hosts(found)


def build_specs(params):
    """Validate the module parameters into NetworkSpecs; raises NetworkSpecError naming the input."""
    return build_batch(params, 'networks', ITEM_DEFAULTS, NetworkSpec, 'network', NetworkSpecError)


_DHCP_HOST = {'mac': {'type': 'str'}, 'ip': {'type': 'str'}, 'name': {'type': 'str'}}
_IP_BLOCK = {'type': 'dict', 'options': {
    'address': {'type': 'str'},
    'prefix': {'type': 'int'},
    'dhcp': {'type': 'dict', 'options': {
        'range': {'type': 'dict', 'options': {'start': {'type': 'str', 'required': True},
                                              'end': {'type': 'str', 'required': True}}},
        'hosts': {'type': 'list', 'elements': 'dict', 'options': _DHCP_HOST},
    }},
}}
NETWORK_OPTIONS = {
    'name': {'type': 'str'},
    'xml': {'type': 'str'},
    'state': {'type': 'str', 'choices': list(STATES)},
    'autostart': {'type': 'bool'},
    'apply': {'type': 'str', 'choices': ['next_start', 'restart']},
    'force': {'type': 'bool'},
    'forward': {'type': 'str', 'choices': list(FORWARDS)},
    'bridge': {'type': 'str'},
    'interface': {'type': 'str'},
    'mtu': {'type': 'int'},
    'domain': {'type': 'str'},
    'ipv4': _IP_BLOCK,
    'ipv6': _IP_BLOCK,
    'dns_hosts': {'type': 'list', 'elements': 'dict', 'options': {
        'ip': {'type': 'str', 'required': True},
        'names': {'type': 'list', 'elements': 'str', 'required': True},
    }},
}
MODULE_OPTIONS = dict(NETWORK_OPTIONS, uri=dict(URI_OPTION), networks={
    'type': 'list', 'elements': 'dict', 'options': NETWORK_OPTIONS})
