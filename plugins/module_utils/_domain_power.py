# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain's power states: which step takes a domain to the asked state, and the queue that runs them.

A call plans at most one step per domain (:func:`next_step`). The steps run a few at once over the
shared connection; graceful shutdowns are requested first and awaited together, so a batch waits for
its slowest guest, not for the sum of them. Each step is recorded in the domain's Result only once it
has been done (in check mode: would be).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_options import where
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    STATE_NAMES, LibvirtFailure, error_text, is_error, libvirt)

POLL_SECONDS = 0.2
PARALLEL_JOBS = 4
# A guest still booting misses the ACPI power button (its handler is not up yet): press it again.
SHUTDOWN_REPEAT_SECONDS = 10
INACTIVE_STATES = ('shutoff', 'crashed', 'nostate')


def next_step(current, wanted, restart_now, has_managed_save):
    """The one step from run state current towards wanted: (step, state after it), or None when none is needed.

    restart_now: the running guest lacks settings of its definition and apply=restart asks for them now.
    A start from a saved state is a restore. Shut-off domains asked to be saved are the caller's to refuse.
    """
    active = current not in INACTIVE_STATES
    start = 'restore' if has_managed_save else 'start'
    if wanted in ('present', 'running', 'paused') and active and restart_now:
        paused_after = wanted == 'paused' or (wanted == 'present' and current == 'paused')
        return 'restart', 'paused' if paused_after else 'running'
    if wanted == 'running':
        if current == 'paused':
            return 'resume', 'running'
        if current == 'pmsuspended':
            return 'wakeup', 'running'
        if not active:
            return start, 'running'
    elif wanted == 'paused':
        if current in ('running', 'pmsuspended', 'shutdown'):
            return 'pause', 'paused'
        if not active:
            return start, 'paused'
    elif wanted in ('shutdown', 'destroyed', 'saved') and active:
        return {'shutdown': 'shutdown', 'destroyed': 'destroy', 'saved': 'save'}[wanted], 'shutoff'
    return None


def create(dom, paused):
    """Start a domain, paused if asked; drivers without start-paused support start it and pause it."""
    if not paused:
        return dom.create()
    try:
        return dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
    except libvirt.libvirtError as exc:
        if not is_error(exc, 'VIR_ERR_NO_SUPPORT', 'VIR_ERR_INVALID_ARG'):
            raise
    dom.create()
    return dom.suspend()


def call(spec, action, function, *args):
    """A libvirt call on one domain; its error names the domain and what was tried."""
    try:
        return function(*args)
    except libvirt.libvirtError as exc:
        raise LibvirtFailure("%scannot %s domain '%s': %s" % (where(spec.label), action, spec.name, error_text(exc)),
                             about="domain '%s'" % spec.name)


def make_step(item, step, state_after):
    """Make one step of next_step on a domain; it is recorded in the domain's result once done (check mode: at once)."""
    def side_effect():
        dom = item.dom
        function, args = {
            'start': (create, (dom, state_after == 'paused')),
            'restore': (create, (dom, state_after == 'paused')),
            'resume': (dom.resume, ()),
            'wakeup': (dom.pMWakeup, (0,)),
            'pause': (dom.suspend, ()),
            'destroy': (dom.destroy, ()),
            'save': (dom.managedSave, (0,)),
        }[step]
        return call(item.spec, step, function, *args)
    return item.result.perform(step, side_effect)


def _is_active(dom):
    """Whether the domain runs; a transient domain that stopped is gone, and so is one another run removed."""
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError as exc:
        if is_error(exc, 'VIR_ERR_NO_DOMAIN'):
            return False
        raise


class PendingStop(object):
    """A graceful shutdown that was requested and is being waited for."""

    def __init__(self, item, start_after, start_paused):
        self.item = item
        self.start_after = start_after
        self.start_paused = start_paused
        self.deadline = time.monotonic() + item.spec.shutdown_timeout
        self.next_request = time.monotonic() + SHUTDOWN_REPEAT_SECONDS


