# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_network's pure parts: validating the options, reading and patching network XML, planning updates."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _network_plan as plan  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils import _network_xml as nx  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._network_spec import (  # noqa: E402
    build_specs)

# As libvirt 9.0 stores a NAT network it assigned a bridge and MAC to.
STORED = """<network>
  <name>lab</name>
  <uuid>680f67af-2ea4-44c4-9242-5c5e5a392527</uuid>
  <forward mode='nat'>
    <nat><port start='1024' end='65535'/></nat>
  </forward>
  <bridge name='virbr1' stp='on' delay='0'/>
  <mac address='52:54:00:0A:1B:2C'/>
  <dns><forwarder addr='192.0.2.53'/><host ip='10.77.0.10'><hostname>web1.lab</hostname></host></dns>
  <ip address='10.77.0.1' netmask='255.255.255.0'>
    <tftp root='/srv/tftp'/>
    <dhcp>
      <range start='10.77.0.100' end='10.77.0.199'/>
      <host mac='52:54:00:00:77:10' name='web1' ip='10.77.0.10'/>
      <bootp file='pxelinux.0'/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='fd00:77:0::1' prefix='64'>
    <dhcp><host name='web1' ip='fd00:77::10'/></dhcp>
  </ip>
</network>"""

LAB = {'name': 'lab', 'forward': 'nat', 'ipv4': {'address': '10.77.0.1', 'prefix': 24, 'dhcp': {
    'range': {'start': '10.77.0.100', 'end': '10.77.0.199'},
    'hosts': [{'mac': '52:54:00:00:77:10', 'ip': '10.77.0.10', 'name': 'web1'}]}}}


def params(**item):
    found = dict((key, None) for key in ('name', 'xml', 'state', 'autostart', 'apply', 'force', 'networks') + nx.MODEL_KEYS)
    found.update(item)
    return found


def spec_of(**item):
    return build_specs(params(**item))[0][0]


def error_of(**item):
    with pytest.raises(nx.NetworkXMLError) as failure:  # NetworkSpecError derives from it
        build_specs(params(**item))
    return str(failure.value)


def with_hosts(*hosts, **dhcp):
    item = copy.deepcopy(LAB)
    item['ipv4']['dhcp']['hosts'] = list(hosts)
    item['ipv4']['dhcp'].update(dhcp)
    return item


