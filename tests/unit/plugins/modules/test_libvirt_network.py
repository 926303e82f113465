# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_network and libvirt_network_info against libvirt's test driver (test:///default).

The test driver keeps its networks for the life of the process, so the modules run in-process here. It
keeps one definition per network (no separate stored one for a running network) and lists no leases:
restarts, dnsmasq and leases are covered by tests/integration/host/test_libvirt_network.py.
"""

from __future__ import annotations

import copy
import itertools

import libvirt  # requirements-dev.txt installs libvirt-python: a missing binding is a failure, not a skip
import pytest

from virtops_unitlib import on_test_driver  # noqa: E402

from ansible_collections.virtops.hypervisor.plugins.module_utils import _network  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.modules import libvirt_network, libvirt_network_info  # noqa: E402

URI = 'test:///default'
_names = itertools.count()


@pytest.fixture(scope='module', autouse=True)
def test_driver():
    """The test driver forgets its networks when its last connection closes: hold one open. It is shared by
    the whole process: domains other test modules left on it are removed, so only the driver's own running
    domain `test` uses its `default` network, as the tests expect."""
    connection = libvirt.open(URI)
    for dom in connection.listAllDomains(0):
        if dom.name() != 'test':
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    yield connection
    connection.close()


@pytest.fixture
def network(capsys):
    return on_test_driver(libvirt_network, capsys)


@pytest.fixture
def info(capsys):
    return on_test_driver(libvirt_network_info, capsys)


@pytest.fixture
def four_ways(network):
    """check, real, rerun, check rerun: the first two change, the last two do not, and check mode predicts."""
    def call(args, verify=None):
        check = network(args, check=True)
        real = network(args)
        if verify:
            verify()
        rerun = network(args)
        check_rerun = network(args, check=True)
        for report in (check, real, rerun, check_rerun):
            assert not report.get('failed'), report
        assert check['changed'] and real['changed'], (check, real)
        assert not rerun['changed'] and not check_rerun['changed'], (rerun, check_rerun)
        assert check['actions'] == real['actions'] and check['differences'] == real['differences']
        assert check['diff'] == real['diff']  # the test driver names no bridges: nothing check mode cannot know
        return check, real, rerun, check_rerun
    return call


@pytest.fixture
def name():
    return 'unit-net-%d' % next(_names)


def lab(name, *hosts):
    return {'name': name, 'forward': 'nat', 'bridge': 'vb-%s' % name[-6:], 'domain': 'lab.internal', 'ipv4': {
        'address': '10.77.0.1', 'prefix': 24, 'dhcp': {'range': {'start': '10.77.0.100', 'end': '10.77.0.199'},
                                                       'hosts': list(hosts)}}}


WEB1 = {'mac': '52:54:00:00:77:10', 'ip': '10.77.0.10', 'name': 'web1'}
WEB2 = {'mac': '52:54:00:00:77:11', 'ip': '10.77.0.11', 'name': 'web2'}


def xml_of(name):
    return libvirt.open(URI).networkLookupByName(name).XMLDesc(0)


def exists(name):
    return name in [net.name() for net in libvirt.open(URI).listAllNetworks(0)]


def test_a_new_network_is_defined_started_and_rerun_changes_nothing(four_ways, name):
    args = dict(lab(name, WEB1), autostart=True, dns_hosts=[{'ip': '10.77.0.10', 'names': ['web1.lab.internal']}])
    check, real, rerun = four_ways(args)[:3]
    assert real['actions'] == ['define', 'autostart', 'start']
    assert real['diff']['before'] == 'state: absent\n'
    assert 'dhcp host: 52:54:00:00:77:10 10.77.0.10 web1' in real['diff']['after']
    assert (rerun['state'], rerun['autostart'], rerun['bridge']) == ('active', True, args['bridge'])
    assert rerun['uuid'] == real['uuid'] and check['uuid'] is None
    assert "<host mac='52:54:00:00:77:10' name='web1' ip='10.77.0.10'/>" in xml_of(name)


def test_dhcp_hosts_change_on_the_running_network_without_a_restart(network, four_ways, name):
    network(lab(name, WEB1))
    moved = dict(WEB1, ip='10.77.0.12')
    real, rerun = four_ways(lab(name, moved, WEB2))[1:3]
    assert real['actions'] == ['update hosts (2)']
    assert real['differences'] == ['ipv4.dhcp.hosts: - 52:54:00:00:77:10 10.77.0.10 web1',
                                   'ipv4.dhcp.hosts: + 52:54:00:00:77:11 10.77.0.11 web2',
                                   'ipv4.dhcp.hosts: + 52:54:00:00:77:10 10.77.0.12 web1']
    assert not rerun['restart_required'] and rerun['restart_reasons'] == []
    assert "ip='10.77.0.12'" in xml_of(name) and "ip='10.77.0.11'" in xml_of(name)
    real = four_ways(lab(name))[1]
    assert real['actions'] == ['update hosts (2)'] and '<host ' not in xml_of(name)


def test_dns_hosts_change_on_the_running_network(network, four_ways, name):
    network(lab(name))
    args = dict(lab(name), dns_hosts=[{'ip': '10.77.0.10', 'names': ['web1.lab.internal']}])
    real = four_ways(args)[1]
    assert real['actions'] == ['update hosts (1)']
    args['dns_hosts'][0]['names'] = ['web1.lab.internal', 'www.lab.internal']
    real = four_ways(args)[1]
    assert real['actions'] == ['update hosts (2)']  # libvirt 9 cannot modify a DNS host: delete, add
    assert '<hostname>www.lab.internal</hostname>' in xml_of(name)


def test_options_left_out_keep_what_libvirt_has(network, name):
    network(dict(lab(name, WEB1), mtu=1400))
    report = network({'name': name, 'ipv4': lab(name, WEB1)['ipv4']})
    assert not report['changed'], report
    assert "<mtu size='1400'/>" in xml_of(name)


def test_an_inactive_network_is_redefined(four_ways, network, name):
    network(dict(lab(name), state='inactive'))
    args = dict(lab(name), state='inactive', mtu=9000, forward='route')
    real, rerun = four_ways(args)[1:3]
    assert real['actions'] == ['define'] and real['differences'] == ['forward: nat -> route', 'mtu: none -> 9000']
    assert rerun['state'] == 'inactive' and not rerun['restart_required']
    assert "<forward mode='route'/>" in xml_of(name)


def test_state_changes(four_ways, network, name):
    network(dict(lab(name), state='present'))
    four_ways({'name': name, 'state': 'active'})
    four_ways({'name': name, 'state': 'inactive'})
    four_ways({'name': name, 'autostart': True, 'state': 'present'})
    real = four_ways({'name': name, 'state': 'absent'})[1]
    assert real['actions'] == ['undefine'] and not exists(name)


def test_a_network_running_domains_use_is_not_removed_without_force(network):
    report = network({'name': 'default', 'state': 'absent'})
    assert report['failed'] and not report['changed']
    assert "running domains use it (test)" in report['msg'] and report['domains'] == ['test']
    assert exists('default')
    report = network({'name': 'default', 'state': 'absent'}, check=True)
    assert report['failed']
    report = network({'name': 'default', 'state': 'absent', 'force': True}, check=True)
    assert report['changed'] and report['actions'] == ['stop', 'undefine']


def test_a_batch_converges_every_item(four_ways, name):
    other = name + 'b'
    isolated = {'name': other, 'forward': 'isolated', 'state': 'active', 'ipv4': {'address': '10.78.0.1', 'prefix': 24}}
    args = {'state': 'inactive', 'networks': [lab(name, WEB1), isolated]}
    real, rerun = four_ways(args)[1:3]
    assert [(item['name'], item['state']) for item in rerun['networks']] == [(name, 'inactive'), (other, 'active')]
    assert len(real['diff']) == 2


def test_bad_item_in_a_batch_changes_nothing(network, name):
    bad = lab(name + 'b', WEB1, dict(WEB2, ip='10.9.0.11'))
    report = network({'networks': [lab(name, WEB1), bad]})
    assert report['failed'] and not report['changed']
    assert report['msg'].startswith('networks[1].ipv4.dhcp.hosts[1].ip: 10.9.0.11 is outside the subnet 10.77.0.0/24')
    assert not exists(name) and not exists(name + 'b')


def test_full_xml_reruns_are_no_ops(four_ways, network, name):
    xml = ("<network><name>%s</name><forward mode='nat'/><ip address='10.79.0.1' netmask='255.255.255.0'><dhcp>"
           "<range start='10.79.0.100' end='10.79.0.199'/><host mac='52:54:00:AA:79:10' ip='10.79.0.10'/></dhcp></ip>"
           "</network>" % name)
    four_ways({'xml': xml})
    uuid = libvirt.open(URI).networkLookupByName(name).UUIDString()
    real = four_ways({'xml': xml.replace("ip='10.79.0.10'", "ip='10.79.0.11'")})[1]
    assert real['actions'] == ['update hosts (1)']
    network({'name': name, 'state': 'inactive'})  # the test driver drops a stored definition when it stops a network
    real = four_ways({'xml': xml.replace('<network>', "<network><domain name='x.internal'/>"), 'state': 'inactive'})[1]
    assert real['actions'] == ['define']
    assert libvirt.open(URI).networkLookupByName(name).UUIDString() == uuid


def test_info_describes_networks_in_the_form_the_module_takes(network, info, name):
    network(dict(lab(name, WEB1), dns_hosts=[{'ip': '10.77.0.10', 'names': ['web1.lab.internal']}]))
    report = info(networks=[name, 'nope'])
    assert report['missing'] == ['nope'] and not report['changed']
    found = report['networks'][0]
    assert (found['name'], found['state'], found['forward'], found['addresses']) == (name, 'active', 'nat', ['10.77.0.1/24'])
    assert found['dhcp_hosts'] == [dict(WEB1, family='ipv4')]
    assert found['ipv4']['dhcp']['hosts'] == [WEB1]
    assert found['leases'] is None and 'cannot list the DHCP leases' in report['warned']
    reused = copy.deepcopy(found)
    args = dict((key, reused[key]) for key in ('name', 'forward', 'bridge', 'domain', 'ipv4', 'dns_hosts'))
    assert not network(args)['changed']


def test_a_restart_of_a_network_running_domains_use_is_refused_before_any_change(network):
    before = xml_of('default')
    for check in (True, False):
        report = network({'name': 'default', 'mtu': 9000, 'apply': 'restart'}, check=check)
        assert report['failed'] and not report['changed'] and report['actions'] == []
        assert "will not restart network 'default': running domains use it (test)" in report['msg']
    assert xml_of('default') == before


def test_a_host_another_run_added_meanwhile_is_no_change(network, name, monkeypatch):
    """The run reads the network, another run adds the same DHCP host, libvirt refuses the add: the module
    reads again, finds the host there and reports no change."""
    network(lab(name))
    stale = _network.read_network(libvirt.open(URI), name)
    libvirt.open(URI).networkLookupByName(name).update(
        libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, 0,
        "<host mac='52:54:00:00:77:10' name='web1' ip='10.77.0.10'/>",
        libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG)
    calls = []
    fresh = _network.read_network

    def read(conn, net):
        calls.append(net)
        return stale if len(calls) == 1 else fresh(conn, net)
    monkeypatch.setattr(_network, 'read_network', read)
    report = network(lab(name, WEB1))
    assert not report.get('failed') and not report['changed'], report
    assert report['actions'] == [] and report['differences'] == []
    assert len(calls) == 3  # the stale reading, the one after libvirt refused, the one reported
