# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain and libvirt_domain_info against libvirt's test driver (test:///default).

The test driver keeps its domains for the life of the process, so the modules run in-process here
(each call a fresh AnsibleModule, as ansible would start it). qemu:///system with real guests is
covered by tests/integration.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import libvirt  # requirements-dev.txt installs libvirt-python: a missing binding is a failure, not a skip
import pytest

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from virtops_unitlib import on_test_driver, patch_module_args, run_main  # noqa: E402

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import Result  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain import DomainManager  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_options import (  # noqa: E402
    MODULE_OPTIONS, build_specs)
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import LibvirtFailure  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.modules import libvirt_domain, libvirt_domain_info  # noqa: E402

URI = 'test:///default'
_names = itertools.count()


# The test driver forgets what the tests made when its last connection closes: the fixture holds one open.
pytestmark = pytest.mark.usefixtures('libvirt_test_conn')


@pytest.fixture
def domain(capsys):
    """Run libvirt_domain on the test driver."""
    return on_test_driver(libvirt_domain, capsys)


@pytest.fixture
def info(capsys):
    return on_test_driver(libvirt_domain_info, capsys)


@pytest.fixture
def name():
    return 'unit-%d' % next(_names)


def conn():
    return libvirt.open(URI)


def exists(name):
    return name in [dom.name() for dom in conn().listAllDomains(0)]


def state_of(name):
    return conn().lookupByName(name).state()[0]


def definition(name):
    return conn().lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def structured(name, **extra):
    return dict({'name': name, 'memory': 128, 'vcpus': 1, 'interfaces': [{'network': 'default'}],
                 'disks': [{'path': '/var/lib/libvirt/images/%s.qcow2' % name}]}, **extra)


def test_define_check_real_rerun(domain, name):
    check = domain(structured(name), check=True)
    assert check['changed'] is True and check['actions'] == ['define'] and not exists(name)
    assert '<memory unit=\'KiB\'>131072</memory>' in check['diff']['after']

    real = domain(structured(name))
    assert real['changed'] is True and real['created'] is True and exists(name)
    assert real['state'] == 'shutoff'
    first = definition(name)

    assert domain(structured(name))['changed'] is False
    assert domain(structured(name), check=True)['changed'] is False
    assert definition(name) == first


def test_update_keeps_uuid_and_mac(domain, name):
    domain(structured(name))
    uuid = conn().lookupByName(name).UUIDString()
    mac = libvirt_mac(name)
    changed = domain(structured(name, memory=256, interfaces=[{'bridge': 'br0'}]))
    assert changed['changed'] is True and changed['actions'] == ['update']
    assert changed['differences'] == ['current_memory_mib', 'interfaces', 'memory_mib']
    assert conn().lookupByName(name).UUIDString() == uuid and libvirt_mac(name) == mac
    assert "<source bridge='br0'/>" in definition(name)


def libvirt_mac(name):
    xml = definition(name)
    return xml.split("<mac address='")[1].split("'")[0]


@pytest.mark.parametrize('path, wanted, libvirt_state, actions', [
    ([], 'running', libvirt.VIR_DOMAIN_RUNNING, ['start']),
    (['running'], 'paused', libvirt.VIR_DOMAIN_PAUSED, ['pause']),
    (['paused'], 'running', libvirt.VIR_DOMAIN_RUNNING, ['resume']),
    ([], 'paused', libvirt.VIR_DOMAIN_PAUSED, ['start']),
    (['running'], 'shutdown', libvirt.VIR_DOMAIN_SHUTOFF, ['shutdown']),
    (['paused'], 'shutdown', libvirt.VIR_DOMAIN_SHUTOFF, ['shutdown']),
    (['running'], 'destroyed', libvirt.VIR_DOMAIN_SHUTOFF, ['destroy']),
    (['running'], 'saved', libvirt.VIR_DOMAIN_SHUTOFF, ['save']),
    (['running', 'saved'], 'running', libvirt.VIR_DOMAIN_RUNNING, ['restore']),
])
def test_state_transitions(domain, name, path, wanted, libvirt_state, actions):
    domain(structured(name))
    for step in path:
        domain({'name': name, 'state': step})
    before = state_of(name)
    check = domain({'name': name, 'state': wanted}, check=True)
    assert check['changed'] is True and check['actions'] == actions and state_of(name) == before
    real = domain({'name': name, 'state': wanted})
    assert real['changed'] is True and real['actions'] == actions and state_of(name) == libvirt_state
    assert real['state'] == check['state']
    assert domain({'name': name, 'state': wanted})['changed'] is False
    assert domain({'name': name, 'state': wanted}, check=True)['changed'] is False


