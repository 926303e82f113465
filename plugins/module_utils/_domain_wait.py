# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain's ``wait_for``: after every state change of a call, wait until the guests are reachable.

Goals: ``ip`` (the domain has a usable IPv4 address from a DHCP lease, its guest agent or the host's ARP table),
``agent`` (its QEMU guest agent answers a guest-ping) and ``ssh`` (its address answers on TCP port 22 with an
``SSH-`` banner). All domains of a call are looked at together, once a second, each until it is ready or its
``wait_timeout`` has passed; a domain that stops running, or has no agent channel to wait for, is given up at
once. Waiting changes nothing, so it never makes ``changed`` true.

The agent is asked through libvirt's own connection to it (libvirt_qemu.qemuAgentCommand), never through its
socket: a client that connects to qemu-ga and leaves made it spin (see docs/DESIGN facts).
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_addresses as da
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_xml import DomainXMLError
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import STATE_NAMES, error_text, libvirt

GOALS = ('ip', 'agent', 'ssh')
WAIT_DEFAULTS = {'wait_for': None, 'wait_timeout': 300}
WAIT_OPTIONS = {'wait_for': {'type': 'str', 'choices': list(GOALS)}, 'wait_timeout': {'type': 'int'}}
SSH_PORT = 22
POLL_INTERVAL = 1.0  # seconds between two looks at the same domain
CONNECT_TIMEOUT = 1.0  # a guest that drops SYNs must not hold up the other domains' looks for long
BANNER_TIMEOUT = 3.0  # sshd under TCG may take a moment to send its banner
AGENT_TIMEOUT = 5  # seconds libvirt waits for the guest-ping answer
LOOKERS = 8  # domains looked at side by side (threads: libvirt calls and sockets release the GIL)
# In check mode these steps have not happened: the guest they would start is not waited for.
STARTING_ACTIONS = frozenset(('define', 'clone', 'start', 'restore', 'resume', 'wakeup', 'restart'))


def wait_settings(item, label, state):
    """(wait_for, wait_timeout) of a validated item; DomainXMLError naming the item when they do not fit."""
    goal = item.get('wait_for')
    timeout = item.get('wait_timeout')
    timeout = WAIT_DEFAULTS['wait_timeout'] if timeout is None else timeout
    prefix = '%s: ' % label if label else ''
    if goal and state != 'running':
        raise DomainXMLError('%swait_for %s needs state running, not %s: only a running guest gets an address '
                             'or answers' % (prefix, goal, state))
    if timeout < 0:
        raise DomainXMLError('%swait_timeout must be 0 or more seconds, not %d' % (prefix, timeout))
    return goal, timeout


# --- probes: one look at a guest ---------------------------------------------------------------------------

def ssh_banner(address, port=SSH_PORT, connect_timeout=CONNECT_TIMEOUT, read_timeout=BANNER_TIMEOUT):
    """None when address:port answers with an SSH banner, else why not ('connection refused'...)."""
    try:
        sock = socket.create_connection((address, port), timeout=connect_timeout)
    except socket.timeout:
        return 'connection timed out'
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    try:
        sock.settimeout(read_timeout)
        first = sock.recv(256)
    except socket.timeout:
        return 'connected, but no banner within %g s' % read_timeout
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    finally:
        sock.close()
    if first.startswith(b'SSH-'):
        return None
    return 'connection closed without a banner' if not first else 'not an SSH banner: %r' % first[:40]


def agent_ping(dom, timeout=AGENT_TIMEOUT):
    """None when the guest agent answers guest-ping (through libvirt's own agent connection), else why not."""
    try:
        import libvirt_qemu  # part of libvirt-python, only needed here
    except ImportError:
        return 'libvirt_qemu (part of libvirt-python) cannot be imported'
    try:
        libvirt_qemu.qemuAgentCommand(dom, '{"execute": "guest-ping"}', timeout, 0)
    except libvirt.libvirtError as exc:
        return error_text(exc)
    return None


class Sighting(object):
    """What one look at a domain found: its interfaces with addresses, the agent's state, and for the goal
    whether it is reached (``lack`` None), what is missing, and whether waiting can still help."""

    def __init__(self, interfaces, agent, lack=None, why=None, hopeless=False):
        self.interfaces = interfaces
        self.agent = agent
        self.address = da.primary_address(interfaces)
        self.lack = lack
        self.why = why
        self.hopeless = hopeless

    @property
    def ready(self):
        return self.lack is None

    def seen(self):
        """'address 10.79.0.12 (lease)' or 'no address (no lease, agent disconnected, no ARP entry)'."""
        if self.address is None:
            return 'no address (%s)' % ', '.join(self.notes())
        sources = [entry['source'] for interface in self.interfaces for entry in interface['addresses']
                   if entry['address'] == self.address]
        return 'address %s (%s)' % (self.address, ', '.join(sorted(set(sources), key=da.SOURCES.index)))

    def notes(self):
        """Why no address is known, source by source."""
        found = set(entry['source'] for interface in self.interfaces for entry in interface['addresses'])
        notes = [] if 'lease' in found else ['no lease']
        notes.append({'connected': 'agent connected', 'disconnected': 'agent disconnected',
                      'absent': 'no guest agent'}[self.agent])
        if 'arp' not in found:
            notes.append('no ARP entry')
        return notes

    def flat_addresses(self):
        """Every address found, with the MAC of its interface: the module's ``addresses``."""
        return [dict(entry, mac=interface['mac']) for interface in self.interfaces for entry in interface['addresses']]


def look(dom, goal, ssh=ssh_banner, ping=agent_ping):
    """One look at a domain for a goal (ip, agent, ssh); a domain libvirt cannot read any more is given up."""
    try:
        return _look(dom, goal, ssh, ping)
    except libvirt.libvirtError as exc:
        return Sighting([], 'absent', 'cannot be read any more', error_text(exc), hopeless=True)


def _look(dom, goal, ssh, ping):
    state = STATE_NAMES.get(dom.state()[0], 'nostate')
    if state != 'running':
        return Sighting([], 'disconnected', 'stopped running while waited for', 'now %s' % state, hopeless=True)
    root = da.live_root(dom)
    interfaces = da.interface_addresses(dom, root=root)
    agent = da.agent_state_of(root)
    sighting = Sighting(interfaces, agent)
    if goal == 'agent':
        if agent == 'absent':
            return Sighting(interfaces, agent, 'has no guest agent channel (%s)' % da.AGENT_CHANNEL,
                            'add one to the definition, or wait for ip or ssh', hopeless=True)
        if agent != 'connected':
            sighting.lack = 'guest agent %s' % agent
        else:
            sighting.why = ping(dom)
            sighting.lack = 'no answer to guest-ping' if sighting.why else None
    elif sighting.address is None:
        sighting.lack = 'no address'
    elif goal == 'ssh':
        sighting.why = ssh(sighting.address)
        sighting.lack = 'no SSH banner on %s:%d' % (sighting.address, SSH_PORT) if sighting.why else None
    return sighting


# --- the wait ----------------------------------------------------------------------------------------------

class Watch(object):
    """One domain being waited for: name, goal, timeout (seconds) and look() -> Sighting."""

    def __init__(self, name, goal, timeout, look_once):
        self.name = name
        self.goal = goal
        self.timeout = timeout
        self.look = look_once
        self.sighting = None
        self.seconds = 0.0

    @property
    def ready(self):
        return self.sighting is not None and self.sighting.ready

    def finished(self):
        return self.ready or self.sighting.hopeless or self.seconds >= self.timeout

    def failure(self):
        """'web-2: address 10.79.0.12 (lease), no SSH banner on 10.79.0.12:22 after 300 s: connection refused'."""
        sighting = self.sighting
        if sighting.hopeless:
            return '%s: %s: %s' % (self.name, sighting.lack, sighting.why)
        if sighting.lack == 'no address':
            return '%s: no address after %d s (%s)' % (self.name, self.timeout, ', '.join(sighting.notes()))
        why = ': %s' % sighting.why if sighting.why else ''
        return '%s: %s, %s after %d s%s' % (self.name, sighting.seen(), sighting.lack, self.timeout, why)

    def report(self):
        """The keys the domain's result gets."""
        sighting = self.sighting
        return {'address': sighting.address, 'addresses': sighting.flat_addresses(), 'guest_agent': sighting.agent,
                'wait': {'for': self.goal, 'ready': self.ready, 'seconds': round(self.seconds, 1)}}


def watch_all(watches, clock=time.monotonic, sleep=time.sleep, interval=POLL_INTERVAL, workers=LOOKERS):
    """Look at every watch once per interval until each is ready, hopeless or past its timeout. The looks of
    a round run side by side, so a guest whose SSH connect or agent call times out holds up only itself."""
    start = clock()
    pending = list(watches)

    def look_at(watch):
        watch.sighting = watch.look()
        watch.seconds = clock() - start
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pending)))) as pool:
        while pending:
            round_start = clock()
            list(pool.map(look_at, pending))
            pending = [watch for watch in pending if not watch.finished()]
            if pending:
                sleep(max(0.0, interval - (clock() - round_start)))