# --- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize('item, message', [
    (with_hosts({'mac': '52:54:00:00:77:10', 'ip': '10.78.0.10'}),
     'ipv4.dhcp.hosts[0].ip: 10.78.0.10 is outside the subnet 10.77.0.0/24'),
    (with_hosts({'mac': '52:54:00:00:77:10', 'ip': '10.77.0.10'}, {'mac': '52:54:00:00:77:10', 'ip': '10.77.0.11'}),
     'ipv4.dhcp.hosts[1].mac: 52:54:00:00:77:10 is also the mac of hosts[0]'),
    (with_hosts({'mac': '52:54:00:00:77:10', 'ip': '10.77.0.10'}, {'mac': '52:54:00:00:77:11', 'ip': '10.77.0.10'}),
     'ipv4.dhcp.hosts[1].ip: 10.77.0.10 is also the ip of hosts[0]'),
    (with_hosts({'mac': '52:54:00:00:77:10', 'ip': '10.77.0.10', 'name': 'a'},
                {'mac': '52:54:00:00:77:11', 'ip': '10.77.0.11', 'name': 'a'}),
     'ipv4.dhcp.hosts[1].name: a is also the name of hosts[0]'),
    (with_hosts({'mac': '52:54:00:00:77', 'ip': '10.77.0.10'}), "ipv4.dhcp.hosts[0].mac: '52:54:00:00:77' is not a MAC"),
    (with_hosts({'ip': '10.77.0.10'}), 'ipv4.dhcp.hosts[0]: give mac or name'),
    (with_hosts({'mac': '52:54:00:00:77:10', 'ip': '10.77.0.1'}), "ipv4.dhcp.hosts[0].ip: 10.77.0.1 is the network's own"),
    (with_hosts(range={'start': '10.77.0.199', 'end': '10.77.0.100'}),
     'ipv4.dhcp.range: start 10.77.0.199 comes after end 10.77.0.100'),
    (with_hosts(range={'start': '10.77.0.100', 'end': '10.77.1.100'}),
     'ipv4.dhcp.range.end: 10.77.1.100 is outside the subnet 10.77.0.0/24'),
    (dict(LAB, bridge='virbr-much-too-long'), "bridge: 'virbr-much-too-long' is not an interface name libvirt accepts"),
    (dict(LAB, forward='bridge'), 'bridge: forward bridge needs the name of an existing host bridge'),
    (dict(LAB, forward='bridge', bridge='br0'), 'ipv4: forward bridge hands guests to a host device'),
    ({'name': 'mv', 'forward': 'macvtap'}, 'interface: forward macvtap needs the host interface'),
    ({'name': 'iso', 'forward': 'isolated', 'interface': 'eth1'}, 'interface: forward isolated takes no host interface'),
    (dict(LAB, mtu=20), 'mtu: must be between 68 and 65535, not 20'),
    (dict(LAB, ipv4={'address': '10.77.0.0', 'prefix': 24}), 'ipv4.address: 10.77.0.0 is the network or broadcast'),
    (dict(LAB, ipv4={'address': 'fd00::1', 'prefix': 64}), "ipv4.address: 'fd00::1' is not an IPv4 address"),
    (dict(LAB, ipv6={'address': 'fd00::1', 'prefix': 64, 'dhcp': {'hosts': [{'mac': '52:54:00:00:77:10', 'ip': 'fd00::5'}]}}),
     'ipv6.dhcp.hosts[0].mac: IPv6 DHCP hosts are matched by name'),
    (dict(LAB, dns_hosts=[{'ip': '10.77.0.10', 'names': ['a']}, {'ip': '10.77.0.11', 'names': ['a']}]),
     'dns_hosts[1].names: a is also in dns_hosts[0]'),
    (dict(LAB, dns_hosts=[{'ip': '10.77.0.300', 'names': ['a']}]), "dns_hosts[0].ip: '10.77.0.300' is not an IPv4"),
    ({'name': 'a/b'}, "name 'a/b' contains '/'"),
    ({'xml': '<network><name>x</name>', 'name': 'x'}, 'xml: not well-formed XML'),
    ({'xml': '<network><name>x</name></network>', 'name': 'y'}, "name 'y' differs from the <name> 'x'"),
    ({'xml': '<network><name>x</name></network>', 'mtu': 1500}, 'xml and the structured options (mtu) are mutually'),
])
def test_bad_input_is_refused_naming_the_option(item, message):
    assert message in error_of(**item)


def test_errors_in_a_batch_name_the_item():
    batch = [LAB, with_hosts({'mac': '52:54:00:00:77:10', 'ip': '10.77.0.10'}, {'mac': '52:54:00:00:77:11', 'ip': '10.9.0.1'})]
    batch[1]['name'] = 'lab2'
    message = error_of(networks=batch)
    assert message.startswith('networks[1].ipv4.dhcp.hosts[1].ip: 10.9.0.1 is outside the subnet')


def test_a_network_twice_in_a_batch_is_refused():
    assert "network 'lab' appears twice: networks[0] and networks[1]" in error_of(networks=[LAB, LAB])


def test_top_level_values_are_item_defaults():
    specs, batch = build_specs(params(state='inactive', force=True, networks=[LAB, dict(LAB, name='b', state='absent')]))
    assert batch
    assert [(spec.state, spec.force, spec.apply) for spec in specs] == [
        ('inactive', True, 'next_start'), ('absent', True, 'next_start')]


def test_options_are_normalized():
    item = with_hosts({'mac': '52:54:00:AA:77:10', 'ip': '10.77.0.10'})
    item['ipv6'] = {'address': 'fd00:77:0:0::1', 'prefix': 64}
    given = spec_of(**item).given
    assert given['ipv4']['dhcp']['hosts'] == [{'mac': '52:54:00:aa:77:10', 'ip': '10.77.0.10', 'name': None}]
    assert given['ipv6'] == {'address': 'fd00:77::1', 'prefix': 64, 'dhcp': None}


# --- reading and patching XML ----------------------------------------------------------------------

