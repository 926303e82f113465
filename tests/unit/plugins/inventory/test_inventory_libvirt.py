# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtops.hypervisor.libvirt inventory against libvirt's test driver.

Two "hypervisors" are test driver files (fixtures/hypervisor-a.xml, hypervisor-b.xml); test:///default is a
third. The plugin is loaded through ansible's plugin loader, as ansible-inventory loads it, and parsed
in-process so that warnings and connections can be counted.
"""

from __future__ import annotations

import importlib
import re
import time
from pathlib import Path

import libvirt
import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader
from ansible.utils.collection_loader import AnsibleCollectionConfig
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
from ansible.utils.display import Display

FIXTURES = Path(__file__).resolve().parent / 'fixtures'
HV_A = 'test://%s' % (FIXTURES / 'hypervisor-a.xml')
HV_B = 'test://%s' % (FIXTURES / 'hypervisor-b.xml')
REFUSED = 'qemu+tcp://127.0.0.1:1/system'  # nothing listens on port 1
MISSING = 'test:///nonexistent/hypervisor.xml'
AUTH = 'test://%s' % (FIXTURES / 'hypervisor-auth.xml')  # wants credentials the plugin does not have


@pytest.fixture(scope='module', autouse=True)
def plugin_loader(collections_root):
    """The collection loader ansible-inventory installs, for this module's tests only."""
    installed = AnsibleCollectionConfig.collection_finder is None
    if installed:
        init_plugin_loader([str(collections_root)])
    # conftest imported the collection before the loader existed: give it the metadata the loader would read.
    package = importlib.import_module('ansible_collections.virtops.hypervisor')
    if getattr(package, '_collection_meta', None) is None:
        package._collection_meta = yaml.safe_load((Path(package.__path__[0]) / 'meta' / 'runtime.yml').read_text())
    yield
    if installed:
        _AnsibleCollectionFinder._remove()


@pytest.fixture
def warnings(monkeypatch):
    seen = []
    monkeypatch.setattr(Display, 'warning', lambda self, msg, *args, **kwargs: seen.append(msg))
    return seen


@pytest.fixture
def connections(monkeypatch):
    """The URIs the plugin connects to (hypervisors are read at the same time: in no particular order)."""
    opened = []
    real_open = libvirt.open

    def counting_open(uri=None):
        opened.append(uri)
        return real_open(uri)
    monkeypatch.setattr(libvirt, 'open', counting_open)
    return opened


@pytest.fixture
def hypervisor_host():
    conn = libvirt.open('test:///default')
    try:
        return conn.getHostname()
    finally:
        conn.close()


@pytest.fixture
def parse(tmp_path):
    """parse(options, cache=False, name='x.libvirt.yml') -> InventoryData, as ansible-inventory fills it."""
    def run(options, cache=False, name='x.libvirt.yml'):
        source = tmp_path / name
        source.write_text(yaml.safe_dump(dict({'plugin': 'virtops.hypervisor.libvirt'}, **options)))
        plugin = inventory_loader.get('virtops.hypervisor.libvirt')
        assert plugin.verify_file(str(source))
        inventory = InventoryData()
        plugin.parse(inventory, DataLoader(), str(source), cache=cache)
        if options.get('cache'):
            plugin.update_cache_if_changed()  # what the auto plugin does after parse
        return inventory
    return run


def host_vars(inventory, name):
    return inventory.get_host(name).get_vars()


def members(inventory, group):
    return sorted(host.name for host in inventory.groups[group].get_hosts()) if group in inventory.groups else []


def test_domains_of_each_hypervisor_are_hosts_with_their_state_size_tags_and_address(parse, hypervisor_host):
    inventory = parse({'uris': [HV_A]})
    assert sorted(inventory.hosts) == ['batch1', 'db1', 'web1']
    web1 = host_vars(inventory, 'web1')
    assert {key: value for key, value in web1.items() if key.startswith('libvirt_')} == {
        'libvirt_name': 'web1',
        'libvirt_uuid': '0a000000-0000-4000-8000-000000000001',
        'libvirt_state': 'running',
        'libvirt_vcpus': 2,
        'libvirt_memory_mib': 512,
        'libvirt_autostart': False,
        'libvirt_persistent': True,
        'libvirt_hypervisor': HV_A,
        'libvirt_hypervisor_host': hypervisor_host,
        'libvirt_tags': ['web', 'zone-a'],
        'libvirt_metadata': {'role': 'frontend'},
        'libvirt_macs': ['52:54:00:0a:00:01'],
        'libvirt_interfaces': [{
            'mac': '52:54:00:0a:00:01', 'name': 'testnet0', 'network': 'default', 'bridge': None,
            'addresses': [
                {'address': '192.168.122.3', 'prefix': 24, 'family': 'ipv4', 'source': 'lease'},
                {'address': '192.168.122.3', 'prefix': 24, 'family': 'ipv4', 'source': 'arp'},
            ],
        }],
        'libvirt_guest_agent': 'absent',
        'libvirt_address': '192.168.122.3',
    }
    assert web1['ansible_host'] == '192.168.122.3'