def wait_for_guests(items, check_mode, look_at=look, run_watches=watch_all):
    """Wait for the items asking wait_for (their domains run now); each item's result gets its addresses.

    In check mode no domain is waited for: one the run would start (or define) is reported not ready without a
    look, one already running is looked at once. In a real run a domain that is not ready when its time is up
    fails the call, naming every such domain and what was seen of it; the others are reported ready.
    """
    watches = []
    for item in items:
        spec = item.spec
        if not spec.wait_for:
            continue
        if check_mode and (item.dom is None or STARTING_ACTIONS.intersection(item.result.actions)):
            item.result.set(address=None, addresses=[], guest_agent=None,
                            wait={'for': spec.wait_for, 'ready': False, 'seconds': 0.0})
            continue
        watch = Watch(spec.name, spec.wait_for, 0 if check_mode else spec.wait_timeout,
                      lambda dom=item.dom, goal=spec.wait_for: look_at(dom, goal))
        watches.append((item, watch))
    run_watches([watch for item, watch in watches])
    for item, watch in watches:
        item.result.set(**watch.report())
    failed = [watch for item, watch in watches if not watch.ready]
    if failed and not check_mode:
        ready = [watch.name for item, watch in watches if watch.ready]
        raise ModuleFailure('wait_for: %d of %d domains not ready: %s.%s' % (
            len(failed), len(watches), '; '.join(watch.failure() for watch in failed),
            ' Ready: %s.' % ', '.join(ready) if ready else ''),
            about="domain '%s'" % failed[0].name if len(failed) == 1 else None)