def test_stored_xml_reads_into_the_model():
    model = nx.describe(nx.parse(STORED))
    assert model['forward'] == 'nat' and model['bridge'] == 'virbr1'
    assert model['ipv4'] == {'address': '10.77.0.1', 'prefix': 24, 'dhcp': {
        'range': {'start': '10.77.0.100', 'end': '10.77.0.199'},
        'hosts': [{'mac': '52:54:00:00:77:10', 'ip': '10.77.0.10', 'name': 'web1'}]}}
    assert model['ipv6'] == {'address': 'fd00:77::1', 'prefix': 64, 'dhcp': {
        'range': None, 'hosts': [{'mac': None, 'ip': 'fd00:77::10', 'name': 'web1'}]}}
    assert model['dns_hosts'] == [{'ip': '10.77.0.10', 'names': ['web1.lab']}]


def test_the_same_network_asked_again_has_no_difference():
    have = nx.describe(nx.parse(STORED))
    item = copy.deepcopy(LAB)
    item['ipv6'] = {'address': 'fd00:77::1', 'prefix': 64, 'dhcp': {'hosts': [{'name': 'web1', 'ip': 'fd00:77::10'}]}}
    item['dns_hosts'] = [{'ip': '10.77.0.10', 'names': ['web1.lab']}]
    assert plan.differences(have, spec_of(**item).wanted(have)) == []


def test_patching_changes_what_differs_and_keeps_the_rest():
    root = nx.parse(STORED)
    have = nx.describe(root)
    item = with_hosts({'mac': '52:54:00:00:77:11', 'ip': '10.77.0.11', 'name': 'web2'})
    item.update(mtu=9000, dns_hosts=[], forward='route', interface='eth1')
    wanted = spec_of(**item).wanted(have)
    patched = nx.patched(root, have, wanted)
    assert nx.describe(patched) == wanted
    text = nx.to_text(patched)
    for kept in ("<uuid>680f67af", '<mac address="52:54:00:0A:1B:2C"', 'name="virbr1"', '<tftp root="/srv/tftp"',
                 '<bootp file="pxelinux.0"', '<forwarder addr="192.0.2.53"'):
        assert kept in text
    assert '<nat>' not in text  # a new forward mode


def test_a_new_network_leaves_the_bridge_name_to_libvirt():
    wanted = spec_of(**LAB).wanted(None)
    root = nx.patched(nx.new_network('lab'), nx.empty_model(), wanted)
    assert root.find('bridge') is None and nx.describe(root) == wanted


def test_macvtap_and_host_bridge_networks():
    mv = spec_of(name='mv', forward='macvtap', interface='eth1').wanted(None)
    assert nx.to_text(nx.patched(nx.new_network('mv'), nx.empty_model(), mv)).count('<forward mode="bridge" dev="eth1"') == 1
    libvirt_form = nx.parse("<network><name>mv</name><forward dev='eth1' mode='bridge'><interface dev='eth1'/></forward></network>")
    assert nx.describe(libvirt_form) == mv
    br = spec_of(name='br', forward='bridge', bridge='br0').wanted(None)
    assert nx.describe(nx.parse("<network><name>br</name><forward mode='bridge'/><bridge name='br0'/></network>")) == br


def test_full_xml_compares_without_what_libvirt_adds():
    asked = nx.parse("<network><name>lab</name><forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>"
                     "<dns><forwarder addr='192.0.2.53'/><host ip='10.77.0.10'><hostname>web1.lab</hostname></host></dns>"
                     "<ip address='10.77.0.1' netmask='255.255.255.0'><tftp root='/srv/tftp'/><dhcp>"
                     "<range start='10.77.0.100' end='10.77.0.199'/><host mac='52:54:00:00:77:10' name='web1' "
                     "ip='10.77.0.10'/><bootp file='pxelinux.0'/></dhcp></ip>"
                     "<ip family='ipv6' address='fd00:77::1' prefix='64'><dhcp><host name='web1' ip='fd00:77::10'/></dhcp></ip>"
                     "</network>")
    stored = nx.parse(STORED)
    kept = nx.kept_from(stored, asked)
    assert nx.canonical(stored, asked) == nx.canonical(kept, asked)
    assert kept.findtext('uuid') == '680f67af-2ea4-44c4-9242-5c5e5a392527'
    assert kept.find('bridge').get('name') == 'virbr1'
    asked.find('ip/dhcp/host').set('ip', '10.77.0.12')
    kept = nx.kept_from(stored, asked)
    assert nx.canonical(stored, asked) != nx.canonical(kept, asked)
    assert nx.canonical(stored, asked, True) == nx.canonical(kept, asked, True)  # only hosts differ


