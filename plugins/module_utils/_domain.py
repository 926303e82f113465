# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Converge libvirt domains: definition, autostart and run state, for one domain or hundreds.

Every item is validated before anything changes. Then each domain's definition and autostart flag
are converged in turn; its state change (start, pause, save, destroy, undefine) is queued and the
queue runs a few at a time. Graceful shutdowns are requested for all domains first and awaited
together, so a batch waits for its slowest guest, not for the sum of them.
"""

from __future__ import annotations

import copy
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    STATE_NAMES, URI_OPTION, HostCapabilities, LibvirtFailure, connect, error_text, is_error, libvirt, require_libvirt,
    run_with_connection)

STATES = ('present', 'running', 'paused', 'shutdown', 'destroyed', 'saved', 'absent')
STRUCTURED_OPTIONS = ('domain_type', 'memory', 'vcpus', 'cpu', 'machine', 'boot', 'disks', 'interfaces',
                      'serial_console', 'serial_log', 'graphics')
ITEM_DEFAULTS = {'state': 'present', 'shutdown_timeout': 120, 'force': False, 'apply': 'next_boot',
                 'remove_storage': False, 'autostart': None}
MAC_PATTERN = re.compile(r'^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$')
POLL_SECONDS = 0.2
PARALLEL_JOBS = 4
# A guest still booting misses the ACPI power button (its handler is not up yet): press it again.
SHUTDOWN_REPEAT_SECONDS = 10
XML_INACTIVE = 'inactive'
XML_LIVE = 'live'


def _where(label):
    """Message prefix naming the input: 'domains[3]: ' in a batch, nothing for a single domain."""
    return '%s: ' % label if label else ''


def _join(label, key):
    return '%s.%s' % (label, key) if label else key


class DomainSpec(object):
    """One domain as asked: its name, the definition (full XML or structured options) and states."""

    def __init__(self, item, label):
        self.label = label
        self.xml = None
        self.options = {key: item.get(key) for key in STRUCTURED_OPTIONS}
        for key, default in ITEM_DEFAULTS.items():
            setattr(self, key, item.get(key) if item.get(key) is not None else default)
        given = sorted(key for key, value in self.options.items() if value is not None)
        if item.get('xml'):
            if given:
                raise dx.DomainXMLError('%sxml and the structured options (%s) are mutually exclusive; '
                                        'put the settings into the XML' % (_where(label), ', '.join(given)))
            self.xml = dx.parse(item['xml'], _join(label, 'xml'))
            self.name = self.xml.findtext('name').strip()
            if item.get('name') and item['name'] != self.name:
                raise dx.DomainXMLError("%sname '%s' differs from the <name> '%s' in its xml"
                                        % (_where(label), item['name'], self.name))
        elif item.get('name'):
            self.name = item['name']
        else:
            raise dx.DomainXMLError('%sgive name (and structured options) or xml' % _where(label))
        self.has_definition = self.xml is not None or bool(given)
        self._validate_options()
        if self.shutdown_timeout < 0:
            raise dx.DomainXMLError('%sshutdown_timeout must be 0 or more seconds' % _where(label))

    def _validate_options(self):
        opts = self.options
        for kind in ('disks', 'interfaces'):  # validation fills in defaults: not into the module's params
            if opts[kind] is not None:
                opts[kind] = [dict(item) for item in opts[kind]]
        for key in ('memory', 'vcpus'):
            if opts[key] is not None and opts[key] < 1:
                raise dx.DomainXMLError('%s%s must be at least 1, not %s' % (_where(self.label), key, opts[key]))
        if opts['serial_log'] and not os.path.isabs(opts['serial_log']):
            raise dx.DomainXMLError('%sserial_log must be an absolute path' % _where(self.label))
        for index, disk in enumerate(opts['disks'] or []):
            self._validate_disk(_join(self.label, 'disks[%d]' % index), disk)
        for index, interface in enumerate(opts['interfaces'] or []):
            self._validate_interface(_join(self.label, 'interfaces[%d]' % index), interface)

    def _validate_disk(self, label, disk):
        if disk.get('path') and disk.get('volume'):
            raise dx.DomainXMLError('%spath and volume are mutually exclusive' % _where(label))
        if disk.get('path') and not os.path.isabs(disk['path']):
            raise dx.DomainXMLError("%spath '%s' must be absolute" % (_where(label), disk['path']))
        if disk['device'] == 'disk' and not (disk.get('path') or disk.get('volume')):
            raise dx.DomainXMLError('%sa disk needs path or volume (only a cdrom may be empty)' % _where(label))
        if disk.get('volume') and not (disk['volume'].get('pool') and disk['volume'].get('name')):
            raise dx.DomainXMLError('%svolume needs pool and name' % _where(label))
        if not disk.get('bus'):
            disk['bus'] = 'virtio' if disk['device'] == 'disk' else 'sata'
        if disk.get('target') and not disk['target'].startswith(dx.DISK_TARGET_PREFIX.get(disk['bus'], 'sd')):
            raise dx.DomainXMLError("%starget '%s' does not fit bus %s (use %sX)"
                                    % (_where(label), disk['target'], disk['bus'], dx.DISK_TARGET_PREFIX.get(disk['bus'], 'sd')))
        if not disk.get('format') and disk.get('path'):
            disk['format'] = 'qcow2' if disk['path'].endswith('.qcow2') else 'raw'

    def _validate_interface(self, label, interface):
        if interface.get('network') and interface.get('bridge'):
            raise dx.DomainXMLError('%snetwork and bridge are mutually exclusive' % _where(label))
        kind = interface.get('type') or ('network' if interface.get('network') else
                                         'bridge' if interface.get('bridge') else None)
        if kind is None:
            raise dx.DomainXMLError('%sgive network, bridge or type: user' % _where(label))
        if kind in ('network', 'bridge') and not interface.get(kind):
            raise dx.DomainXMLError('%stype %s needs the %s option' % (_where(label), kind, kind))
        if kind == 'user' and (interface.get('network') or interface.get('bridge')):
            raise dx.DomainXMLError('%stype user takes neither network nor bridge' % _where(label))
        interface['type'] = kind
        if interface.get('mac') and not MAC_PATTERN.match(interface['mac']):
            raise dx.DomainXMLError("%smac '%s' is not a MAC address like 52:54:00:12:34:56"
                                    % (_where(label), interface['mac']))


def build_specs(params):
    """Validate the module parameters into DomainSpecs; raises DomainXMLError naming the input."""
    if params.get('domains') is None:
        return [DomainSpec(params, '')], False
    specs = []
    for index, item in enumerate(params['domains']):
        merged = dict(item)
        for key in ITEM_DEFAULTS:
            if merged.get(key) is None:
                merged[key] = params.get(key)
        specs.append(DomainSpec(merged, 'domains[%d]' % index))
    seen = {}
    for spec in specs:
        if spec.name in seen:
            raise dx.DomainXMLError("domain '%s' appears twice: %s and %s" % (spec.name, seen[spec.name], spec.label))
        seen[spec.name] = spec.label
    return specs, True


class PendingStop(object):
    """A graceful shutdown that was requested and is being waited for."""

    def __init__(self, spec, dom, result, start_after, start_paused):
        self.spec = spec
        self.dom = dom
        self.result = result
        self.start_after = start_after
        self.start_paused = start_paused
        self.deadline = time.monotonic() + spec.shutdown_timeout
        self.next_request = time.monotonic() + SHUTDOWN_REPEAT_SECONDS


class DomainManager(object):

    def __init__(self, conn, uri, check_mode, diff=True):
        self.conn = conn
        self.uri = uri
        self.check_mode = check_mode
        self.diff = diff
        self._caps = None
        self.domains = dict((dom.name(), dom) for dom in conn.listAllDomains(0))
        self.pending = []
        self.jobs = []
        self.warnings = []
        self.inactive_xml = {}

    @property
    def caps(self):
        if self._caps is None:
            self._caps = HostCapabilities(self.conn)
        return self._caps

    def converge(self, specs, results):
        """Converge every spec; fills results (also when an item fails) and returns (results, diffs, failures)."""
        done = []
        for spec in specs:
            result = {'name': spec.name, 'changed': False, 'actions': [], 'restart_required': False}
            results.append(result)
            done.append((spec, result, self._converge_one(spec, result)))
        failures = self._run_jobs() + self._wait_for_stops()
        diffs = []
        for spec, result, before in done:
            predicted = result.pop('predicted', None)
            dom = self.domains.get(spec.name)
            if spec.state == 'absent':
                result['state'], after = 'absent', None
            else:
                if not result['changed'] and before is not None:
                    after = before
                elif self.diff:
                    after = predicted or self._snapshot(dom)
                else:
                    after = None
                result['state'] = (after or predicted or {}).get('state') or self._state(dom)
            if self.diff and before != after:
                secret_changed = dx.secrets_of((before or {}).get('xml')) != dx.secrets_of((after or {}).get('xml'))
                diffs.append({'before_header': spec.name, 'after_header': spec.name,
                              'before': _diff_text(before), 'after': _diff_text(after, secret_changed)})
        return results, diffs, failures

    # --- one domain ------------------------------------------------------------------------------

    def _converge_one(self, spec, result):
        """Converge one domain (shutdowns are only requested); returns the diff's before."""
        dom = self.domains.get(spec.name)
        before = self._snapshot(dom) if self.diff else None
        if spec.state == 'absent':
            self._undefine(spec, dom, result)
        else:
            dom = self._define(spec, dom, result)
            self._set_autostart(spec, dom, result)
            self._reach_state(spec, dom, result)
        return before

    def _action(self, result, name):
        result['actions'].append(name)
        result['changed'] = True

    def _xml(self, dom, which=XML_INACTIVE):
        """A domain's definition; the inactive one is read once per call of the module and kept until redefined."""
        if which == XML_LIVE:
            return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
        name = dom.name()
        if name not in self.inactive_xml:
            self.inactive_xml[name] = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)
        return self.inactive_xml[name]

    def _state(self, dom):
        return STATE_NAMES.get(dom.state()[0], 'nostate')

    def _snapshot(self, dom):
        """What the diff shows: definition, run state and autostart."""
        if dom is None:
            return None
        return {'xml': self._xml(dom), 'state': self._state(dom), 'autostart': bool(dom.autostart())}

    # --- definition ------------------------------------------------------------------------------

    def _desired(self, spec, current_root):
        if spec.xml is not None:
            desired = copy.deepcopy(spec.xml)
            if current_root is not None:
                current_uuid = current_root.findtext('uuid')
                wanted_uuid = desired.findtext('uuid')
                if wanted_uuid and current_uuid and wanted_uuid.strip().lower() != current_uuid.lower():
                    raise LibvirtFailure("%sdomain '%s' exists with UUID %s but the xml asks for UUID %s; "
                                         "remove <uuid> or undefine the domain first"
                                         % (_where(spec.label), spec.name, current_uuid, wanted_uuid.strip()))
                dx.adopt_identity(desired, current_root)
            return desired
        if current_root is None:
            domain_type = spec.options['domain_type']
            if domain_type in (None, 'auto'):
                domain_type = self.caps.default_domain_type()
            base = dx.skeleton(spec.name, domain_type, self.caps.arch, spec.options['machine'])
        else:
            base = copy.deepcopy(current_root)
        options = dict(spec.options)
        if options['disks']:
            options['disks'] = [self._with_volume_format(spec, disk) for disk in options['disks']]
        return dx.apply_options(base, options, self.caps.machine_aliases if options['machine'] else None)

    def _with_volume_format(self, spec, disk):
        if not disk.get('volume') or disk.get('format'):
            return disk
        pool, name = disk['volume']['pool'], disk['volume']['name']
        try:
            vol_xml = self.conn.storagePoolLookupByName(pool).storageVolLookupByName(name).XMLDesc(0)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure("%svolume '%s' in pool '%s' cannot be read: %s"
                                 % (_where(spec.label), name, pool, error_text(exc)))
        found = re.search(r"<format type='([^']+)'", vol_xml)
        return dict(disk, format=found.group(1) if found else 'raw')

    def _define(self, spec, dom, result):
        if not spec.has_definition:
            if dom is None:
                raise LibvirtFailure("%sdomain '%s' does not exist at %s; give xml or structured options "
                                     "(memory, vcpus, disks...) to define it" % (_where(spec.label), spec.name, self.uri))
            self._note_restart(spec, dom, result, None)
            return dom
        current_root = dx.parse(self._xml(dom)) if dom is not None else None
        desired = self._desired(spec, current_root)
        if current_root is not None:
            if spec.xml is not None:
                gaps = dx.differences(desired, current_root, self.caps.machine_aliases)
            else:
                gaps = [] if dx.canonical(desired) == dx.canonical(current_root) else ['definition']
            if not gaps:
                self._note_restart(spec, dom, result, None)
                return dom
            result['differences'] = gaps if spec.xml is not None else self._changed_settings(current_root, desired)
        self._action(result, 'define' if dom is None else 'update')
        result['created'] = dom is None
        if self.check_mode:
            shown = dx.project(desired, current_root, self.caps.machine_aliases) \
                if spec.xml is not None and current_root is not None else desired
            result['predicted'] = {'xml': dx.to_string(shown), 'autostart': False if dom is None else bool(dom.autostart()),
                                   'state': 'shutoff' if dom is None else self._state(dom)}
            self._note_restart(spec, dom, result, desired)
            return dom
        dom = self._define_xml(spec, dx.to_string(desired))
        self.domains[spec.name] = dom
        self.inactive_xml.pop(spec.name, None)
        if spec.xml is not None:
            left = dx.differences(desired, dx.parse(self._xml(dom)), self.caps.machine_aliases)
            if left:
                self.warnings.append("%slibvirt stored domain '%s' differently from the xml (%s); the next run will "
                                     "report a change again. Write these settings the way libvirt does."
                                     % (_where(spec.label), spec.name, '; '.join(left[:5])))
        self._note_restart(spec, dom, result, None)
        return dom

    def _changed_settings(self, current_root, desired):
        before, after = dx.summarize(current_root), dx.summarize(desired)
        changed = [key for key in after if before[key] != after[key]]
        if dx.secrets_of(dx.to_string(current_root)) != dx.secrets_of(dx.to_string(desired)):
            changed.append('graphics password')
        return sorted(changed) or ['definition']

    def _define_xml(self, spec, xml):
        try:
            try:
                return self.conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
            except libvirt.libvirtError as exc:
                if not is_error(exc, 'VIR_ERR_NO_SUPPORT', 'VIR_ERR_INVALID_ARG'):
                    raise
                return self.conn.defineXML(xml)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure("%slibvirt refused the definition of domain '%s': %s. The existing definition, "
                                 "if any, is unchanged." % (_where(spec.label), spec.name, error_text(exc)))

    def _note_restart(self, spec, dom, result, predicted_root):
        """Does the running guest lack settings of its (new) definition?"""
        if dom is None or not dom.isActive():
            return
        live = dx.parse(self._xml(dom, XML_LIVE))
        later = predicted_root if predicted_root is not None else dx.parse(self._xml(dom))
        reasons = dx.restart_differences(live, later)
        result['restart_required'] = bool(reasons)
        if reasons:
            result['restart_reasons'] = reasons

    def _set_autostart(self, spec, dom, result):
        if spec.autostart is None:
            return
        current = bool(dom.autostart()) if dom is not None else False
        if current == spec.autostart:
            return
        self._action(result, 'autostart' if spec.autostart else 'no_autostart')
        if 'predicted' in result:
            result['predicted']['autostart'] = spec.autostart
        elif self.check_mode:
            result['predicted'] = dict(self._snapshot(dom), autostart=spec.autostart)
        else:
            self._call(spec, 'set autostart of', dom.setAutostart, int(spec.autostart))

    # --- run state -------------------------------------------------------------------------------

    def _reach_state(self, spec, dom, result):
        current = self._state(dom) if dom is not None else 'shutoff'
        active = current not in ('shutoff', 'crashed', 'nostate')
        wanted = spec.state
        if wanted in ('present', 'running', 'paused') and active and result['restart_required'] \
                and spec.apply == 'restart':
            start_paused = wanted == 'paused' or (wanted == 'present' and current == 'paused')
            self._request_stop(spec, dom, result, current == 'paused', restart_paused=start_paused)
            return
        if wanted == 'running':
            if current == 'paused':
                self._transition(spec, dom, result, 'resume', 'running', dom.resume)
            elif current == 'pmsuspended':
                self._transition(spec, dom, result, 'wakeup', 'running', dom.pMWakeup, 0)
            elif not active:
                self._start(spec, dom, result, paused=False)
        elif wanted == 'paused':
            if current in ('running', 'pmsuspended', 'shutdown'):
                self._transition(spec, dom, result, 'pause', 'paused', dom.suspend)
            elif not active:
                self._start(spec, dom, result, paused=True)
        elif wanted == 'shutdown' and active:
            self._request_stop(spec, dom, result, current == 'paused')
        elif wanted == 'destroyed' and active:
            self._transition(spec, dom, result, 'destroy', 'shutoff', dom.destroy)
        elif wanted == 'saved':
            if active:
                self._transition(spec, dom, result, 'save', 'shutoff', dom.managedSave, 0)
            elif dom is None or not dom.hasManagedSaveImage(0):
                raise LibvirtFailure("%sdomain '%s' is shut off and has no saved state; start it before "
                                     "asking for state saved" % (_where(spec.label), spec.name))

    def _transition(self, spec, dom, result, action, new_state, call, *args):
        self._action(result, action)
        if self.check_mode:
            result['predicted'] = dict(result.get('predicted') or self._snapshot(dom), state=new_state)
            return
        self.jobs.append((spec, action, call, args))

    def _start(self, spec, dom, result, paused):
        action = 'restore' if dom is not None and dom.hasManagedSaveImage(0) else 'start'
        self._transition(spec, dom, result, action, 'paused' if paused else 'running', _create, dom, paused)

    def _run_jobs(self):
        """Run the queued state changes, a few at once over the shared connection; returns the errors.

        Starting, saving and destroying an emulated guest take seconds each, mostly waiting on QEMU.
        Each domain has at most one job, so their order does not matter.
        """
        def run(job):
            spec, action, call, args = job
            try:
                self._call(spec, action, call, *args)
            except LibvirtFailure as exc:
                return str(exc)
            return None
        if len(self.jobs) <= 1:
            errors = [run(job) for job in self.jobs]
        else:
            with ThreadPoolExecutor(max_workers=PARALLEL_JOBS) as pool:
                errors = list(pool.map(run, self.jobs))
        self.jobs = []
        return [error for error in errors if error]

    def _call(self, spec, action, call, *args):
        try:
            return call(*args)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure("%scannot %s domain '%s': %s" % (_where(spec.label), action, spec.name, error_text(exc)))

    def _request_stop(self, spec, dom, result, paused, restart_paused=None):
        """Ask the guest to power off (ACPI); with restart_paused set, start it again afterwards."""
        restart = restart_paused is not None
        self._action(result, 'restart' if restart else 'shutdown')
        if self.check_mode:
            state = ('paused' if restart_paused else 'running') if restart else 'shutoff'
            result['predicted'] = dict(result.get('predicted') or self._snapshot(dom), state=state)
            if restart:
                result['restarted'] = True
                result['restart_required'] = False
                result.pop('restart_reasons', None)
            return
        if paused:
            self._call(spec, 'resume (to shut down)', dom.resume)
        self._call(spec, 'shut down', dom.shutdown)
        self.pending.append(PendingStop(spec, dom, result, restart, bool(restart_paused)))

    def _wait_for_stops(self):
        """Wait for all requested shutdowns together; destroy late guests where force is set."""
        failures = []
        while self.pending:
            now = time.monotonic()
            for stop in list(self.pending):
                if not stop.dom.isActive():
                    self.pending.remove(stop)
                    self._after_stop(stop)
                elif now < stop.deadline and now >= stop.next_request:
                    stop.next_request = now + SHUTDOWN_REPEAT_SECONDS
                    try:
                        stop.dom.shutdown()
                    except libvirt.libvirtError:
                        pass  # it may have stopped in between; the next round sees that
                elif now >= stop.deadline:
                    self.pending.remove(stop)
                    if stop.spec.force:
                        stop.result['actions'].append('destroy')
                        self._call(stop.spec, 'destroy', stop.dom.destroy)
                        self._after_stop(stop)
                    else:
                        failures.append("domain '%s' did not shut down within %d s (shutdown_timeout) and is still %s: "
                                        "does the guest handle the ACPI power button? Set force: true to power it "
                                        "off after the timeout." % (stop.spec.name, stop.spec.shutdown_timeout,
                                                                    self._state(stop.dom)))
            if self.pending:
                time.sleep(POLL_SECONDS)
        return failures

    def _after_stop(self, stop):
        if stop.start_after:
            self._call(stop.spec, 'start', _create, stop.dom, stop.start_paused)
            stop.result['restarted'] = True
            stop.result['restart_required'] = False
            stop.result.pop('restart_reasons', None)

    # --- absent ----------------------------------------------------------------------------------

    def _undefine(self, spec, dom, result):
        result['state'] = 'absent'
        if dom is None:
            return
        root = dx.parse(self._xml(dom))
        storage = self._storage_to_remove(spec, root) if spec.remove_storage else ([], [])
        if dom.isActive():
            self._action(result, 'destroy')
        self._action(result, 'undefine')
        result['removed_storage'], result['kept_storage'] = storage[0], storage[1]
        if not self.check_mode:
            self.jobs.append((spec, 'undefine', self._remove, (spec, dom, root, storage[0])))

    def _remove(self, spec, dom, root, storage):
        """Power off, undefine with everything libvirt keeps for the domain, delete the chosen disks."""
        if dom.isActive():
            self._call(spec, 'destroy', dom.destroy)
        flags = 0
        if dom.hasManagedSaveImage(0):
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        if self._call(spec, 'count snapshots of', dom.snapshotNum, 0):
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        if root.find('os/nvram') is not None:
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        if self._has_checkpoints(dom):
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
        self._call(spec, 'undefine', dom.undefineFlags, flags)
        self.domains.pop(spec.name, None)
        for kind, source in storage:
            self._delete_storage(spec, kind, source)

    def _has_checkpoints(self, dom):
        try:
            return bool(dom.listAllCheckpoints(0))
        except (AttributeError, libvirt.libvirtError):
            return False

    def _storage_to_remove(self, spec, root):
        """Disk sources to delete with the domain; a source another domain uses is kept."""
        remove, keep = [], []
        used_elsewhere = set()
        for name, other in self.domains.items():
            if name != spec.name:
                for disk in dx.parse(self._xml(other)).iter('disk'):
                    used_elsewhere.add(dx.disk_source(disk))
        for disk in root.iter('disk'):
            source = dx.disk_source(disk)
            if disk.get('device', 'disk') != 'disk' or source is None:
                continue
            if source in used_elsewhere:
                keep.append({'source': source[1], 'reason': 'used by another domain'})
            elif source[0] == 'block':
                keep.append({'source': source[1], 'reason': 'block device'})
            else:
                remove.append(source)
        return remove, keep

    def _delete_storage(self, spec, kind, source):
        try:
            if kind == 'volume':
                pool, name = source.split('/', 1)
                self.conn.storagePoolLookupByName(pool).storageVolLookupByName(name).delete(0)
                return
            try:
                self.conn.storageVolLookupByPath(source).delete(0)
                return
            except libvirt.libvirtError as exc:
                if not is_error(exc, 'VIR_ERR_NO_STORAGE_VOL') or urlparse(self.uri).netloc:
                    raise
            if os.path.exists(source):
                os.remove(source)
        except (libvirt.libvirtError, OSError) as exc:
            message = error_text(exc) if isinstance(exc, libvirt.libvirtError) else str(exc)
            raise LibvirtFailure("%sdomain '%s' was undefined but its disk %s could not be removed: %s"
                                 % (_where(spec.label), spec.name, source, message))


