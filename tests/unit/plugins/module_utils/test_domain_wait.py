# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain's wait_for: validation, the probes (SSH banners from servers on loopback, the agent and the
addresses from libvirt's test driver), the polling loop with a fake clock, and the module on the test driver.
Real guests: tests/integration/host/test_libvirt_domain_addresses.py."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time

import libvirt
import pytest

from virtops_unitlib import run_main  # noqa: E402

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_wait as dw  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure, Result  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_options import build_specs  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_xml import DomainXMLError  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.modules import libvirt_domain  # noqa: E402

URI = 'test:///default'
_names = itertools.count()


# --- validation ----------------------------------------------------------------------------------------------

def test_top_level_wait_for_is_the_default_of_every_item():
    specs, batch = build_specs({'state': 'running', 'wait_for': 'ssh', 'wait_timeout': 60, 'domains': [
        {'name': 'a'}, {'name': 'b', 'wait_for': 'ip', 'wait_timeout': 0}]})
    assert batch and [(spec.wait_for, spec.wait_timeout) for spec in specs] == [('ssh', 60), ('ip', 0)]
    specs = build_specs({'name': 'a', 'state': 'running'})[0]
    assert (specs[0].wait_for, specs[0].wait_timeout) == (None, 300)


@pytest.mark.parametrize('params, message', [
    ({'wait_for': 'ip', 'domains': [{'name': 'a', 'state': 'running'}, {'name': 'b', 'state': 'shutdown'}]},
     'domains[1]: wait_for ip needs state running, not shutdown'),
    ({'name': 'a', 'wait_for': 'ssh'}, 'wait_for ssh needs state running, not present'),
    ({'name': 'a', 'state': 'running', 'wait_for': 'ip', 'wait_timeout': -1},
     'wait_timeout must be 0 or more seconds, not -1'),
])
def test_wait_for_a_guest_that_will_not_run_is_refused_naming_the_item(params, message):
    with pytest.raises(DomainXMLError) as failure:
        build_specs(dict({'state': None, 'wait_timeout': None}, **params))
    assert str(failure.value).startswith(message)


# --- the SSH probe against servers on loopback -------------------------------------------------------------