def test_saved_state_of_a_shut_off_domain_is_refused(domain, name):
    domain(structured(name))
    result = domain({'name': name, 'state': 'saved'})
    assert result['failed'] is True
    assert "domain '%s' is shut off and has no saved state" % name in result['msg']


def test_autostart(domain, name):
    domain(structured(name))
    check = domain({'name': name, 'autostart': True}, check=True)
    assert check['changed'] is True and check['actions'] == ['autostart']
    assert '# autostart: no' in check['diff']['before'] and '# autostart: yes' in check['diff']['after']
    assert conn().lookupByName(name).autostart() == 0
    assert domain({'name': name, 'autostart': True})['changed'] is True
    assert conn().lookupByName(name).autostart() == 1
    assert domain({'name': name, 'autostart': True})['changed'] is False


def test_absent_destroys_and_undefines(domain, name):
    domain(structured(name, state='running'))
    check = domain({'name': name, 'state': 'absent'}, check=True)
    assert check['actions'] == ['destroy', 'undefine'] and exists(name)
    assert check['diff']['after'] == ''
    assert domain({'name': name, 'state': 'absent'})['changed'] is True and not exists(name)
    assert domain({'name': name, 'state': 'absent'})['changed'] is False


def test_full_xml_define_and_rerun(domain, name):
    xml = textwrap.dedent("""\
        <domain type='test'>
          <name>%s</name>
          <memory unit='MiB'>64</memory>
          <vcpu>1</vcpu>
          <os><type>hvm</type></os>
          <devices><interface type='network'><source network='default'/></interface></devices>
        </domain>""") % name
    assert domain({'xml': xml})['changed'] is True
    mac = libvirt_mac(name)
    assert domain({'xml': xml})['changed'] is False
    bigger = domain({'xml': xml.replace('>64<', '>96<')})
    assert bigger['differences'] == ['domain/memory: 98304 KiB, not 65536 KiB']
    assert libvirt_mac(name) == mac


def test_batch_converges_many_domains_in_one_call(domain):
    names = ['batch-%d-%d' % (next(_names), i) for i in range(5)]
    items = [structured(item) for item in names]
    first = domain({'domains': items, 'state': 'running'})
    assert first['changed'] is True and [item['actions'] for item in first['domains']] == [['define', 'start']] * 5
    assert len(first['diff']) == 5
    assert all(state_of(item) == libvirt.VIR_DOMAIN_RUNNING for item in names)
    again = domain({'domains': items, 'state': 'running'})
    assert again['changed'] is False and 'diff' not in again


def test_bad_item_in_a_batch_changes_nothing(domain, name):
    items = [structured(name), structured(name + '-b', interfaces=[{'network': 'default', 'mac': 'nope'}])]
    result = domain({'domains': items})
    assert result['failed'] is True
    assert result['msg'] == "domains[1].interfaces[0]: mac 'nope' is not a MAC address like 52:54:00:12:34:56"
    assert not exists(name)


@pytest.mark.parametrize('options, message', [
    ({'name': 'unit/slash'}, "name 'unit/slash' contains '/', which libvirt refuses in a domain name"),
    ({'vcpus': 100000}, 'vcpus 100000 is more than the 32 vCPUs that libvirt allows for test guests'),
], ids=['slash-in-name', 'vcpus-100000'])
def test_definition_libvirt_refuses_fails_alike_in_check_mode_and_changes_nothing(domain, name, options, message):
    args = dict(structured(name), **options)
    for check in (True, False):
        result = domain(args, check=check)
        assert result['failed'] is True
        assert result['msg'].startswith(message), result['msg']
        assert result['changed'] is False and result['actions'] == []
        assert result['failed_object'] == "domain '%s'" % args['name']
        assert not exists(args['name'])


def test_refused_item_in_a_batch_keeps_the_changes_before_it(domain, name):
    items = [structured(name, state='running'), structured(name + '-b', vcpus=100000), structured(name + '-c')]
    result = domain({'domains': items})
    assert result['failed'] is True and result['msg'].startswith('domains[1]: vcpus 100000 is more than'), result['msg']
    assert result['changed'] is True
    first, refused = result['domains']
    assert first['changed'] is True and first['actions'] == ['define'] and first['state'] == 'shutoff'
    assert refused['changed'] is False and refused['actions'] == []
    assert exists(name) and state_of(name) == libvirt.VIR_DOMAIN_SHUTOFF, 'the start queued after it did not run'
    assert not exists(name + '-b') and not exists(name + '-c'), 'nothing from the refused item on changed'