def test_shut_off_domains_are_listed_with_their_state_and_no_address(parse):
    db1 = host_vars(parse({'uris': [HV_A]}), 'db1')
    assert db1['libvirt_state'] == 'shutoff'
    assert db1['libvirt_macs'] == ['52:54:00:0a:00:02']
    assert db1['libvirt_interfaces'][0]['addresses'] == []
    assert db1['libvirt_address'] is None
    assert 'ansible_host' not in db1


def test_hosts_are_grouped_by_state_hypervisor_and_tag(parse, hypervisor_host):
    inventory = parse({'uris': [HV_A, HV_B]})
    hypervisor_group = 'libvirt_hypervisor_' + ''.join(c if c.isalnum() else '_' for c in hypervisor_host)
    assert members(inventory, 'libvirt_running') == ['app-2', 'web1', 'web1.' + hypervisor_host]
    assert members(inventory, 'libvirt_shutoff') == ['db1']
    assert members(inventory, 'libvirt_paused') == ['batch1']
    assert len(members(inventory, hypervisor_group)) == 5
    assert members(inventory, 'tag_web') == ['web1', 'web1.' + hypervisor_host]
    assert members(inventory, 'tag_zone_a') == ['app-2', 'web1']  # zone-a made a valid group name
    assert members(inventory, 'tag_db') == ['db1']


def test_default_groups_false_leaves_only_the_groups_asked_for(parse):
    inventory = parse({'uris': [HV_A], 'default_groups': False, 'groups': {'big': 'libvirt_vcpus > 1'}})
    assert sorted(inventory.groups) == ['all', 'big', 'ungrouped']
    assert members(inventory, 'big') == ['web1']


def test_states_limits_the_domains_listed(parse):
    inventory = parse({'uris': [HV_A], 'states': ['running', 'paused']})
    assert sorted(inventory.hosts) == ['batch1', 'web1']


def test_an_unreachable_hypervisor_is_a_warning_and_the_others_are_listed(parse, warnings):
    inventory = parse({'uris': [REFUSED, HV_B, MISSING, AUTH]})
    assert sorted(inventory.hosts) == ['app-2', 'web1']
    assert len(warnings) == 3
    assert warnings[0].startswith('libvirt inventory: cannot read hypervisor %s: ' % REFUSED)
    assert 'Connection refused' in warnings[0]
    assert warnings[1].startswith('libvirt inventory: cannot read hypervisor %s: ' % MISSING)
    assert warnings[2].startswith('libvirt inventory: cannot read hypervisor %s: ' % AUTH)
    assert 'Missing authentication credentials' in warnings[2]


def test_no_reachable_hypervisor_is_an_empty_inventory_with_a_warning_each(parse, warnings):
    inventory = parse({'uris': [REFUSED, MISSING]})
    assert not inventory.hosts
    assert [message.split(': ')[1] for message in warnings] == [
        'cannot read hypervisor %s' % REFUSED, 'cannot read hypervisor %s' % MISSING]


def test_fail_on_unreachable_fails_naming_the_hypervisor(parse):
    with pytest.raises(AnsibleError, match=re.escape(REFUSED) + ': .*Connection refused'):
        parse({'uris': [HV_A, REFUSED], 'fail_on_unreachable': True})


def test_a_name_taken_on_another_hypervisor_is_not_overwritten(parse, warnings, hypervisor_host):
    inventory = parse({'uris': [HV_A, HV_B]})
    assert host_vars(inventory, 'web1')['libvirt_uuid'] == '0a000000-0000-4000-8000-000000000001'
    other = host_vars(inventory, 'web1.' + hypervisor_host)
    assert (other['libvirt_uuid'], other['libvirt_hypervisor']) == ('0b000000-0000-4000-8000-000000000001', HV_B)
    assert warnings == [
        'libvirt inventory: host name web1 of domain web1 on %s is taken by a domain of %s: listed as web1.%s '
        "(hostname_format: '{name}.{hypervisor_host}' names every domain with its hypervisor)"
        % (HV_B, HV_A, hypervisor_host)]


