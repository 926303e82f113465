# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_migration: move domains from the host of ``uri`` to the host of ``destination``.

Every domain of the call is read on both hosts and placed in one of three cases: already moved (on the
destination, gone from the source: nothing to do), to move, or refused (on neither host, on both, in the
wrong run state for the mode). The preflight then checks everything a move needs for all domains to move,
before the first of them moves: distinct hosts, the guest's CPU on the destination, free memory there, the
files (:mod:`_migration_storage`), and that the source reaches the migration address. Any refusal fails
the call with every reason and nothing moved. The moves run ``concurrency`` at a time
(:mod:`_migration_job`); after a failed one no new move starts, and what it had created on the destination
is removed again.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.six.moves.urllib.parse import urlparse
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    STATE_NAMES, LibvirtFailure, error_text, is_error, libvirt, lookup_domain)
from ansible_collections.virtops.hypervisor.plugins.module_utils._migration_job import (
    MigrationFlags, job_report, run_job)
from ansible_collections.virtops.hypervisor.plugins.module_utils._migration_storage import (
    HostFiles, copy_file, guest_files, plan_files, volume_disk_paths)

# libvirt's qemu.conf default for migration_port_min: probed when no migration_port is given.
DEFAULT_MIGRATION_PORT = 49152
PORT_PROBE_TIMEOUT = 3


class Host(object):
    """One end of the move: its connection, the name and UUID libvirt reports, its storage."""

    def __init__(self, conn, uri):
        self.conn = conn
        self.uri = uri
        self.name = conn.getHostname()
        self.uuid = ET.fromstring(conn.getCapabilities()).findtext('./host/uuid')
        self.storage = HostFiles(conn, self.name)

    def domain_state(self, name):
        """(libvirt domain, state name, persistent) or (None, None, False)."""
        dom = lookup_domain(self.conn, name)
        if dom is None:
            return None, None, False
        return dom, STATE_NAMES.get(dom.state()[0], 'nostate'), bool(dom.isPersistent())

    def available_memory(self):
        """Bytes a new guest can have: free memory plus the page cache the kernel gives back."""
        try:
            stats = self.conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
            return (stats.get('free', 0) + stats.get('buffers', 0) + stats.get('cached', 0)) * 1024
        except libvirt.libvirtError:
            return self.conn.getFreeMemory()


class DomainMove(object):
    """One domain of the call: what it is on each host and what moving it takes."""

    def __init__(self, name):
        self.name = name
        self.dom = None
        self.state = None
        self.destination_state = None
        self.move = False
        self.problems = []
        self.file_plans = []
        self.memory = 0
        self.created = []

    @property
    def active(self):
        return self.state not in (None, 'shutoff', 'crashed', 'nostate')