def test_a_slash_in_a_batch_is_refused_before_anything_changes(domain, name):
    result = domain({'domains': [structured(name, state='running'), structured(name + '/b')]})
    assert result['failed'] is True
    assert result['msg'] == "domains[1]: name '%s/b' contains '/', which libvirt refuses in a domain name" % name
    assert result['changed'] is False and not exists(name)


def test_duplicate_names_in_a_batch_are_refused(domain, name):
    result = domain({'domains': [structured(name), structured(name)]})
    assert result['msg'] == "domain '%s' appears twice: domains[0] and domains[1]" % name


@pytest.mark.parametrize('args, message', [
    ({'xml': '<domain><name>x</name>'}, 'xml is not well-formed XML: no element found (line 1, column 23)'),
    ({'name': 'x', 'memory': 0}, 'memory must be at least 1, not 0'),
    ({'name': 'x', 'disks': [{'path': 'relative.qcow2'}]}, "disks[0]: path 'relative.qcow2' must be absolute"),
    ({'name': 'x', 'disks': [{'device': 'disk'}]}, 'disks[0]: a disk needs path or volume (only a cdrom may be empty)'),
    ({'name': 'x', 'disks': [{'path': '/a', 'target': 'sda'}]}, "disks[0]: target 'sda' does not fit bus virtio (use vdX)"),
    ({'name': 'x', 'interfaces': [{'model': 'e1000'}]}, 'interfaces[0]: give network, bridge or type: user'),
    ({'name': 'never-defined', 'state': 'running'},
     "domain 'never-defined' does not exist at test:///default; give xml or structured options "
     "(memory, vcpus, disks...) to define it"),
])
def test_bad_input_is_refused_with_its_name(domain, args, message):
    result = domain(args)
    assert result['failed'] is True and result['msg'] == message


def test_existing_definition_survives_a_refused_update(domain, name):
    domain(structured(name))
    before = definition(name)
    result = domain({'name': name, 'domain_type': 'no-such-hypervisor'})
    assert result['failed'] is True
    assert result['msg'].startswith("libvirt refused the definition of domain '%s': " % name)
    assert result['msg'].endswith('The existing definition, if any, is unchanged.')
    assert definition(name) == before


def test_unreachable_daemon_names_the_uri_and_what_to_check(capsys):
    uri = 'qemu+unix:///system?socket=/nonexistent/libvirt-sock'
    result = run_main(libvirt_domain, {'name': 'x', 'uri': uri}, capsys)
    assert result['msg'].startswith('cannot connect to libvirt at %s: ' % uri)
    assert 'libvirt daemon runs' in result['msg'] and 'unix_sock_group' in result['msg']


def test_missing_bindings_name_the_package(collections_root, tmp_path):
    """Without libvirt-python: a module named libvirt that fails to import stands in for a Python without it."""
    (tmp_path / 'libvirt.py').write_text('raise ImportError("No module named libvirt")\n')
    args = tmp_path / 'args.json'
    args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': {'name': 'x'}}))
    proc = subprocess.run(
        [sys.executable, '-m', 'ansible_collections.virtops.hypervisor.plugins.modules.libvirt_domain', str(args)],
        capture_output=True, text=True, check=False, cwd=str(tmp_path),
        env={'PYTHONPATH': '%s:%s' % (tmp_path, collections_root), 'PATH': '/usr/bin:/bin'})
    result = json.loads(proc.stdout)
    assert result['failed'] is True
    assert 'Failed to import the required Python library (libvirt-python)' in result['msg']
    assert 'python3-libvirt' in result['msg']


def test_info_lists_domains_with_filters(domain, info, name):
    domain(structured(name, state='running'))
    found = info(name=[name, 'nope'])
    assert [item['name'] for item in found['domains']] == [name] and found['missing'] == ['nope']
    item = found['domains'][0]
    assert item['state'] == 'running' and item['memory_mib'] == 128 and item['vcpus'] == 1
    assert item['disks'][0]['source'] == '/var/lib/libvirt/images/%s.qcow2' % name
    assert item['interfaces'][0]['mac'] == libvirt_mac(name) and 'xml' not in item
    assert name not in [d['name'] for d in info(state=['shutoff'])['domains']]
    assert info(name=[name], xml=True)['domains'][0]['xml'].startswith("<domain type='test'>")


def specs_of(args):
    """The DomainSpecs of module arguments, as libvirt_domain builds them."""
    with patch_module_args(dict(args, uri=URI)):
        return build_specs(AnsibleModule(argument_spec=MODULE_OPTIONS).params)