def test_the_same_domain_through_two_uris_is_listed_once(parse, warnings, libvirt_test_conn):
    # The driver's own domain `test`, and whatever other test modules of this process left on the driver.
    domains = sorted(dom.name() for dom in libvirt_test_conn.listAllDomains(0))
    inventory = parse({'uris': ['test:///default', 'test:///default']})
    assert 'test' in domains and sorted(inventory.hosts) == domains
    assert len(warnings) == len(domains)
    assert all('is the one listed already from test:///default: listed once' in warning for warning in warnings)


def test_hostname_format_names_hosts_after_their_hypervisor(parse, warnings, hypervisor_host):
    inventory = parse({'uris': [HV_B], 'hostname_format': '{name}.{hypervisor_host}'})
    assert sorted(inventory.hosts) == ['app-2.' + hypervisor_host, 'web1.' + hypervisor_host]
    assert not warnings


def test_a_bad_hostname_format_fails_before_connecting(parse, connections):
    with pytest.raises(AnsibleError, match=r"hostname_format '\{host\}': 'host' is not a field"):
        parse({'uris': [HV_A], 'hostname_format': '{host}'})
    assert connections == []


def test_vars_prefix_names_the_host_variables(parse):
    web1 = host_vars(parse({'uris': [HV_A], 'vars_prefix': 'kvm_'}), 'web1')
    assert web1['kvm_state'] == 'running' and web1['kvm_tags'] == ['web', 'zone-a']
    assert not [key for key in web1 if key.startswith('libvirt_')]


def test_a_bad_vars_prefix_fails_before_connecting(parse, connections):
    with pytest.raises(AnsibleError, match="vars_prefix '1x-'"):
        parse({'uris': [HV_A], 'vars_prefix': '1x-'})
    assert connections == []


def test_compose_groups_and_keyed_groups_use_the_host_variables(parse):
    inventory = parse({
        'uris': [HV_A, HV_B],
        'hostname_format': '{name}-{uuid}',
        'compose': {'ansible_user': "'admin' if 'web' in libvirt_tags else 'root'",
                    'ansible_host': 'libvirt_name + ".lab"'},
        'groups': {'frontends': "libvirt_metadata.role | default('') == 'frontend'"},
        'keyed_groups': [{'key': 'libvirt_metadata.role | default("none")', 'prefix': 'role'}],
    })
    web1 = host_vars(inventory, 'web1-0a000000-0000-4000-8000-000000000001')
    assert (web1['ansible_user'], web1['ansible_host']) == ('admin', 'web1.lab')  # compose replaces the address
    assert host_vars(inventory, 'db1-0a000000-0000-4000-8000-000000000002')['ansible_user'] == 'root'
    assert members(inventory, 'frontends') == ['web1-0a000000-0000-4000-8000-000000000001']
    assert members(inventory, 'role_db') == ['db1-0a000000-0000-4000-8000-000000000002']
    assert members(inventory, 'role_app') == ['app-2-0b000000-0000-4000-8000-000000000002']
    assert len(members(inventory, 'role_none')) == 2  # batch1 and the web1 of hypervisor b


def test_strict_turns_a_compose_error_into_a_failure(parse):
    options = {'uris': [HV_A], 'compose': {'role': 'libvirt_metadata.role'}}
    inventory = parse(options)
    assert host_vars(inventory, 'web1')['role'] == 'frontend'
    assert 'role' not in host_vars(inventory, 'batch1')  # undefined there: left out
    with pytest.raises(AnsibleError, match='batch1'):
        parse(dict(options, strict=True))


def test_filters_list_only_the_domains_all_of_them_accept(parse):
    inventory = parse({'uris': [HV_A, HV_B], 'filters': ["'zone-a' in libvirt_tags", 'libvirt_vcpus > 1']})
    assert sorted(inventory.hosts) == ['app-2', 'web1']


def test_a_filter_that_cannot_be_evaluated_leaves_the_domain_out_or_fails_with_strict(parse):
    options = {'uris': [HV_A], 'filters': ["libvirt_metadata.role == 'db'"]}
    assert sorted(parse(options).hosts) == ['db1']  # batch1 has no role
    with pytest.raises(AnsibleError, match="filter .* on domain batch1"):
        parse(dict(options, strict=True))