@pytest.fixture
def server():
    """A TCP server on 127.0.0.1 that answers each connection with the bytes given (None: says nothing)."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(4)
    said = {'text': None}

    def serve():
        while True:
            try:
                conn = listener.accept()[0]
            except OSError:
                return
            if said['text'] is not None:
                conn.sendall(said['text'])
            else:
                conn.recv(16)  # hold the connection until the client gives up
            conn.close()
    threading.Thread(target=serve, daemon=True).start()

    def answer(text):
        said['text'] = text
        return listener.getsockname()[1]
    yield answer
    listener.close()


def test_an_ssh_banner_is_ready(server):
    assert dw.ssh_banner('127.0.0.1', server(b'SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n')) is None


def test_other_answers_say_what_came(server):
    assert dw.ssh_banner('127.0.0.1', server(b'HTTP/1.1 400 Bad Request\r\n')).startswith("not an SSH banner: b'HTTP")
    assert dw.ssh_banner('127.0.0.1', server(b'')) == 'connection closed without a banner'
    assert dw.ssh_banner('127.0.0.1', server(None), read_timeout=0.2) == 'connected, but no banner within 0.2 s'


def test_a_closed_port_is_connection_refused():
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    assert dw.ssh_banner('127.0.0.1', port) == 'connection refused'


# --- looks at the test driver's domains ---------------------------------------------------------------------

@pytest.fixture
def dom(libvirt_test_conn):
    """A running test-driver domain with one NIC and a guest agent channel (which never connects there)."""
    name = 'wait-%d' % next(_names)
    found = libvirt_test_conn.defineXML(
        "<domain type='test'><name>%s</name><memory>1024</memory><os><type>hvm</type></os><devices>"
        "<interface type='network'><mac address='52:54:00:00:20:01'/><source network='default'/></interface>"
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
        "</devices></domain>" % name)
    found.create()
    yield found
    with contextlib.suppress(libvirt.libvirtError):  # gone already when a test removed it
        if found.isActive():
            found.destroy()
        found.undefine()


def test_ip_is_ready_with_an_address(dom):
    sighting = dw.look(dom, 'ip')
    assert sighting.ready and sighting.address.startswith('192.168.')
    assert sighting.seen() == 'address %s (lease, arp)' % sighting.address
    assert [entry['mac'] for entry in sighting.flat_addresses()] == ['52:54:00:00:20:01'] * 2


def test_ssh_is_asked_on_the_address(dom):
    asked = []
    sighting = dw.look(dom, 'ssh', ssh=lambda address: asked.append(address) or 'connection refused')
    assert asked == [sighting.address] and not sighting.ready and not sighting.hopeless
    assert sighting.lack == 'no SSH banner on %s:22' % sighting.address
    assert dw.look(dom, 'ssh', ssh=lambda address: None).ready


def test_the_agent_is_pinged_only_once_connected(dom):
    sighting = dw.look(dom, 'agent', ping=lambda found: pytest.fail('pinged a disconnected agent'))
    assert (sighting.lack, sighting.hopeless) == ('guest agent disconnected', False)
    assert dw.agent_ping(dom)  # the test driver has no agent command: a reason, not an exception


def test_a_domain_that_stopped_is_given_up(dom):
    dom.destroy()
    sighting = dw.look(dom, 'ip')
    assert sighting.hopeless and sighting.lack == 'stopped running while waited for' and sighting.why == 'now shutoff'


def test_a_domain_removed_meanwhile_is_given_up(dom):
    dom.destroy()
    dom.undefine()
    sighting = dw.look(dom, 'ip')
    assert sighting.hopeless and sighting.lack == 'cannot be read any more' and 'not found' in sighting.why


def test_agent_without_channel_is_given_up(libvirt_test_conn):
    sighting = dw.look(libvirt_test_conn.lookupByName('test'), 'agent')
    assert sighting.hopeless and sighting.lack.startswith('has no guest agent channel')


# --- the loop, with a fake clock ------------------------------------------------------------------------------

class Clock(object):
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def sightings(clock, ready_at=None, hopeless_at=None, **seen):
    """look() of a fake guest: ready from ready_at seconds on, hopeless from hopeless_at."""
    def look_once():
        elapsed = clock.now - 100.0
        interfaces = [{'mac': '52:54:00:00:00:01', 'addresses': seen.get('addresses', [])}]
        if hopeless_at is not None and elapsed >= hopeless_at:
            return dw.Sighting([], 'disconnected', 'stopped running while waited for', 'now shutoff', hopeless=True)
        if ready_at is not None and elapsed >= ready_at:
            return dw.Sighting(interfaces, 'absent')
        return dw.Sighting(interfaces, seen.get('agent', 'absent'), seen.get('lack', 'no address'), seen.get('why'))
    return look_once


LEASE = [{'address': '10.79.0.12', 'prefix': 24, 'family': 'ipv4', 'source': 'lease'}]


def test_all_domains_are_watched_together_until_each_is_done():
    clock = Clock()
    fast = dw.Watch('web-1', 'ip', 10, sightings(clock, ready_at=2))
    slow = dw.Watch('web-2', 'ip', 5, sightings(clock))
    gone = dw.Watch('web-3', 'ip', 10, sightings(clock, hopeless_at=1))
    dw.watch_all([fast, slow, gone], clock=clock, sleep=clock.sleep)
    assert fast.ready and fast.seconds == 2 and not slow.ready and slow.seconds == 5 and gone.seconds == 1
    assert clock.sleeps == [1.0] * 5


def test_the_looks_of_a_round_run_side_by_side():
    def slow_look():
        time.sleep(0.3)
        return dw.Sighting([], 'absent')
    watches = [dw.Watch('web-%d' % number, 'ip', 10, slow_look) for number in range(4)]
    started = time.monotonic()
    dw.watch_all(watches)
    assert time.monotonic() - started < 0.9 and all(watch.ready for watch in watches)


def item(name, goal, look_once, timeout=300, actions=()):
    """A stand-in for _domain._Item: spec, dom and result."""
    spec = type('Spec', (), {'name': name, 'wait_for': goal, 'wait_timeout': timeout})()
    found = type('Item', (), {'spec': spec, 'dom': object(), 'result': Result()})()
    found.result.actions.extend(actions)
    found.look = look_once
    return found


def wait(items, check_mode=False, clock=None):
    clock = clock or Clock()
    looks = {id(entry.dom): entry.look for entry in items}
    dw.wait_for_guests(items, check_mode, look_at=lambda dom, goal: looks[id(dom)](),
                       run_watches=lambda watches: dw.watch_all(watches, clock=clock, sleep=clock.sleep))


def test_a_timeout_names_each_domain_still_waiting_and_what_was_seen():
    clock = Clock()
    ready = item('web-1', 'ssh', sightings(clock, ready_at=0, addresses=LEASE))
    no_ssh = item('web-2', 'ssh', sightings(clock, addresses=LEASE, lack='no SSH banner on 10.79.0.12:22',
                                            why='connection refused'))
    no_address = item('web-3', 'ip', sightings(clock, agent='disconnected'), timeout=60)
    with pytest.raises(ModuleFailure) as failure:
        wait([ready, no_ssh, no_address], clock=clock)
    assert str(failure.value) == (
        'wait_for: 2 of 3 domains not ready: web-2: address 10.79.0.12 (lease), no SSH banner on 10.79.0.12:22 '
        'after 300 s: connection refused; web-3: no address after 60 s (no lease, agent disconnected, no ARP entry). '
        'Ready: web-1.')
    assert failure.value.about is None
    assert ready.result.fields['wait'] == {'for': 'ssh', 'ready': True, 'seconds': 0.0}
    assert ready.result.fields['address'] == '10.79.0.12'
    assert no_ssh.result.fields['wait'] == {'for': 'ssh', 'ready': False, 'seconds': 300.0}
    assert not any(entry.result.changed for entry in (ready, no_ssh, no_address))


def test_one_domain_that_stopped_fails_at_once_about_it():
    clock = Clock()
    with pytest.raises(ModuleFailure) as failure:
        wait([item('web-1', 'ip', sightings(clock, hopeless_at=0))], clock=clock)
    assert str(failure.value) == ('wait_for: 1 of 1 domains not ready: web-1: stopped running while waited for: '
                                  'now shutoff.')
    assert failure.value.about == "domain 'web-1'" and clock.sleeps == []


def test_check_mode_waits_for_nothing_and_never_fails():
    clock = Clock()
    started = item('web-1', 'ssh', lambda: pytest.fail('looked at a domain the run would start'), actions=['start'])
    running = item('web-2', 'ssh', sightings(clock, addresses=LEASE, lack='no SSH banner', why='refused'))
    wait([started, running], check_mode=True, clock=clock)
    assert started.result.fields == {'address': None, 'addresses': [], 'guest_agent': None,
                                     'wait': {'for': 'ssh', 'ready': False, 'seconds': 0.0}}
    assert running.result.fields['address'] == '10.79.0.12' and not running.result.fields['wait']['ready']
    assert clock.sleeps == []


# --- the module on the test driver ---------------------------------------------------------------------------

@pytest.fixture
def domain(capsys, libvirt_test_conn):
    made = []

    def call(args, check=False):
        made.append(args['name'])
        return run_main(libvirt_domain, dict(args, uri=URI), capsys, check=check)
    yield call
    for name in made:
        for dom in libvirt_test_conn.listAllDomains(0):
            if dom.name() == name:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()


def guest_args(**extra):
    found = {'name': 'wait-module-%d' % next(_names), 'memory': 64, 'state': 'running',
             'interfaces': [{'network': 'default', 'mac': '52:54:00:00:30:01'}]}
    found.update(extra)
    return found


def test_wait_for_ip_returns_the_address_and_reruns_unchanged(domain):
    args = guest_args(wait_for='ip', wait_timeout=5)
    check = domain(args, check=True)
    assert check['changed'] and check['wait'] == {'for': 'ip', 'ready': False, 'seconds': 0.0}
    real = domain(args)
    assert real['changed'] and real['wait']['ready'] and real['address']
    assert real['addresses'][0]['mac'] == '52:54:00:00:30:01'
    for check_mode in (False, True):
        rerun = domain(args, check=check_mode)
        assert not rerun['changed'] and rerun['address'] == real['address'] and rerun['wait']['ready'], rerun


def test_wait_for_the_agent_of_a_domain_without_one_fails_at_once(domain):
    args = guest_args(wait_for='agent')
    failed = domain(args)
    assert failed['failed'] and failed['changed'] and failed['actions'] == ['define', 'start']
    assert failed['msg'] == ('wait_for: 1 of 1 domains not ready: %s: has no guest agent channel '
                             '(org.qemu.guest_agent.0): add one to the definition, or wait for ip or ssh.' % args['name'])
    assert failed['failed_object'] == "domain '%s'" % args['name']
    assert failed['wait'] == {'for': 'agent', 'ready': False, 'seconds': 0.0}