class MigrationManager(object):
    def __init__(self, conn, module, result):
        self.module = module
        self.params = module.params
        self.result = result
        self.source = Host(conn, self.params['uri'])
        self.destination = None
        self.live = self.params['mode'] == 'live'
        self.address = self.params['migration_address'] or urlparse(self.params['destination']).hostname

    def run(self):
        self._validate()
        names = [self.params['name']] if self.params['name'] else list(self.params['domains'])
        self.destination = self._connect_destination()
        try:
            return self._run(names)
        finally:
            self.source.storage.stop_transient_pools()
            self.destination.storage.stop_transient_pools()

    def _validate(self):
        params = self.params
        if params['domains'] is not None and len(set(params['domains'])) != len(params['domains']):
            raise ModuleFailure('domains names a domain twice: %s' % ', '.join(params['domains']))
        if not self.live:
            for option in ('bandwidth', 'max_downtime', 'parallel_connections', 'timeout', 'auto_converge', 'postcopy',
                           'compressed', 'unsafe'):
                if params[option]:
                    raise ModuleFailure('%s applies to live migration only (mode is offline)' % option)
            if not params['persistent']:
                raise ModuleFailure('persistent=false cannot go with mode offline: an offline move moves the '
                                    'persistent definition')
        for option, least in (('bandwidth', 0), ('max_downtime', 0), ('parallel_connections', 0), ('timeout', 0),
                              ('concurrency', 1), ('migration_port', 1)):
            if params[option] is not None and params[option] < least:
                raise ModuleFailure('%s must be at least %d, got %d' % (option, least, params[option]))
        if params['postcopy'] and params['timeout']:
            self.result.warn('timeout does not abort a job that has switched to post-copy: from then on the guest '
                             'runs on the destination')

    def _connect_destination(self):
        uri = self.params['destination']
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure(
                'cannot connect to the destination %s: %s. Nothing was moved. Check that libvirtd there listens '
                'for this transport and that this host may log in (kvm_host_migration sets both up).'
                % (uri, error_text(exc)), about='destination %s' % uri)
        return Host(conn, uri)

    def _run(self, names):
        source, destination = self.source, self.destination
        self._refuse_same_host()
        moves = [self._classify(name) for name in names]
        to_move = [move for move in moves if move.move]
        if to_move:
            self._preflight(to_move)
        problems = ['%s: %s' % (move.name, problem) for move in moves for problem in move.problems]
        if problems:
            raise ModuleFailure('preflight from %s to %s failed, nothing was moved: %s'
                                % (source.name, destination.name, '; '.join(problems)),
                                about=', '.join(move.name for move in moves if move.problems))
        self.result.set(source=source.name, destination=destination.name, source_uuid=source.uuid,
                        destination_uuid=destination.uuid, migration_address=self.address)
        items = [(move, self._item(move)) for move in moves]
        self._execute([(move, item) for move, item in items if move.move])

    def _refuse_same_host(self):
        source, destination = self.source, self.destination
        if source.uuid is not None and source.uuid == destination.uuid:
            raise ModuleFailure(
                'preflight failed, nothing was moved: %s (%s) and %s (%s) report the same host UUID %s, and libvirt '
                'refuses to migrate to the same host. Hosts cloned from one image share it: give each a host_uuid '
                'of its own in libvirtd.conf (kvm_host_migration sets one per host).'
                % (source.name, source.uri, destination.name, destination.uri, source.uuid),
                about='destination %s' % destination.uri)
        if source.name == destination.name:
            raise ModuleFailure(
                'preflight failed, nothing was moved: %s and %s both call themselves %s, and libvirt refuses to '
                'migrate to a host of the same name' % (source.uri, destination.uri, source.name),
                about='destination %s' % destination.uri)

    def _classify(self, name):
        move = DomainMove(name)
        source, destination = self.source, self.destination
        move.dom, move.state, persistent = source.domain_state(name)
        there, move.destination_state = destination.domain_state(name)[:2]
        if move.dom is None and there is None:
            move.problems.append('no such domain on %s or on %s' % (source.name, destination.name))
        elif move.dom is None:
            pass  # moved already
        elif there is not None:
            # A move with undefine_source=false leaves the shut-off definition behind on purpose.
            if self.params['undefine_source'] or move.active:
                move.problems.append('defined on both %s (%s) and %s (%s): remove the stale definition first'
                                     % (source.name, move.state, destination.name, move.destination_state))
        elif self.live and not move.active:
            move.problems.append('is %s on %s: live migration moves running domains (use mode offline to move a '
                                 'shut-off one)' % (move.state, source.name))
        elif not self.live and move.active:
            move.problems.append('is %s on %s: an offline move takes a shut-off domain (shut it down first, or use '
                                 'mode live)' % (move.state, source.name))
        elif not self.live and not persistent:
            move.problems.append('is transient on %s: only a persistent definition can move offline' % source.name)
        else:
            move.move = True
        return move

    # --- preflight ---------------------------------------------------------------------------------

    def _preflight(self, moves):
        memory_needed = 0
        for move in moves:
            xml = move.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE if self.live else
                                   libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)
            self._check_cpu(move, xml)
            if self.live:
                move.memory = int(move.dom.info()[2]) * 1024
                memory_needed += move.memory
            files = guest_files(xml)
            for target, (pool, path) in volume_disk_paths(xml, self.source.conn).items():
                files.extend(f for f in guest_files(_as_file_disk(xml, target, path)) if f.target == target)
                if self.live and self.params['storage'] == 'copy_incremental':
                    # libvirt looks for the target by path before it resolves the volume, finds none, and refuses.
                    move.problems.append('disk %s is a volume (%s/%s): libvirt cannot copy a volume disk with '
                                         'copy_incremental ("pre-creation of storage targets for incremental '
                                         'storage migration is not supported"); use storage copy'
                                         % (target, pool, os.path.basename(path)))
                elif self.destination.storage.pool_named(pool) is None:
                    move.problems.append('disk %s is volume %s of pool %s, and %s has no active pool of that name'
                                         % (target, path, pool, self.destination.name))
            move.file_plans, problems = plan_files(files, self.params['storage'], self.live, self.source.storage,
                                                   self.destination.storage)
            move.problems.extend(problems)
        if memory_needed:
            available = self.destination.available_memory()
            if memory_needed > available:
                for move in moves:
                    move.problems.append('needs %d MiB on %s, which has %d MiB available for %d MiB of guests in '
                                         'this call' % (move.memory >> 20, self.destination.name, available >> 20,
                                                        memory_needed >> 20))
        if self.live:
            problem = self._probe_migration_port()
            if problem:
                moves[0].problems.append(problem)

    def _check_cpu(self, move, xml):
        root = ET.fromstring(xml)
        cpu = root.find('cpu')
        if cpu is None or cpu.find('model') is None or cpu.get('mode') == 'host-passthrough':
            return
        os_type = root.find('./os/type')
        try:
            verdict = self.destination.conn.compareHypervisorCPU(
                root.findtext('./devices/emulator'), os_type.get('arch'), os_type.get('machine'), root.get('type'),
                ET.tostring(cpu, encoding='unicode'), 0)
        except libvirt.libvirtError as exc:
            if is_error(exc, 'VIR_ERR_NO_SUPPORT', 'VIR_ERR_OPERATION_UNSUPPORTED'):
                self.result.warn('%s: the CPU could not be compared on %s: %s'
                                 % (move.name, self.destination.name, error_text(exc)))
                return
            move.problems.append('its CPU (%s) cannot run on %s: %s' % (cpu.findtext('model'), self.destination.name,
                                                                        error_text(exc)))
            return
        if verdict == libvirt.VIR_CPU_COMPARE_INCOMPATIBLE:
            move.problems.append('its CPU model %s is not compatible with %s'
                                 % (cpu.findtext('model'), self.destination.name))

    def _probe_migration_port(self):
        """Whether QEMU's stream will get from here to the migration address: a refused connection proves a
        route (nothing listens until the move starts); a timeout means the traffic is dropped on the way."""
        if urlparse(self.params['uri']).hostname not in (None, '', 'localhost'):
            self.result.warn('the migration port was not probed: the module does not run on the source host '
                             '(uri %s)' % self.params['uri'])
            return None
        port = self.params['migration_port'] or DEFAULT_MIGRATION_PORT
        try:
            socket.create_connection((self.address, port), timeout=PORT_PROBE_TIMEOUT).close()
        except socket.timeout:
            return ('the migration port %s:%d on %s does not answer from %s (no reply in %d s): open the migration '
                    'port range (qemu.conf migration_port_min..migration_port_max) to this host'
                    % (self.address, port, self.destination.name, self.source.name, PORT_PROBE_TIMEOUT))
        except (OSError, socket.error) as exc:
            if exc.errno == errno.ECONNREFUSED:
                return None
            return ('the migration address %s:%d of %s cannot be reached from %s: %s'
                    % (self.address, port, self.destination.name, self.source.name, exc.strerror or exc))
        return None

    # --- the moves ---------------------------------------------------------------------------------

    def _item(self, move):
        item = self.result.item('migrations', name=move.name, source=self.source.name,
                                destination=self.destination.name, mode=self.params['mode'],
                                storage=self.params['storage'])
        if not move.move:
            item.set(status='present', state=move.destination_state)
            return item
        item.set(status='moved', state=move.state)
        if self.result.diff_mode:
            item.add_diff('%s: %s on %s\n' % (move.name, move.state, self.source.name),
                          '%s: %s on %s\n' % (move.name, move.state, self.destination.name),
                          'domain %s' % move.name)
        return item

    def _execute(self, work):
        stop = threading.Event()
        lock = threading.Lock()
        failures = []

        def one(move, item):
            if stop.is_set():
                item.set(status='not_started')
                return
            try:
                self._move(move, item, lock)
            except ModuleFailure as failure:
                stop.set()
                item.set(status='failed', error=failure.msg)
                failures.append('%s: %s' % (move.name, failure.msg))
        if not work:
            return
        try:
            with ThreadPoolExecutor(max_workers=min(self.params['concurrency'], len(work))) as pool:
                for future in [pool.submit(one, move, item) for move, item in work]:
                    future.result()
        finally:
            for _move, item in work:  # the call's actions, in the order of the domains
                self.result.actions.extend(item.actions)
        if failures:
            raise ModuleFailure('migration from %s to %s failed: %s' % (self.source.name, self.destination.name,
                                                                        '; '.join(failures)),
                                about=', '.join(f.split(':', 1)[0] for f in failures))

    def _move(self, move, item, lock):
        try:
            outcome = self._prepare_and_migrate(move, item, lock)
        except ModuleFailure:
            # What was created for the move is removed again: the call leaves the destination as it was.
            for vol in move.created:
                self.destination.storage.remove(vol)
            if move.created:
                item.set(removed_again=[action for action in item.actions if not action.startswith('migrate ')])
                del item.actions[:]
            raise
        if outcome is not None:  # None in check mode
            item.set(job=job_report(outcome.stats, outcome.seconds), state=STATE_NAMES.get(outcome.moved.state()[0]),
                     persistent=bool(outcome.moved.isPersistent()), postcopy=outcome.postcopy_started)

    def _prepare_and_migrate(self, move, item, lock):
        destination = self.destination
        for plan in move.file_plans:
            with lock:
                created = item.perform(plan.describe(destination.name), self._prepare_file, plan)
            if created is not None:
                move.created.append(created)
        describe = 'migrate %s %s to %s%s' % (move.name, self.params['mode'], destination.name,
                                              '' if self.params['storage'] == 'shared'
                                              else ' with storage %s' % self.params['storage'])
        return item.perform(describe, self._run_job, move, MigrationFlags(self.params, self.address))

    def _prepare_file(self, plan):
        destination = self.destination.storage
        try:
            if plan.action == 'copy':
                return copy_file(self.source.storage, destination, plan.volume, plan.file.path)
            return destination.create(plan.file.path, plan.volume.capacity, plan.volume.image_format,
                                      plan.backing, plan.volume.backing_format)
        except libvirt.libvirtError as exc:
            raise ModuleFailure('%s failed: %s' % (plan.describe(self.destination.name), error_text(exc)))

    def _run_job(self, move, flags):
        outcome = run_job(move.dom, self.destination.conn, flags)
        if outcome.moved is not None:
            return outcome
        state = self.source.domain_state(move.name)[1]
        if outcome.timed_out:
            raise ModuleFailure('did not finish in %d s: the job was aborted after %s; %s is %s on %s'
                                % (flags.timeout, _progress(outcome.stats), move.name, state, self.source.name))
        hint = ''
        if 'Migration without shared storage is unsafe' in outcome.error:
            hint = (' (libvirt does not see the disks on a shared file system: use storage copy, or unsafe=true '
                    'if the storage really is shared)')
        raise ModuleFailure('%s%s; %s is %s on %s' % (outcome.error, hint, move.name, state, self.source.name))


def _progress(stats):
    if not stats.get('data_total'):
        return 'no data was sent'
    return '%d of %d MiB sent' % (stats.get('data_processed', 0) >> 20, stats['data_total'] >> 20)


def _as_file_disk(xml, target, path):
    """The domain XML with the <disk type='volume'> at target written as a file disk at path."""
    root = ET.fromstring(xml)
    for disk in root.findall("./devices/disk[@type='volume']"):
        if disk.find('target').get('dev') == target:
            disk.set('type', 'file')
            source = disk.find('source')
            source.attrib.clear()
            source.set('file', path)
    return ET.tostring(root, encoding='unicode')
