# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What differs between two network models, and the virNetworkUpdate steps that change DHCP and DNS hosts
of a running network (pure, no libvirt).

A running network takes new DHCP hosts (dnsmasq rereads its hosts file) and DNS hosts without a restart;
everything else needs the network restarted. libvirt's update rules shape the steps:

- adding a DHCP host fails while any host has the same MAC, name or IP, so removals come first;
- MODIFY replaces the first host that has the new entry's MAC, name *or* IP, which is the one meant
  only when no other host shares one of them; otherwise the host is deleted and added again;
- DNS hosts cannot be modified at all before libvirt 10.6: delete, then add.
"""

from __future__ import annotations

from ansible_collections.virtops.hypervisor.plugins.module_utils import _network_xml as nx

DNS_HOSTS = 'dns_hosts'


class Step(object):
    """One virNetworkUpdate call: command (add, modify, delete), section (dhcp_host or dns_host),
    parent index (the <ip> element, -1 for DNS) and the XML of the entry."""

    def __init__(self, command, section, parent, xml):
        self.command = command
        self.section = section
        self.parent = parent
        self.xml = xml

    def __repr__(self):
        return '%s %s[%d] %s' % (self.command, self.section, self.parent, self.xml)

    def __eq__(self, other):
        return isinstance(other, Step) and repr(self) == repr(other)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(repr(self))


def show(value):
    return 'none' if value in (None, '', []) else str(value).lower() if isinstance(value, bool) else str(value)


def host_text(host):
    return ' '.join(host[key] for key in ('mac', 'ip', 'name') if host.get(key))


def dns_text(host):
    return ' '.join([host['ip']] + host['names'])


def _ip_text(block):
    return '%s/%s' % (block['address'], block['prefix']) if block else 'none'


def _range_text(dhcp):
    found = dhcp and dhcp['range']
    return '%s-%s' % (found['start'], found['end']) if found else 'none'


def hosts_of(block):
    return block['dhcp']['hosts'] if block and block['dhcp'] else []


def live_family(have, want):
    """True when the DHCP hosts of this IP block can change while the network runs: same address and
    prefix, DHCP on in both with the same range."""
    return bool(have and want and have['dhcp'] and want['dhcp'] and
                (have['address'], have['prefix'], have['dhcp']['range']) ==
                (want['address'], want['prefix'], want['dhcp']['range']))


def differences(have, want):
    """(line, live) for each difference: live lines can change on the running network (DHCP and DNS hosts)."""
    found = []
    for key in ('forward', 'bridge', 'interface', 'mtu', 'domain'):
        if have[key] != want[key]:
            found.append(('%s: %s -> %s' % (key, show(have[key]), show(want[key])), False))
    for family in nx.FAMILIES:
        before, after = have[family], want[family]
        if _ip_text(before) != _ip_text(after):
            found.append(('%s: %s -> %s' % (family, _ip_text(before), _ip_text(after)), False))
        before_dhcp, after_dhcp = (before or {}).get('dhcp'), (after or {}).get('dhcp')
        if bool(before_dhcp) != bool(after_dhcp):
            found.append(('%s.dhcp: %s -> %s' % (family, 'on' if before_dhcp else 'off', 'on' if after_dhcp else 'off'),
                          False))
        elif before_dhcp and _range_text(before_dhcp) != _range_text(after_dhcp):
            found.append(('%s.dhcp.range: %s -> %s' % (family, _range_text(before_dhcp), _range_text(after_dhcp)),
                          False))
        live = live_family(before, after)
        found.extend((line, live) for line in _list_lines('%s.dhcp.hosts' % family, hosts_of(before),
                                                          hosts_of(after), host_text))
    found.extend((line, True) for line in _list_lines(DNS_HOSTS, have['dns_hosts'], want['dns_hosts'], dns_text))
    return found


def _list_lines(label, before, after, text):
    return (['%s: - %s' % (label, text(item)) for item in before if item not in after] +
            ['%s: + %s' % (label, text(item)) for item in after if item not in before])


def update_steps(have, want, parents):
    """The virNetworkUpdate steps that turn have's DHCP and DNS hosts into want's, for the IP blocks
    where that works live; parents maps a family to its <ip> index."""
    steps = []
    for family in nx.FAMILIES:
        if live_family(have[family], want[family]):
            steps.extend(dhcp_steps(hosts_of(have[family]), hosts_of(want[family]), parents[family]))
    steps.extend(dns_steps(have['dns_hosts'], want['dns_hosts']))
    return steps


def _same_host(one, other):
    """Whether two DHCP entries are the same host with new settings: same MAC, or same name without MACs."""
    if one['mac'] or other['mac']:
        return one['mac'] == other['mac']
    return one['name'] == other['name']


def _first_match(hosts, entry):
    """The host libvirt's MODIFY would replace with entry: the first sharing its MAC, name or IP."""
    for host in hosts:
        if any(entry[key] and host[key] == entry[key] for key in ('mac', 'name', 'ip')):
            return host
    return None


def dhcp_steps(before, after, parent):
    current = list(before)
    removed = [host for host in before if host not in after]
    added = [host for host in after if host not in before]
    pairs = []
    for new in list(added):
        old = next((host for host in removed if _same_host(host, new)), None)
        if old is not None:
            removed.remove(old)
            added.remove(new)
            pairs.append((old, new))
    steps = []

    def delete(host):
        current.remove(host)
        steps.append(Step('delete', 'dhcp_host', parent, nx.dhcp_host_xml(host)))
    for host in removed:
        delete(host)
    for old, new in pairs:
        if _first_match(current, new) is old:
            current[current.index(old)] = new
            steps.append(Step('modify', 'dhcp_host', parent, nx.dhcp_host_xml(new)))
        else:
            delete(old)
            added.append(new)
    steps.extend(Step('add', 'dhcp_host', parent, nx.dhcp_host_xml(host)) for host in added)
    return steps


def dns_steps(before, after):
    return ([Step('delete', 'dns_host', -1, nx.dns_host_xml(host)) for host in before if host not in after] +
            [Step('add', 'dns_host', -1, nx.dns_host_xml(host)) for host in after if host not in before])


def view(model, state, autostart):
    """A network as readable lines, for diffs."""
    if model is None:
        return 'state: absent\n'
    lines = ['state: %s' % state, 'autostart: %s' % show(bool(autostart))]
    lines.extend('%s: %s' % (key, show(model[key])) for key in ('forward', 'bridge', 'interface', 'mtu', 'domain'))
    for family in nx.FAMILIES:
        block = model[family]
        lines.append('%s: %s' % (family, _ip_text(block)))
        if block and block['dhcp']:
            lines.append('  dhcp range: %s' % _range_text(block['dhcp']))
            lines.extend('  dhcp host: %s' % host_text(host) for host in block['dhcp']['hosts'])
    lines.extend('dns host: %s' % dns_text(host) for host in model['dns_hosts'])
    return '\n'.join(lines) + '\n'
