# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Converge libvirt domains: definition, autostart and run state, for one domain or hundreds.

Every item is validated before anything changes (``_domain_options``). Then each domain is read and
its definition and autostart flag are converged in turn; the step to its run state is planned
(``_domain_power``) and runs with the other domains' steps afterwards, a few at a time. A change is
recorded in the domain's result once it is done (in check mode: would be done).

Another run may converge the same domains at the same time. When a change fails and the domain is
no longer what this run read (the other run defined, started, saved or removed it), the domain is
read again and converged on what still differs (``retry_on_conflict``), so both runs succeed.
"""

from __future__ import annotations

import contextlib
import copy
import re

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_cloud_init as seeds
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_metadata as md
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_clone import ClonePlanner
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_options import build_specs, where
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_power import (
    INACTIVE_STATES, PowerJobs, call, make_step, next_step)
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_storage import (
    StorageView, delete_storage, storage_to_remove, undefine_flags)
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_wait import wait_for_guests
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    CONFLICT_TRIES, STATE_NAMES, HostCapabilities, LibvirtFailure, error_text, is_error, libvirt, read_domain,
    require_libvirt, retry_on_conflict, with_connection)

XML_INACTIVE = 'inactive'
XML_LIVE = 'live'


def converge_module(module, result):
    """The body of libvirt_domain: validate every item, connect once, converge, report into result."""
    require_libvirt()
    specs, batch = build_specs(module.params)
    seeds.narrow_no_log(module)
    uri = module.params['uri']
    with_connection(uri, lambda conn: DomainManager(conn, uri, result).converge(specs, batch))


class _Item(object):
    """One domain being converged: what was asked, its result, and what this run knows of the domain."""

    def __init__(self, spec, result):
        self.spec = spec
        self.result = result
        self.reading = None  # the DomainReading the plan was made on; None: the domain did not exist
        self.dom = None  # the handle to act on
        self.xml = None  # the inactive definition as libvirt stores it (also after this run's update)
        self.before = None  # diff mode: definition, state and autostart before this run changed anything
        self.predicted = None  # check mode: what the real run would leave (unmasked XML: never returned)
        self.basis = None  # (uuid, run state, managed save) that the planned state step starts from
        self.planned = False
        self.tries_left = CONFLICT_TRIES
        self.seed = None  # cloud_init: (where the seed goes, the bytes stored there now or None)
        self.seed_changed = False  # this run (re)wrote the seed: a running guest has not read it

    def read(self, reading):
        self.reading = reading
        self.dom = reading.dom if reading is not None else None
        self.xml = reading.xml if reading is not None else None
        self.predicted = None

    @property
    def state(self):
        return self.reading.state if self.reading is not None else 'shutoff'

    @property
    def managed_save(self):
        return self.reading.managed_save if self.reading is not None else False

    def restarted(self):
        self.result.set(restarted=True, restart_required=False)
        self.result.fields.pop('restart_reasons', None)

    def stopped_basis(self):
        """The basis of a start after this run's own shutdown."""
        return (self.basis[0], 'shutoff', False)


def _state_key(reading):
    return None if reading is None else (reading.uuid, reading.state, reading.managed_save)