def test_address_options_choose_ansible_host(parse):
    assert 'ansible_host' not in host_vars(parse({'uris': [HV_A], 'address_family': 'ipv6'}), 'web1')
    web1 = host_vars(parse({'uris': [HV_A], 'address_sources': []}), 'web1')
    assert web1['libvirt_interfaces'][0]['addresses'] == [] and 'ansible_host' not in web1
    web1 = host_vars(parse({'uris': [HV_A], 'address_sources': ['arp']}), 'web1')
    assert [entry['source'] for entry in web1['libvirt_interfaces'][0]['addresses']] == ['arp']


def test_uris_come_from_the_environment_when_the_file_has_none(parse, monkeypatch):
    monkeypatch.setenv('VIRTOPS_LIBVIRT_URIS', '%s,%s' % (HV_A, HV_B))
    assert len(parse({}).hosts) == 5


def test_only_files_named_libvirt_yml_are_sources(tmp_path):
    plugin = inventory_loader.get('virtops.hypervisor.libvirt')
    for name, accepted in (('kvm.libvirt.yml', True), ('libvirt.yaml', True), ('hosts.yml', False)):
        (tmp_path / name).write_text('plugin: virtops.hypervisor.libvirt\n')
        assert plugin.verify_file(str(tmp_path / name)) is accepted, name


def cached(tmp_path, **options):
    return dict({'cache': True, 'cache_plugin': 'ansible.builtin.jsonfile',
                 'cache_connection': str(tmp_path / 'cache')}, **options)


def test_a_cached_inventory_is_listed_again_without_connecting(parse, connections, tmp_path):
    options = cached(tmp_path, uris=[HV_A, HV_B])
    first = parse(options, cache=True)
    assert sorted(connections) == [HV_A, HV_B]
    second = parse(options, cache=True)
    assert len(connections) == 2  # none more
    assert sorted(second.hosts) == sorted(first.hosts)
    assert host_vars(second, 'web1')['libvirt_tags'] == ['web', 'zone-a']
    parse(options, cache=False)  # a refresh (meta: refresh_inventory, --flush-cache) reads and stores again
    assert sorted(connections) == [HV_A, HV_A, HV_B, HV_B]


def test_a_listing_with_an_unreachable_hypervisor_is_not_cached(parse, connections, tmp_path, warnings):
    options = cached(tmp_path, uris=[HV_A, MISSING])
    parse(options, cache=True)
    parse(options, cache=True)
    assert sorted(connections) == sorted([HV_A, MISSING] * 2)
    assert len(warnings) == 2


def test_a_cached_listing_is_not_served_for_other_uris(parse, connections, tmp_path):
    parse(cached(tmp_path, uris=[HV_A]), cache=True)
    inventory = parse(cached(tmp_path, uris=[HV_B]), cache=True)
    assert connections == [HV_A, HV_B]
    assert sorted(inventory.hosts) == ['app-2', 'web1']
    assert host_vars(inventory, 'web1')['libvirt_hypervisor'] == HV_B


def test_options_other_than_uris_and_sources_apply_to_a_cached_listing(parse, connections, tmp_path):
    parse(cached(tmp_path, uris=[HV_A]), cache=True)
    inventory = parse(cached(tmp_path, uris=[HV_A], states=['shutoff'], vars_prefix='kvm_'), cache=True)
    assert connections == [HV_A]
    assert sorted(inventory.hosts) == ['db1'] and host_vars(inventory, 'db1')['kvm_state'] == 'shutoff'


def test_a_hypervisor_that_reports_no_host_name_is_named_after_its_uri():
    plugin_class = inventory_loader.get('virtops.hypervisor.libvirt', class_only=True)
    plugin_module = importlib.import_module(plugin_class.__module__)

    class NoHostName(object):
        def getHostname(self):
            raise libvirt.libvirtError('this function is not supported by the connection driver')
    assert plugin_module.hypervisor_host(NoHostName(), 'qemu+ssh://root@kvm9.example.com/system') == 'kvm9.example.com'
    assert plugin_module.hypervisor_host(NoHostName(), 'qemu:///system') == 'localhost'


def test_hypervisors_are_read_at_the_same_time(parse, monkeypatch):
    """A slow hypervisor does not hold up the others: all are read in about the time of the slowest."""
    real_open = libvirt.open

    def slow_open(uri=None):
        time.sleep(0.8)
        return real_open(uri)
    monkeypatch.setattr(libvirt, 'open', slow_open)
    start = time.monotonic()
    inventory = parse({'uris': [HV_A, HV_B, 'test:///default', MISSING]})
    assert time.monotonic() - start < 2.4  # one after the other: 3.2 s
    assert len(inventory.hosts) == 6
