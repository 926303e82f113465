# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Converge libvirt storage pools: definition, storage, run state and autostart, for one pool or many.

Every item is validated, read and planned before anything changes: a refused item (bad input, a device
that holds something else, a pool with volumes to delete) fails the call with nothing done. Then each
plan runs its steps through ``Result.perform``. When a step fails and the pool is no longer what was
read (another run changed it), the pool is read and planned again (``retry_on_conflict``).
"""

from __future__ import annotations

import copy
import os

from ansible_collections.virtops.hypervisor.plugins.module_utils import _pool_storage as ps
from ansible_collections.virtops.hypervisor.plugins.module_utils import _pool_xml as px
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    LibvirtFailure, error_text, is_error, libvirt, lookup_by_name, read_object, require_libvirt, retry_on_conflict,
    with_connection)
from ansible_collections.virtops.hypervisor.plugins.module_utils._pool_options import build_specs, where

POOL_STATES = {0: 'inactive', 1: 'building', 2: 'active', 3: 'degraded', 4: 'inaccessible'}
# The types whose delete removes the storage (dir: the directory, logical: the volume group). fs and netfs
# pools only lose their mount point: the file system and the files on the share stay.
DELETE_REMOVES_VOLUMES = ('dir', 'logical')


def converge_module(module, result):
    """The body of libvirt_pool: validate every item, connect once, plan every item, then act."""
    require_libvirt()
    specs, batch = build_specs(module.params)
    uri = module.params['uri']
    storage = ps.HostStorage(module.run_command) if ps.is_local(uri) else None
    if storage is None:
        result.warn('libvirt at %s runs on another host than this module: the storage of the pools is neither '
                    'probed nor built (run the task on the libvirt host with a local uri for that)' % uri)
    with_connection(uri, lambda conn: PoolManager(conn, storage, result).converge(specs, batch))


def lookup_pool(conn, name):
    return lookup_by_name(conn.storagePoolLookupByName, name, 'VIR_ERR_NO_STORAGE_POOL')


def read_pool(conn, name):
    """An ObjectReading of the pool named name (``obj`` the pool), or None when there is none."""
    return read_object(conn.storagePoolLookupByName, name, libvirt.VIR_STORAGE_XML_INACTIVE,
                       'VIR_ERR_NO_STORAGE_POOL')


class Plan(object):
    """The steps one item needs, planned on one reading, and what the pool looks like afterwards."""

    def __init__(self, spec, reading):
        self.spec = spec
        self.reading = reading
        self.steps = []  # (action, function, args)
        self.differences = []
        self.settings = None  # describe() of the definition the pool has afterwards; None: absent
        self.state = None
        self.autostart = False
        self.restart_reasons = []
        self.deleted_volumes = []

    def step(self, action, function, *args):
        self.steps.append((action, function, args))

    def differ(self, line):
        if line not in self.differences:
            self.differences.append(line)


class PoolManager(object):

    def __init__(self, conn, storage, result):
        self.conn = conn
        self.storage = storage  # None: libvirt runs on another host, whose storage is not probed
        self.result = result

    def converge(self, specs, batch):
        """Plan every item (refusing before any change), then carry the plans out in order."""
        if batch:
            self.result.diff_as_list()
        plans = [self._plan(spec, read_pool(self.conn, spec.name)) for spec in specs]
        results = [self.result.item('pools', name=spec.name) if batch else self.result for spec in specs]
        for plan, result in zip(plans, results):
            result.set(name=plan.spec.name)
            retry_on_conflict(lambda: read_pool(self.conn, plan.spec.name),
                              lambda seen, plan=plan, result=result: self._carry_out(
                                  plan if seen is plan.reading else self._plan(plan.spec, seen), result),
                              seen=plan.reading)

    # --- planning --------------------------------------------------------------------------------

    def _plan(self, spec, reading):
        plan = Plan(spec, reading)
        if spec.state == 'absent':
            self._plan_removal(plan)
        else:
            self._plan_definition(plan)
            self._plan_run_state(plan)
            self._plan_autostart(plan)
        return plan

    def _plan_definition(self, plan):
        spec, reading = plan.spec, plan.reading
        current = px.parse(reading.xml) if reading is not None else None
        if current is None:
            spec.check_new()
        elif spec.type and spec.type != current.get('type'):
            raise LibvirtFailure("%spool '%s' exists with type %s, not %s: the type of a pool cannot change; remove "
                                 "it first (state: absent)" % (where(spec.label), spec.name, current.get('type'),
                                                               spec.type), about=spec.about)
        desired = self._desired(spec, current)
        plan.settings = px.describe(desired)
        if current is None:
            plan.differ('pool: (none) -> defined')
        elif spec.has_definition:
            for line in px.differences(spec.wanted, px.describe(current)):
                plan.differ(line)
            if not reading.persistent:
                plan.differ('persistent: false -> true')
        if plan.differences:
            plan.step('define', self._define, spec, px.to_text(desired))

    def _desired(self, spec, current):
        if current is not None and not spec.has_definition:
            return current
        if spec.xml is not None:
            desired = copy.deepcopy(spec.xml)
            if current is not None:
                given = desired.findtext('uuid')
                if given and given.strip().lower() != current.findtext('uuid').strip().lower():
                    raise LibvirtFailure("%spool '%s' exists with UUID %s but the xml asks for UUID %s; remove <uuid> "
                                         "or remove the pool first" % (where(spec.label), spec.name,
                                                                       current.findtext('uuid'), given.strip()),
                                         about=spec.about)
                px.with_uuid(desired, current.findtext('uuid').strip())
            return desired
        base = copy.deepcopy(current) if current is not None else px.skeleton(spec.name, spec.type)
        return px.apply_settings(base, spec.wanted)

    def _plan_run_state(self, plan):
        spec, reading = plan.spec, plan.reading
        active = reading is not None and reading.active
        restart_reasons = []
        if active and spec.has_definition:
            live = px.describe(px.parse(reading.live_xml))
            asked = dict((key, value) for key, value in spec.wanted.items() if key != 'permissions')
            restart_reasons = px.differences(asked, live)
        restarting = bool(restart_reasons) and spec.apply == 'restart' and spec.state == 'active'
        stopping = active and (restarting or spec.state == 'inactive')
        if stopping:
            self._refuse_when_used(plan, 'restart' if restarting else 'stop')
            plan.step('destroy', self._destroy, spec)
            for line in restart_reasons if restarting else ['state: active -> inactive']:
                plan.differ(line)
        self._plan_storage(plan, running=active and not stopping)
        if spec.state == 'active' and (stopping or not active):
            plan.step('start', self._start, spec)
            if not stopping:
                plan.differ('state: inactive -> active')
        plan.state = spec.state if spec.state != 'present' else (reading.state if reading is not None else 'inactive')
        if plan.state == 'active' and active and not restarting:
            plan.restart_reasons = restart_reasons

    def _plan_storage(self, plan, running):
        """Build what the storage lacks; a running pool's storage is there (only a dir pool's is read: its
        permissions, and a new target that waits for a restart)."""
        if self.storage is None or (running and plan.settings['type'] != 'dir'):
            return
        storage = ps.plan_storage(plan.settings, plan.spec.name, self.storage, plan.spec.label, running)
        for line in storage.reasons:
            plan.differ(line)
        for step in storage.steps:
            if step == ps.BUILD:
                plan.step('build', self._build, plan.spec, plan.settings['type'])
            elif step == ps.MKDIR:
                plan.step(ps.MKDIR, self._make_directory, plan.spec, plan.settings)
            elif step == ps.PERMISSIONS:
                plan.step(ps.PERMISSIONS, self._set_permissions, plan.spec, plan.settings)

    def _plan_autostart(self, plan):
        spec, reading = plan.spec, plan.reading
        have = reading.autostart if reading is not None else False
        plan.autostart = have
        if spec.autostart is not None and spec.autostart != have:
            plan.differ('autostart: %s -> %s' % (str(have).lower(), str(spec.autostart).lower()))
            plan.step('autostart' if spec.autostart else 'no autostart', self._set_autostart, spec, spec.autostart)
            plan.autostart = spec.autostart

    def _plan_removal(self, plan):
        spec, reading = plan.spec, plan.reading
        if reading is None:
            return
        if reading.active:
            self._refuse_when_used(plan, 'remove')
        settings = px.describe(px.parse(reading.xml))
        removes_volumes = spec.delete and settings['type'] in DELETE_REMOVES_VOLUMES
        volumes = self._volumes(settings, reading) if removes_volumes else []
        if volumes and not spec.force:
            raise ModuleFailure("%spool '%s' still has volumes (%s): delete: true would destroy them. Delete the "
                                "volumes first, or set force: true to delete them with the pool"
                                % (where(spec.label), spec.name, ', '.join(volumes)), about=spec.about,
                                volumes=volumes)
        if spec.delete and not reading.persistent and reading.active:
            raise ModuleFailure("%spool '%s' is transient: it vanishes when it stops, so delete: true cannot remove "
                                "its storage; define it first (state: inactive) or leave delete out"
                                % (where(spec.label), spec.name), about=spec.about)
        if volumes and not reading.active:
            plan.step('start', self._start, spec)  # libvirt deletes volumes of a running pool only
        for volume in volumes:
            plan.step('delete volume %s' % volume, self._delete_volume, spec, volume)
            plan.deleted_volumes.append(volume)
        if reading.active or volumes:
            plan.step('destroy', self._destroy, spec)
        if spec.delete:
            plan.step('delete', self._delete, spec)
        if reading.persistent:
            plan.step('undefine', self._undefine, spec)
        plan.differ('pool: %s -> (none)' % reading.state)

    def _volumes(self, settings, reading):
        """Names of the volumes delete would destroy (dir and logical pools; also of a pool that is not running)."""
        if reading.active:
            return sorted(volume.name() for volume in reading.obj.listAllVolumes(0))
        if self.storage is None:
            raise ModuleFailure("pool '%s' does not run and libvirt runs on another host, so its volumes cannot be "
                                "listed before delete: true removes them; start it first, or run the task on the "
                                "libvirt host" % reading.obj.name(), about="pool '%s'" % reading.obj.name())
        if settings['type'] == 'dir':
            return self.storage.entries(settings['target'])
        if settings['type'] == 'logical':
            group = settings['source'].get('name') or reading.obj.name()
            return self.storage.logical_volumes(group) if group in self.storage.volume_groups() else []
        return []

    def _refuse_when_used(self, plan, what):
        if plan.spec.force:
            return
        users = domains_using(self.conn, plan.reading.obj, px.describe(px.parse(plan.reading.live_xml)))
        if users:
            raise ModuleFailure("%scannot %s pool '%s': running domains use its volumes (%s). Shut them down first, "
                                "or set force: true" % (where(plan.spec.label), what, plan.spec.name,
                                                        ', '.join(users)), about=plan.spec.about, domains=users)

    # --- carrying out ----------------------------------------------------------------------------

    def _carry_out(self, plan, result):
        for action, function, args in plan.steps:
            result.perform(action, function, *args)
        for line in plan.differences:
            if line not in result.differences:
                result.differ(line)
        self._report(plan, result)

    def _report(self, plan, result):
        spec, reading = plan.spec, plan.reading
        after = read_pool(self.conn, spec.name) if not result.check_mode else None
        if after is not None:
            settings, state, autostart = px.describe(px.parse(after.xml)), after.state, after.autostart
        elif result.check_mode and plan.settings is not None:
            settings, state, autostart = plan.settings, plan.state, plan.autostart
        else:
            settings, state, autostart = None, None, False
        restart_required = bool(plan.restart_reasons) and state == 'active'
        result.set(state=state or 'absent', autostart=autostart, restart_required=restart_required)
        if restart_required:
            result.set(restart_reasons=plan.restart_reasons)
        if spec.delete:
            result.set(deleted_volumes=plan.deleted_volumes)
        if after is not None and spec.has_definition:
            left = px.differences(spec.wanted, settings)
            if left:
                result.warn("%slibvirt stored pool '%s' differently from what was asked (%s); the next run will "
                            "report it again" % (where(spec.label), spec.name, '; '.join(left)))
        if result.diff_mode:
            before = px.describe(px.parse(reading.xml)) if reading is not None else None
            result.add_diff(px.summary_text(before, reading.state if reading else None,
                                            reading.autostart if reading else False, spec.wanted),
                            px.summary_text(settings, state, autostart, spec.wanted), spec.name)

    def _pool(self, spec):
        pool = lookup_pool(self.conn, spec.name)
        if pool is None:
            raise LibvirtFailure("pool '%s' vanished while it was being changed" % spec.name, about=spec.about)
        return pool

    def _call(self, spec, what, function, *args):
        try:
            return function(*args)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure("cannot %s pool '%s': %s" % (what, spec.name, error_text(exc)), about=spec.about)

    def _define(self, spec, xml):
        self._call(spec, 'define', self.conn.storagePoolDefineXML, xml, 0)

    def _build(self, spec, pool_type):
        flags = libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE if pool_type in ('fs', 'logical') else 0
        self._call(spec, 'build the storage of', self._pool(spec).build, flags)

    def _make_directory(self, spec, settings):
        mode = int(settings['permissions'].get('mode', '0755'), 8)
        os.makedirs(settings['target'], mode)
        os.chmod(settings['target'], mode)  # makedirs' mode is filtered by the umask
        self._chown(settings)

    def _set_permissions(self, spec, settings):
        if 'mode' in settings['permissions']:
            os.chmod(settings['target'], int(settings['permissions']['mode'], 8))
        self._chown(settings)
        pool = self._pool(spec)
        if pool.isActive():
            self._call(spec, 'refresh', pool.refresh, 0)

    def _chown(self, settings):
        permissions = settings['permissions']
        if 'owner' in permissions or 'group' in permissions:
            os.chown(settings['target'], int(permissions.get('owner', -1)), int(permissions.get('group', -1)))

    def _start(self, spec):
        self._call(spec, 'start', self._pool(spec).create, 0)

    def _destroy(self, spec):
        self._call(spec, 'stop', self._pool(spec).destroy)

    def _delete(self, spec):
        self._call(spec, 'delete the storage of', self._pool(spec).delete, 0)

    def _undefine(self, spec):
        self._call(spec, 'undefine', self._pool(spec).undefine)

    def _set_autostart(self, spec, value):
        self._call(spec, 'set autostart of', self._pool(spec).setAutostart, 1 if value else 0)

    def _delete_volume(self, spec, name):
        pool = self._pool(spec)
        self._call(spec, "delete volume '%s' of" % name, lambda: pool.storageVolLookupByName(name).delete(0))


def domains_using(conn, pool, settings):
    """Names of the running domains with a disk in the pool (by pool name, volume path or target path)."""
    paths = set()
    for volume in pool.listAllVolumes(0):
        paths.add(volume.path())
    prefix = (settings.get('target') or '').rstrip('/') + '/'
    users = []
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        root = px.ET.fromstring(dom.XMLDesc(0))
        for source in root.findall('devices/disk/source'):
            path = source.get('file') or source.get('dev') or source.get('dir')
            if source.get('pool') == pool.name() or path in paths or (path and prefix != '/' and path.startswith(prefix)):
                users.append(dom.name())
                break
    return sorted(users)


# --- libvirt_pool_info ----------------------------------------------------------------------------

def describe_pool(pool, details):
    """A pool as libvirt_pool_info returns it."""
    state, capacity, allocation, available = pool.info()
    persistent = bool(pool.isPersistent())
    settings = px.describe(px.parse(pool.XMLDesc(0)))
    info = {
        'name': pool.name(), 'uuid': pool.UUIDString(), 'type': settings['type'],
        'state': POOL_STATES.get(state, 'inactive'), 'autostart': bool(pool.autostart()) if persistent else False,
        'persistent': persistent, 'target': settings['target'], 'permissions': settings['permissions'],
        'source': settings['source'], 'capacity': capacity, 'allocation': allocation, 'available': available,
        'volumes': [],
    }
    if pool.isActive():
        volumes = sorted(pool.listAllVolumes(0), key=lambda volume: volume.name())
        info['volumes'] = [describe_volume(volume) if details else volume.name() for volume in volumes]
    return info


def describe_volume(volume):
    _kind, capacity, allocation = volume.info()
    root = px.ET.fromstring(volume.XMLDesc(0))
    image_format = root.find('target/format')
    return {'name': volume.name(), 'path': volume.path(), 'capacity': capacity, 'allocation': allocation,
            'format': image_format.get('type') if image_format is not None else None}


def pool_facts(conn, params):
    """What libvirt_pool_info returns: the pools asked for (all by default) and the names that do not exist."""
    names = params['name']
    found = []
    for pool in sorted(conn.listAllStoragePools(0), key=lambda item: item.name()):
        if names and pool.name() not in names:
            continue
        try:
            found.append(describe_pool(pool, params['details']))
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_STORAGE_POOL', 'VIR_ERR_NO_STORAGE_VOL'):
                raise  # one removed by someone else since it was listed is left out
    return {'pools': found, 'missing': sorted(set(names or ()) - set(info['name'] for info in found))}