class DomainManager(object):

    def __init__(self, conn, uri, result):
        self.conn = conn
        self.uri = uri
        self.result = result
        self.check_mode = result.check_mode
        self.diff = result.diff_mode
        self._caps = None
        self._roots = None
        self._vcpu_limits = {}
        self.jobs = PowerJobs(self._guard, result.check_mode)
        self.clones = ClonePlanner(conn, uri)
        self._clone_plans = {}

    @property
    def caps(self):
        if self._caps is None:
            self._caps = HostCapabilities(self.conn)
        return self._caps

    def converge(self, specs, batch):
        """Converge every spec; each item's result holds what was done, also when a later item fails."""
        items = []
        if batch:
            self.result.diff_as_list()
        self._plan_clones(specs)
        try:
            for spec in specs:
                if batch:
                    item = _Item(spec, self.result.item('domains', name=spec.name, restart_required=False))
                else:
                    self.result.set(name=spec.name, restart_required=False)
                    item = _Item(spec, self.result)
                items.append(item)
                self._converge_first(item)
        except ModuleFailure:
            # The items before the failed one keep what was done to them (their state steps did not run).
            with contextlib.suppress(libvirt.libvirtError):
                for item in items[:-1]:
                    self._report(item)
            raise
        failures = self.jobs.run()
        for item in items:
            self._report(item)
        if failures:
            about = set(failure.about for failure in failures)
            raise LibvirtFailure(' '.join(str(failure) for failure in failures),
                                 about=about.pop() if len(about) == 1 else None)
        wait_for_guests(items, self.check_mode)

    def _plan_clones(self, specs):
        """Plan each clone still to be made before the first change: a clone that cannot be made changes nothing."""
        for spec in specs:
            if spec.clone_from and spec.state != 'absent' and read_domain(self.conn, spec.name) is None:
                self._clone_plans[spec.name] = self.clones.plan(spec)

    def _clone_plan(self, spec):
        if spec.name not in self._clone_plans:  # the domain was removed since the call began
            self._clone_plans[spec.name] = self.clones.plan(spec)
        return self._clone_plans[spec.name]

    def _converge_first(self, item):
        retry_on_conflict(lambda: read_domain(self.conn, item.spec.name), lambda seen: self._converge(item, seen),
                          tries=item.tries_left)

    def _converge(self, item, reading):
        """Converge one domain from a reading of it: definition and autostart now, the state step queued."""
        if item.planned:  # again: another run changed the domain since the last reading
            item.tries_left -= 1
        if self.diff and not (item.planned and item.result.changed):
            item.before = self._snapshot(reading)  # what this run found before its own first change
        item.planned = True
        item.read(reading)
        if item.spec.state == 'absent':
            self._plan_removal(item)
        else:
            self._define(item)
            self._seed_restart(item)
            self._set_live_metadata(item)
            self._set_autostart(item)
            self._plan_state(item)

    def _guard(self, item, work, basis=None):
        """Run a planned step; when it fails because the domain's run state is no longer the basis it was
        planned on, converge the domain again on a new reading (which queues what still differs)."""
        basis = item.basis if basis is None else basis

        def attempt(seen):
            if seen is basis:
                return work()
            return self._converge(item, read_domain(self.conn, item.spec.name))
        return retry_on_conflict(lambda: _state_key(read_domain(self.conn, item.spec.name)), attempt,
                                 tries=item.tries_left, seen=basis)

    # --- reading ---------------------------------------------------------------------------------

    def _xml(self, dom, which=XML_INACTIVE):
        flags = libvirt.VIR_DOMAIN_XML_SECURE
        if which == XML_INACTIVE:
            flags |= libvirt.VIR_DOMAIN_XML_INACTIVE
        return dom.XMLDesc(flags)

    def _snapshot(self, reading):
        """What the diff shows: definition, run state and autostart."""
        if reading is None:
            return None
        return {'xml': reading.xml, 'state': reading.state, 'autostart': reading.autostart}

    # --- definition ------------------------------------------------------------------------------

    def _desired(self, spec, current_root):
        if not spec.has_definition:  # only tags, metadata or cloud_init: on top of the definition as it is
            return copy.deepcopy(current_root)
        if spec.xml is not None:
            desired = copy.deepcopy(spec.xml)
            if current_root is not None:
                current_uuid = current_root.findtext('uuid')
                wanted_uuid = desired.findtext('uuid')
                if wanted_uuid and current_uuid and wanted_uuid.strip().lower() != current_uuid.lower():
                    raise LibvirtFailure("%sdomain '%s' exists with UUID %s but the xml asks for UUID %s; "
                                         "remove <uuid> or undefine the domain first"
                                         % (where(spec.label), spec.name, current_uuid, wanted_uuid.strip()),
                                         about="domain '%s'" % spec.name)
                dx.adopt_identity(desired, current_root)
            return desired
        if current_root is None and spec.clone_from:
            base = copy.deepcopy(self._clone_plan(spec).root)
        elif current_root is None:
            domain_type = spec.options['domain_type']
            if domain_type in (None, 'auto'):
                domain_type = self.caps.default_domain_type()
            base = dx.skeleton(spec.name, domain_type, self.caps.arch, spec.options['machine'])
        else:
            base = copy.deepcopy(current_root)
        options = dict(spec.options)
        if options['disks']:
            options['disks'] = [self._with_volume_format(spec, disk) for disk in options['disks']]
            seed_disk = seeds.attached_seed(spec.name, current_root) if spec.cloud_init is not None else None
            if seed_disk is not None:  # a complete list of disks would drop the seed and give its target away
                options['disks'].append(seed_disk)
        return dx.apply_options(base, options, self.caps.machine_aliases if options['machine'] else None)

    def _with_volume_format(self, spec, disk):
        if not disk.get('volume') or disk.get('format'):
            return disk
        pool, name = disk['volume']['pool'], disk['volume']['name']
        try:
            vol_xml = self.conn.storagePoolLookupByName(pool).storageVolLookupByName(name).XMLDesc(0)
        except libvirt.libvirtError as exc:
            self.result.plan_without(LibvirtFailure("%svolume '%s' in pool '%s' cannot be read: %s" % (
                where(spec.label), name, pool, error_text(exc)), about="domain '%s'" % spec.name),
                'plans the disk without its format')
            return disk
        found = re.search(r"<format type='([^']+)'", vol_xml)
        return dict(disk, format=found.group(1) if found else 'raw')

    def _define(self, item):
        spec, result, exists = item.spec, item.result, item.reading is not None
        if not spec.has_definition and not (exists and spec.has_extras):
            if not exists:
                raise LibvirtFailure("%sdomain '%s' does not exist at %s; give xml or structured options "
                                     "(memory, vcpus, disks...) to define it" % (where(spec.label), spec.name, self.uri),
                                     about="domain '%s'" % spec.name)
            return self._note_restart(item, None)
        current_root = dx.parse(item.xml) if exists else None
        desired = self._desired(spec, current_root)
        self._apply_extras(item, desired, current_root)
        if exists:
            if spec.xml is not None:
                gaps = dx.differences(desired, current_root, self.caps.machine_aliases)
                gaps += _metadata_gaps(desired, current_root)
            else:
                gaps = [] if dx.canonical(desired) == dx.canonical(current_root) else ['definition']
            if not gaps:
                self._write_seed(item)
                return self._note_restart(item, None)
            result.differences[:] = gaps if spec.xml is not None else self._changed_settings(current_root, desired)
        self._check_vcpu_limit(spec, desired)
        self._write_seed(item)
        xml = dx.to_string(desired)
        if not exists and spec.clone_from:
            plan = self._clone_plan(spec)
            dom = result.perform('clone', plan.carry_out, spec, lambda: self._define_xml(spec, xml))
            result.set(clone=plan.report())
        else:
            dom = result.perform('update' if exists else 'define', self._define_xml, spec, xml)
        result.set(created=not exists)
        if self.check_mode:
            shown = dx.project(desired, current_root, self.caps.machine_aliases) \
                if spec.xml is not None and exists else desired
            item.predicted = {'xml': dx.to_string(shown), 'autostart': item.reading.autostart if exists else False,
                              'state': item.state}
            return self._note_restart(item, desired)
        item.dom, item.xml = dom, self._xml(dom)
        if spec.xml is not None:
            left = dx.differences(desired, dx.parse(item.xml), self.caps.machine_aliases)
            if left:
                result.warn("%slibvirt stored domain '%s' differently from the xml (%s); the next run will "
                            "report a change again. Write these settings the way libvirt does."
                            % (where(spec.label), spec.name, '; '.join(left[:5])))
        return self._note_restart(item, None)

    # --- tags, metadata, cloud_init ----------------------------------------------------------------

    def _apply_extras(self, item, desired, current_root):
        """Tags, metadata and the seed's digest into the virtops element of desired, the cloud-init seed's
        CD-ROM into its disks."""
        spec = item.spec
        wanted = md.describe(current_root) if current_root is not None else md.empty()
        if spec.xml is not None and md.find(desired) is not None:
            wanted = md.describe(desired)  # the xml's own element, unless the options say otherwise
        if spec.tags is not None:
            wanted['tags'] = spec.tags
        if spec.metadata is not None:
            wanted['metadata'] = spec.metadata
        if spec.cloud_init is not None:
            self._attach_seed(item, desired, current_root)
        wanted['seed'] = _recorded_seed(spec, desired, current_root)
        md.apply(desired, wanted)

    def _attach_seed(self, item, desired, current_root):
        spec, about = item.spec, "domain '%s'" % item.spec.name
        stored = None
        try:
            location = seeds.locate(self.conn, self.uri, spec.cloud_init, spec.label, spec.name, desired)
        except seeds.PoolUnavailable as unavailable:
            self.result.plan_without(unavailable, 'plans the seed in it', needed='creates or starts it')
            location = unavailable.location
        else:
            stored = seeds.SeedStore(self.conn).read(location, spec.cloud_init.label, about)
        previous = [disk for root in (desired, current_root) if root is not None for disk in root.iter('disk')
                    if seeds.is_seed_of(spec.name, disk)]
        bus = seeds.cdrom_bus(desired, previous[0].find('target').get('bus') if previous else None)
        disk = seeds.seed_disk(location, bus)
        dx.detach_disks(desired, lambda elem: not seeds.is_seed_of(spec.name, elem)
                        or dx.disk_source(elem) == dx.wanted_disk_source(disk))  # a seed kept elsewhere before
        dx.attach_disk(desired, disk, current_root)
        item.seed = (location, stored)

    def _write_seed(self, item):
        """(Re)write the seed when its bytes differ from the stored ones; report where it is."""
        if item.seed is None:
            return
        spec, (location, stored) = item.spec, item.seed
        wanted = spec.cloud_init
        same = seeds.same_seed(stored, wanted.image)
        item.result.set(cloud_init=dict(seeds.describe_location(location), size=len(wanted.image),
                                        sha256=wanted.digest(), instance_id=wanted.instance_id, written=not same))
        if same:
            return
        item.result.perform('update_seed' if stored is not None else 'create_seed', seeds.SeedStore(self.conn).write,
                            location, wanted.image, wanted.label, "domain '%s'" % spec.name)
        item.seed = (location, wanted.image)
        item.seed_changed = True
        if self.diff:
            header = '%s: cloud-init seed %s' % (spec.name, location.path or '%s/%s' % (location.pool, location.name))
            item.result.add_diff(seeds.shown_image(stored), seeds.shown(wanted.files), header)

    def _seed_restart(self, item):
        """A running guest read its seed at boot: a rewritten one needs a restart. The digests in the live XML
        and the definition tell that in later runs too (_note_restart); a guest that booted before the
        definition recorded a digest has none in its live XML, and only the run that rewrites its seed knows."""
        if not item.seed_changed or item.state in INACTIVE_STATES or item.reading is None:
            return
        reasons = set(item.result.fields.get('restart_reasons') or ()) | {'cloud_init'}
        item.result.set(restart_required=True, restart_reasons=sorted(reasons))

    def _set_live_metadata(self, item):
        """Tags and metadata are no settings a guest boots with: a running domain gets them now."""
        spec = item.spec
        if (spec.tags is None and spec.metadata is None) or item.state in INACTIVE_STATES or item.reading is None:
            return
        wanted = md.describe(self._predicted_root(item))
        live = dx.parse(self._xml(item.dom, XML_LIVE))
        if md.describe(live) == wanted:
            return
        wanted['seed'] = md.seed_digest(live)  # the seed the guest booted with, not the definition's
        fragment = None if md.is_empty(wanted) else md.fragment(wanted['tags'], wanted['metadata'], wanted['seed'])
        item.result.perform('update_live_metadata', call, spec, 'set the live metadata of', item.dom.setMetadata,
                            libvirt.VIR_DOMAIN_METADATA_ELEMENT, fragment, md.PREFIX, md.NAMESPACE,
                            libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def _predicted_root(self, item):
        """The definition after this run: as libvirt stored it, in check mode as it would be."""
        return dx.parse(item.predicted['xml'] if item.predicted else item.xml)

    def _check_vcpu_limit(self, spec, desired):
        """Refuse, in check mode as in the real run, the vCPU count libvirt would refuse for this machine type."""
        try:
            vcpus = int((desired.findtext('vcpu') or '1').strip())
        except ValueError:
            return  # not a number: libvirt's own validation names it
        os_type = desired.find('os/type')
        arch = os_type.get('arch') if os_type is not None else None
        machine = os_type.get('machine') if os_type is not None else None
        limit = self._vcpu_limit(desired.get('type'), arch or self.caps.arch, machine)
        if limit is not None and vcpus > limit:
            what = '<vcpu> in xml' if spec.xml is not None else 'vcpus'
            raise LibvirtFailure("%s%s %d is more than the %d vCPUs that libvirt allows for %s guests of machine type "
                                 "%s; domain '%s' was not defined or changed"
                                 % (where(spec.label), what, vcpus, limit, desired.get('type'), machine or '(default)',
                                    spec.name), about="domain '%s'" % spec.name)

    def _vcpu_limit(self, domain_type, arch, machine):
        """The most vCPUs the hypervisor takes: from its domain capabilities, else its global maximum, else None."""
        key = (domain_type, arch, machine)
        if key not in self._vcpu_limits:
            limit = None
            try:
                found = re.search(r"<vcpu max='(\d+)'", self.conn.getDomainCapabilities(None, arch, machine, domain_type, 0))
                limit = int(found.group(1)) if found else None
            except libvirt.libvirtError:
                try:
                    limit = self.conn.getMaxVcpus(domain_type)
                except libvirt.libvirtError:
                    limit = None
            self._vcpu_limits[key] = limit if limit and limit > 0 else None
        return self._vcpu_limits[key]

    def _changed_settings(self, current_root, desired):
        before, after = dx.summarize(current_root), dx.summarize(desired)
        changed = [key for key in after if before[key] != after[key]]
        changed.extend(dx.unsummarized_differences(current_root, desired))
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
                                 "if any, is unchanged." % (where(spec.label), spec.name, error_text(exc)),
                                 about="domain '%s'" % spec.name)

    def _note_restart(self, item, predicted_root):
        """Does the running guest lack settings of its (new) definition?"""
        if item.state in INACTIVE_STATES:
            return
        live = dx.parse(self._xml(item.dom, XML_LIVE))
        later = predicted_root if predicted_root is not None else dx.parse(item.xml)
        reasons = dx.restart_differences(live, later)
        item.result.set(restart_required=bool(reasons))
        if reasons:
            item.result.set(restart_reasons=reasons)
        else:
            item.result.fields.pop('restart_reasons', None)

    def _set_autostart(self, item):
        spec = item.spec
        current = item.reading.autostart if item.reading is not None else False
        if spec.autostart is None or current == spec.autostart:
            return
        item.result.perform('autostart' if spec.autostart else 'no_autostart',
                            lambda: call(spec, 'set autostart of', item.dom.setAutostart, int(spec.autostart)))
        if self.check_mode:
            item.predicted = dict(item.predicted or self._snapshot(item.reading), autostart=spec.autostart)

    # --- run state -------------------------------------------------------------------------------

    def _plan_state(self, item):
        spec, current = item.spec, item.state
        if spec.state == 'saved' and current in INACTIVE_STATES and not item.managed_save:
            raise LibvirtFailure("%sdomain '%s' is shut off and has no saved state; start it before asking for "
                                 "state saved" % (where(spec.label), spec.name), about="domain '%s'" % spec.name)
        restart_now = spec.apply == 'restart' and bool(item.result.fields.get('restart_required'))
        step = next_step(current, spec.state, restart_now, item.managed_save)
        item.basis = (item.dom.UUIDString() if item.dom is not None else None, current, item.managed_save)
        if step is None:
            return
        action, after = step
        if self.check_mode:
            item.predicted = dict(item.predicted or self._snapshot(item.reading), state=after)
        if action in ('shutdown', 'restart'):
            self.jobs.request_stop(item, current == 'paused', (after == 'paused') if action == 'restart' else None)
        else:
            self.jobs.add(item, lambda: make_step(item, action, after))

    # --- absent ----------------------------------------------------------------------------------

    def _plan_removal(self, item):
        spec, result, reading = item.spec, item.result, item.reading
        result.set(state='absent')
        if reading is None:
            return
        root = dx.parse(reading.xml)
        remove, keep = [], []
        if spec.remove_storage:
            remove, keep = storage_to_remove(root, self._other_roots(spec.name), StorageView(self.conn, self.uri),
                                             also=lambda disk: seeds.is_seed_of(spec.name, disk))
        result.set(removed_storage=list(remove) if self.check_mode else [], kept_storage=keep)
        item.basis = _state_key(reading)
        self.jobs.add(item, lambda: self._remove(item, root, remove))

    def _other_roots(self, name):
        """The definitions of the other domains (read once per call), whose disks a removal keeps."""
        if self._roots is None:
            self._roots = {}
            for dom in self.conn.listAllDomains(0):
                try:
                    self._roots[dom.name()] = dx.parse(self._xml(dom))
                except libvirt.libvirtError as exc:
                    if not is_error(exc, 'VIR_ERR_NO_DOMAIN'):
                        raise
        return [root for other, root in self._roots.items() if other != name]

    def _remove(self, item, root, storage):
        """Power off, undefine with everything libvirt keeps for the domain, delete the chosen disks."""
        spec = item.spec
        if item.state not in INACTIVE_STATES:
            make_step(item, 'destroy', 'shutoff')
        item.result.perform('undefine', lambda: call(spec, 'undefine', item.dom.undefineFlags,
                                                     call(spec, 'read', undefine_flags, item.dom, root)))
        if self.check_mode:
            return
        for kind, source in storage:
            if delete_storage(self.conn, self.uri, spec, kind, source):
                item.result.fields['removed_storage'].append((kind, source))

    # --- report ----------------------------------------------------------------------------------

    def _report(self, item):
        """The domain's state after the call and, in diff mode, its before and after."""
        result = item.result
        if item.spec.state == 'absent':
            after = None
        else:
            if not result.changed and item.before is not None:
                after = item.before
            elif self.diff:
                after = item.predicted or self._snapshot(read_domain(self.conn, item.spec.name))
            else:
                after = None
            state = (after or item.predicted or {}).get('state')
            result.set(state=state or STATE_NAMES.get(item.dom.state()[0], 'nostate'))
        if self.diff and item.before != after:
            secret_changed = dx.secrets_of((item.before or {}).get('xml')) != dx.secrets_of((after or {}).get('xml'))
            result.add_diff(_diff_text(item.before), _diff_text(after, secret_changed), item.spec.name)


def _metadata_gaps(desired, current_root):
    """Full XML is compared as a subset, which a removed tag would pass: tags, metadata and the seed's digest
    compare whole."""
    wanted, found = md.describe(desired), md.describe(current_root)
    wanted['cloud_init seed'], found['cloud_init seed'] = md.seed_digest(desired), md.seed_digest(current_root)
    return ['%s: %s, not %s' % (key, wanted[key], found[key]) for key in ('tags', 'metadata', 'cloud_init seed')
            if wanted[key] != found[key]]


def _recorded_seed(spec, desired, current_root):
    """The seed digest the definition records: the wanted seed's; without cloud_init, the one recorded
    before, as long as the seed is still attached."""
    if spec.cloud_init is not None:
        return spec.cloud_init.digest()
    if not any(seeds.is_seed_of(spec.name, disk) for disk in desired.iter('disk')):
        return None
    return md.seed_digest(current_root if current_root is not None else desired)


def _diff_text(snapshot, secret_changed=False):
    if snapshot is None:
        return ''
    return '# state: %s\n# autostart: %s\n%s' % (snapshot['state'], 'yes' if snapshot['autostart'] else 'no',
                                                 dx.mask_secrets(snapshot['xml'], secret_changed))