def _create(dom, paused):
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


def _diff_text(snapshot, secret_changed=False):
    if snapshot is None:
        return ''
    return '# state: %s\n# autostart: %s\n%s' % (snapshot['state'], 'yes' if snapshot['autostart'] else 'no',
                                                 dx.mask_secrets(snapshot['xml'], secret_changed))


def describe(conn, dom, with_xml):
    """A domain as libvirt_domain_info returns it."""
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    info = dx.summarize(dx.parse(xml))
    state, reason = dom.state()
    info.update({
        'name': dom.name(),
        'uuid': dom.UUIDString(),
        'state': STATE_NAMES.get(state, 'nostate'),
        'state_reason': reason,
        'active': bool(dom.isActive()),
        'persistent': bool(dom.isPersistent()),
        'autostart': bool(dom.autostart()) if dom.isPersistent() else False,
        'has_managed_save': bool(dom.hasManagedSaveImage(0)) if dom.isPersistent() else False,
    })
    if with_xml:
        info['xml'] = dx.mask_secrets(xml)
    return info


DOMAIN_OPTIONS = {
    'name': {'type': 'str'},
    'xml': {'type': 'str'},
    'state': {'type': 'str', 'choices': list(STATES)},
    'autostart': {'type': 'bool'},
    'shutdown_timeout': {'type': 'int'},
    'force': {'type': 'bool'},
    'apply': {'type': 'str', 'choices': ['next_boot', 'restart']},
    'remove_storage': {'type': 'bool'},
    'domain_type': {'type': 'str'},
    'memory': {'type': 'int'},
    'vcpus': {'type': 'int'},
    'machine': {'type': 'str'},
    'cpu': {'type': 'dict', 'options': {
        'mode': {'type': 'str', 'default': 'custom', 'choices': ['custom', 'host-model', 'host-passthrough', 'maximum']},
        'model': {'type': 'str'},
    }},
    'boot': {'type': 'dict', 'options': {
        'devices': {'type': 'list', 'elements': 'str', 'choices': ['hd', 'cdrom', 'network', 'fd']},
        'kernel': {'type': 'str'},
        'initrd': {'type': 'str'},
        'cmdline': {'type': 'str'},
    }},
    'disks': {'type': 'list', 'elements': 'dict', 'options': {
        'path': {'type': 'str'},
        'volume': {'type': 'dict', 'options': {
            'pool': {'type': 'str', 'required': True},
            'name': {'type': 'str', 'required': True},
        }},
        'device': {'type': 'str', 'default': 'disk', 'choices': ['disk', 'cdrom']},
        'bus': {'type': 'str', 'choices': ['virtio', 'sata', 'scsi', 'ide', 'usb']},
        'format': {'type': 'str'},
        'target': {'type': 'str'},
        'readonly': {'type': 'bool', 'default': False},
    }},
    'interfaces': {'type': 'list', 'elements': 'dict', 'options': {
        'type': {'type': 'str', 'choices': ['network', 'bridge', 'user']},
        'network': {'type': 'str'},
        'bridge': {'type': 'str'},
        'model': {'type': 'str', 'default': 'virtio'},
        'mac': {'type': 'str'},
    }},
    'serial_console': {'type': 'bool'},
    'serial_log': {'type': 'path'},
    'graphics': {'type': 'dict', 'options': {
        'type': {'type': 'str', 'required': True, 'choices': ['none', 'vnc', 'spice']},
        'listen': {'type': 'str'},
        'port': {'type': 'int'},
        'password': {'type': 'str', 'no_log': True},
    }},
}
MODULE_OPTIONS = dict(DOMAIN_OPTIONS, uri=dict(URI_OPTION), domains={
    'type': 'list', 'elements': 'dict', 'options': DOMAIN_OPTIONS})