def test_the_default_nat_ports_of_a_running_network_are_no_difference():
    asked = nx.parse("<network><name>n</name><forward mode='nat'/></network>")
    running = ("<network><name>n</name><uuid>680f67af-2ea4-44c4-9242-5c5e5a392527</uuid><forward mode='nat'><nat>"
               "<port start='%s' end='65535'/></nat></forward><bridge name='virbr1' stp='on' delay='0'/></network>")
    assert nx.canonical(nx.parse(running % 1024), asked) == nx.canonical(asked, asked)
    assert nx.canonical(nx.parse(running % 2048), asked) != nx.canonical(asked, asked)


# --- planning --------------------------------------------------------------------------------------

def host(mac, ip, name=None):
    return {'mac': mac, 'ip': ip, 'name': name}


A, B, C = '52:54:00:00:00:0a', '52:54:00:00:00:0b', '52:54:00:00:00:0c'


def commands(steps):
    return [(step.command, step.xml) for step in steps]


def test_a_changed_host_is_modified_in_place():
    steps = plan.dhcp_steps([host(A, '10.0.0.10', 'a')], [host(A, '10.0.0.11', 'a')], 0)
    assert commands(steps) == [('modify', '<host mac="%s" name="a" ip="10.0.0.11" />' % A)]


def test_removals_come_before_additions():
    steps = plan.dhcp_steps([host(A, '10.0.0.10')], [host(B, '10.0.0.10')], 2)
    assert [step.command for step in steps] == ['delete', 'add'] and all(step.parent == 2 for step in steps)


def test_swapped_addresses_modify_the_host_meant():
    before = [host(A, '10.0.0.10'), host(B, '10.0.0.11')]
    after = [host(A, '10.0.0.11'), host(B, '10.0.0.10')]
    current = list(before)
    for step in plan.dhcp_steps(before, after, 0):
        # what libvirt does: MODIFY replaces the first host sharing MAC, name or IP
        entry = nx.describe(nx.parse("<network><name>x</name><ip address='10.0.0.1' prefix='24'><dhcp>%s</dhcp></ip>"
                                     "</network>" % step.xml))['ipv4']['dhcp']['hosts'][0]
        if step.command == 'modify':
            index = next(i for i, have in enumerate(current) if any(
                entry[key] and have[key] == entry[key] for key in ('mac', 'name', 'ip')))
            assert current[index]['mac'] == entry['mac']
            current[index] = entry
        elif step.command == 'delete':
            current.remove(entry)
        else:
            assert not any(have[key] and have[key] == entry[key] for have in current for key in ('mac', 'ip'))
            current.append(entry)
    assert sorted(current, key=str) == sorted(after, key=str)


def test_dns_hosts_are_deleted_and_added_never_modified():
    steps = plan.dns_steps([{'ip': '10.0.0.10', 'names': ['a']}], [{'ip': '10.0.0.10', 'names': ['b']}])
    assert [(step.command, step.section, step.parent) for step in steps] == [('delete', 'dns_host', -1),
                                                                             ('add', 'dns_host', -1)]


def test_only_hosts_change_live():
    have = nx.describe(nx.parse(STORED))
    want = copy.deepcopy(have)
    want['ipv4']['dhcp']['hosts'].append(host(C, '10.77.0.12', 'c'))
    want['mtu'] = 9000
    lines = plan.differences(have, want)
    assert lines == [('mtu: none -> 9000', False), ('ipv4.dhcp.hosts: + %s 10.77.0.12 c' % C, True)]
    want['ipv4']['prefix'] = 16
    assert ('ipv4.dhcp.hosts: + %s 10.77.0.12 c' % C, False) in plan.differences(have, want)
    assert plan.update_steps(have, want, {'ipv4': 0, 'ipv6': 1}) == []