class Overtaken(DomainManager):
    """A run that another run overtakes once, at a chosen point between reading a domain and acting on it.

    Two processes cannot share the test driver, so the other run runs in-process at that point: the same
    interleaving two runs at once produce on qemu:///system (tests/integration races them for real).
    """

    def __init__(self, other_run, at, *args):
        super().__init__(*args)
        self.other_run = other_run
        self.at = at

    def _overtake(self, point):
        if self.other_run is not None and point == self.at:
            other_run, self.other_run = self.other_run, None
            other_run()

    def _define(self, item):
        self._overtake('define')
        return super()._define(item)

    def _plan_state(self, item):
        super()._plan_state(item)
        self._overtake('start')


@pytest.mark.parametrize('at, actions', [('define', []), ('start', ['define'])])
def test_run_overtaken_by_another_converges_on_what_still_differs(domain, name, at, actions):
    """The other run defines and starts the domain after this run read it as absent (at: define) or after
    this run defined it and planned its start (at: start): this run's own define or start then fails,
    it reads the domain again and does only what still differs."""
    asked = structured(name, state='running')
    result = Result()
    specs, batch = specs_of(asked)
    Overtaken(lambda: domain(asked), at, conn(), URI, result).converge(specs, batch)
    report = result.as_dict()
    assert report['actions'] == actions and report['changed'] is bool(actions)
    assert report['state'] == 'running' and state_of(name) == libvirt.VIR_DOMAIN_RUNNING


def test_conflicts_are_retried_a_bounded_number_of_times(domain, name):
    """A domain that another run changes after every plan of this run (it starts the domain this run
    would start, destroys the one it would pause): the third failed step is reported, not retried."""
    asked = structured(name, state='paused')
    domain(structured(name))
    flips = iter(['running', 'destroyed', 'running'])
    plans = []

    class Chased(DomainManager):
        def _plan_state(self, item):
            super()._plan_state(item)
            plans.append(item.state)
            domain({'name': name, 'state': next(flips)})
    result = Result()
    specs, batch = specs_of(asked)
    with pytest.raises(LibvirtFailure) as failed:
        Chased(conn(), URI, result).converge(specs, batch)
    assert plans == ['shutoff', 'running', 'shutoff']
    assert str(failed.value).startswith("cannot start domain '%s'" % name)
    assert result.as_dict()['actions'] == []


# --- guest_agent -------------------------------------------------------------------------------

def agent_channels(xml):
    return [channel for channel in ET.fromstring(xml).iter('channel')
            if channel.find('target') is not None and channel.find('target').get('name') == 'org.qemu.guest_agent.0']


def four_ways(domain, args):
    check = domain(args, check=True)
    real = domain(args)
    assert check['changed'] is True and real['changed'] is True and check['actions'] == real['actions'], (check, real)
    for again in (domain(args), domain(args, check=True)):
        assert again['changed'] is False, again
    return check, real


def test_guest_agent_adds_and_removes_the_channel_four_ways(domain, name):
    domain(structured(name))
    check, real = four_ways(domain, structured(name, guest_agent=True))
    assert real['actions'] == ['update'] and check['differences'] == real['differences'] == ['guest_agent']
    [channel] = agent_channels(definition(name))
    assert channel.get('type') == 'unix' and channel.find('target').get('type') == 'virtio'
    assert "name='org.qemu.guest_agent.0'" in check['diff']['after'] and 'guest_agent' not in check['diff']['before']
    assert domain(structured(name))['changed'] is False, 'omitted: the channel stays'
    assert agent_channels(definition(name))
    _check, real = four_ways(domain, structured(name, guest_agent=False))
    assert real['differences'] == ['guest_agent'] and agent_channels(definition(name)) == []


def test_a_new_domain_gets_the_guest_agent_channel(domain, name):
    _check, real = four_ways(domain, structured(name, guest_agent=True))
    assert real['actions'] == ['define'] and len(agent_channels(definition(name))) == 1


def test_guest_agent_on_a_running_domain_asks_for_a_restart(domain, name):
    domain(structured(name, state='running'))
    check, real = four_ways(domain, structured(name, state='running', guest_agent=True))
    for result in (check, real):
        assert result['restart_required'] is True and result['restart_reasons'] == ['guest_agent']
    assert domain(structured(name, state='running'))['restart_required'] is True
    restarted = domain(structured(name, state='running', apply='restart', shutdown_timeout=1, force=True))
    assert restarted['restarted'] is True and restarted['restart_required'] is False
    assert agent_channels(conn().lookupByName(name).XMLDesc(0))


def test_guest_agent_and_xml_are_mutually_exclusive(domain, name):
    xml = "<domain type='test'><name>%s</name><memory>131072</memory><os><type>hvm</type></os></domain>" % name
    result = domain({'xml': xml, 'guest_agent': True})
    assert result['failed'] and 'mutually exclusive' in result['msg'] and 'guest_agent' in result['msg']