class PowerJobs(object):
    """The state changes of one call: queued while the definitions converge, then run together.

    ``guard(item, job, basis)`` runs ``job()`` for a domain and, when it fails because another run
    changed the domain since ``basis`` (the run state the step was planned on), converges that domain
    again (the manager's optimistic concurrency); a step it queues then runs in the next round.
    """

    def __init__(self, guard, check_mode):
        self.guard = guard
        self.check_mode = check_mode
        self.queue = []
        self.pending = []

    def add(self, item, job):
        self.queue.append((item, job))

    def run(self):
        """Run the queued steps, a few at once over the shared connection, then await the shutdowns.

        Starting, saving and destroying an emulated guest take seconds each, mostly waiting on QEMU.
        Each domain has at most one step at a time, so their order does not matter. A domain that
        another run changed meanwhile is converged again, which may queue a step for the next round.
        Returns the failures' messages.
        """
        failures = []
        while self.queue or self.pending:
            jobs, self.queue = self.queue, []
            if len(jobs) <= 1 or self.check_mode:
                errors = [self._run(*job) for job in jobs]
            else:
                with ThreadPoolExecutor(max_workers=PARALLEL_JOBS) as pool:
                    errors = list(pool.map(lambda job: self._run(*job), jobs))
            failures.extend(error for error in errors if error)
            failures.extend(self._wait_for_stops())
        return failures

    def _run(self, item, work, basis=None):
        try:
            self.guard(item, work, basis)
        except LibvirtFailure as exc:
            return exc
        return None

    # --- graceful shutdown -----------------------------------------------------------------------

    def request_stop(self, item, paused, restart_paused=None):
        """Press the guest's power button (ACPI); with restart_paused set, start it again once it is off."""
        restart = restart_paused is not None
        action = 'restart' if restart else 'shutdown'

        def press():
            if paused:
                call(item.spec, 'resume (to shut down)', item.dom.resume)
            call(item.spec, 'shut down', item.dom.shutdown)
            self.pending.append(PendingStop(item, restart, bool(restart_paused)))
        self.add(item, lambda: item.result.perform(action, press))
        if restart and self.check_mode:
            item.restarted()

    def _wait_for_stops(self):
        """Wait for all requested shutdowns together; destroy late guests where force is set."""
        failures = []
        while self.pending:
            now = time.monotonic()
            for stop in list(self.pending):
                error = self._check_stop(stop, now)
                if error:
                    failures.append(error)
            if self.pending:
                time.sleep(POLL_SECONDS)
        return failures

    def _check_stop(self, stop, now):
        item = stop.item
        dom = item.dom
        if not _is_active(dom):
            self.pending.remove(stop)
            return self._after_stop(stop)
        if now < stop.deadline and now >= stop.next_request:
            stop.next_request = now + SHUTDOWN_REPEAT_SECONDS
            try:
                dom.shutdown()
            except libvirt.libvirtError:
                pass  # it may have stopped in between; the next round sees that
        elif now >= stop.deadline:
            self.pending.remove(stop)
            if not item.spec.force:
                return LibvirtFailure(
                    "domain '%s' did not shut down within %d s (shutdown_timeout) and is still %s: does the guest "
                    "handle the ACPI power button? Set force: true to power it off after the timeout."
                    % (item.spec.name, item.spec.shutdown_timeout, STATE_NAMES.get(dom.state()[0], 'nostate')),
                    about="domain '%s'" % item.spec.name)
            error = self._run(item, lambda: make_step(item, 'destroy', 'shutoff'))
            return error or self._after_stop(stop)
        return None

    def _after_stop(self, stop):
        if not stop.start_after:
            return None
        item = stop.item

        def start():
            call(item.spec, 'start', create, item.dom, stop.start_paused)
            item.restarted()
        return self._run(item, start, item.stopped_basis())
