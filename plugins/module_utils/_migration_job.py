# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One migration job: libvirt's migrate3 in a thread, watched from the caller's.

With a timeout or post-copy asked for, the watcher reads the job's statistics every POLL seconds, switches to post-copy after the first pass over
memory when asked (as ``virsh migrate --postcopy-after-precopy`` does), and aborts the job when it runs longer
than its timeout; an aborted or failed job leaves the guest running on the source. The statistics of the
finished job are read on the destination, where libvirt keeps them.
"""

from __future__ import annotations

import threading
import time

from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import error_text, libvirt

POLL = 0.2


class MigrationFlags(object):
    """migrate3's flags and typed parameters for what the module was asked."""

    def __init__(self, params, address):
        self.live = params['mode'] == 'live'
        flags = libvirt.VIR_MIGRATE_LIVE if self.live else libvirt.VIR_MIGRATE_OFFLINE
        if params['persistent'] or not self.live:
            flags |= libvirt.VIR_MIGRATE_PERSIST_DEST
        if params['undefine_source']:
            flags |= libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
        typed = {}
        if self.live:
            flags |= {'shared': 0, 'copy': libvirt.VIR_MIGRATE_NON_SHARED_DISK,
                      'copy_incremental': libvirt.VIR_MIGRATE_NON_SHARED_INC}[params['storage']]
            for option, flag in (('auto_converge', 'VIR_MIGRATE_AUTO_CONVERGE'), ('postcopy', 'VIR_MIGRATE_POSTCOPY'),
                                 ('compressed', 'VIR_MIGRATE_COMPRESSED'), ('unsafe', 'VIR_MIGRATE_UNSAFE')):
                if params[option]:
                    flags |= getattr(libvirt, flag)
            if params['parallel_connections']:
                flags |= libvirt.VIR_MIGRATE_PARALLEL
                typed[libvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS] = params['parallel_connections']
            if params['bandwidth']:
                typed[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = params['bandwidth']
            if address:
                # QEMU otherwise dials the name the destination calls itself, which the source may not resolve.
                port = ':%d' % params['migration_port'] if params['migration_port'] else ''
                typed[libvirt.VIR_MIGRATE_PARAM_URI] = 'tcp://%s%s' % (_bracketed(address), port)
                if params['storage'] != 'shared':
                    typed[libvirt.VIR_MIGRATE_PARAM_DISKS_URI] = 'tcp://%s' % _bracketed(address)
        self.flags = flags
        self.typed = typed
        self.max_downtime = params['max_downtime']
        self.postcopy = self.live and params['postcopy']
        self.timeout = params['timeout']


def _bracketed(address):
    return '[%s]' % address if ':' in address and not address.startswith('[') else address


class JobOutcome(object):
    """How a migration ended: the domain on the destination (None when it failed), the error, the statistics."""

    def __init__(self):
        self.moved = None
        self.error = None
        self.timed_out = False
        self.postcopy_started = False
        self.stats = {}
        self.seconds = 0.0


def run_job(dom, destination_conn, flags):
    """Migrate dom to destination_conn as flags say; returns a JobOutcome (never raises a libvirt error)."""
    outcome = JobOutcome()
    started = time.monotonic()
    if flags.max_downtime:
        try:
            dom.migrateSetMaxDowntime(flags.max_downtime, 0)
        except libvirt.libvirtError as exc:
            outcome.error = 'setting max_downtime failed: %s' % error_text(exc)
            return outcome

    def migrate():
        try:
            outcome.moved = dom.migrate3(destination_conn, flags.typed, flags.flags)
        except libvirt.libvirtError as exc:
            outcome.error = error_text(exc)
    worker = threading.Thread(target=migrate, name='migrate-%s' % dom.name())
    worker.daemon = True
    worker.start()
    # Reading the statistics asks QEMU's monitor; a job with nothing to watch for is left alone (each read
    # during the switch-over would lengthen the guest's pause).
    watched = flags.live and (flags.timeout or flags.postcopy)
    while worker.is_alive():
        worker.join(POLL if watched else None)
        if watched and worker.is_alive():
            _watch(dom, flags, outcome, started)
    outcome.seconds = round(time.monotonic() - started, 3)
    if outcome.moved is not None:
        outcome.stats = completed_stats(outcome.moved) or outcome.stats
    return outcome


def _watch(dom, flags, outcome, started):
    try:
        stats = dom.jobStats(0)
    except libvirt.libvirtError:
        return  # the job ended between the join and the read
    if stats.get('type', libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE:
        outcome.stats = stats
    if flags.postcopy and not outcome.postcopy_started and stats.get('memory_iteration', 0) >= 1:
        try:
            dom.migrateStartPostCopy(0)
            outcome.postcopy_started = True
        except libvirt.libvirtError:
            pass  # not in the memory phase yet (still copying disks): try again at the next poll
    if flags.timeout and not outcome.timed_out and not outcome.postcopy_started \
            and time.monotonic() - started > flags.timeout:
        try:
            dom.abortJob()
            outcome.timed_out = True
        except libvirt.libvirtError:
            pass  # not abortable yet (the job is being set up), or finished: try again at the next poll


def completed_stats(dom):
    try:
        return dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return {}


def job_report(stats, seconds):
    """The job statistics as the module returns them (milliseconds and bytes, as libvirt counts them)."""
    keys = (('time_elapsed', 'elapsed_ms'), ('downtime', 'downtime_ms'), ('setup_time', 'setup_ms'),
            ('data_processed', 'data_transferred'), ('memory_processed', 'memory_transferred'),
            ('memory_total', 'memory_total'), ('memory_iteration', 'memory_iterations'),
            ('disk_processed', 'disk_transferred'), ('memory_dirty_rate', 'memory_dirty_rate'),
            ('memory_postcopy_requests', 'postcopy_requests'), ('compression_cache', 'compression_cache'))
    report = dict((name, stats[key]) for key, name in keys if key in stats)
    report['seconds'] = seconds
    return report