def converge_module(module):
    """The body of libvirt_domain: validate everything, connect once, converge, report."""
    require_libvirt(module)
    try:
        specs, batch = build_specs(module.params)
    except dx.DomainXMLError as exc:
        module.fail_json(msg=str(exc))
    results = []
    try:
        manager = DomainManager(connect(module.params['uri']), module.params['uri'], module.check_mode, module._diff)
        results, diffs, failures = manager.converge(specs, results)
    except (LibvirtFailure, dx.DomainXMLError) as exc:
        module.fail_json(msg=str(exc), **_report(results, batch, []))
    except libvirt.libvirtError as exc:
        module.fail_json(msg='libvirt at %s: %s' % (module.params['uri'], error_text(exc)), **_report(results, batch, []))
    report = _report(results, batch, diffs)
    for warning in manager.warnings:
        module.warn(warning)
    if failures:
        module.fail_json(msg=' '.join(failures), **report)
    module.exit_json(**report)


def _report(results, batch, diffs):
    # A prediction left behind by a failed item holds unmasked XML: never return it.
    results = [dict((key, value) for key, value in result.items() if key != 'predicted') for result in results]
    report = {'changed': any(result['changed'] for result in results)}
    if batch:
        report['domains'] = results
    elif results:
        report.update(results[0])
    if diffs:
        report['diff'] = diffs if batch else diffs[0]
    return report


def converge_info(module):
    """The body of libvirt_domain_info."""
    names = module.params['name']
    states = module.params['state']

    def read(conn):
        found = []
        for dom in sorted(conn.listAllDomains(0), key=lambda item: item.name()):
            if names and dom.name() not in names:
                continue
            info = describe(conn, dom, module.params['xml'])
            if not states or info['state'] in states:
                found.append(info)
        return found
    found = run_with_connection(module, read)
    missing = sorted(set(names or ()) - set(info['name'] for info in found)) if not states else []
    module.exit_json(changed=False, domains=found, missing=missing)
