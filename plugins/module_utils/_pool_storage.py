# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The storage under a pool, probed on the host: decide whether it must be built, and never destroy data.

libvirt's build makes the storage a pool needs (the directory, a file system, a volume group). It runs
only when the probe finds that storage missing: a device that already holds the wanted file system, or
a volume group of the pool's source name, is used as it is; a device holding anything else (another
file system, an LVM physical volume, a partition table, data) is refused with what was found.

The probes run where the module runs (blkid, wipefs, pvs, lvs through ``run_command``, argv lists): the
module runs on the libvirt host, as a task on that host does.
"""

from __future__ import annotations

import os
import stat

from urllib.parse import urlparse

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure

BUILD = 'build'  # libvirt's virStoragePoolBuild
MKDIR = 'create target directory'  # the mount point of a file system that exists already
PERMISSIONS = 'set permissions'  # of a directory that exists (libvirt's build refuses a running pool)
PROBE_BYTES = 1024 * 1024


def is_local(uri):
    """Whether libvirt at uri runs on this host (no host name in it, or localhost), where the probes run."""
    host = urlparse(uri).hostname
    return host in (None, '', 'localhost', '127.0.0.1', '::1')


class StorageRefused(ModuleFailure):
    """The storage under a pool holds something the pool would destroy, or is not there."""


class HostStorage(object):
    """Read-only probes of devices, directories and LVM on the host the module runs on."""

    def __init__(self, run_command):
        self._run_command = run_command
        self._pvs = None

    def _run(self, argv, ok=(0,)):
        rc, out, err = self._run_command(argv)
        if rc not in ok:
            raise ModuleFailure('%s failed (rc %s): %s' % (' '.join(argv), rc, (err or out).strip()))
        return rc, out

    def signature(self, device):
        """What blkid (or wipefs) finds on the device: a dict such as {'TYPE': 'ext4', 'USAGE': 'filesystem'},
        {} when the device holds no signature."""
        rc, out = self._run(['blkid', '-p', '-o', 'export', device], ok=(0, 2))
        found = {}
        if rc == 0:
            for line in out.splitlines():
                key, sep, value = line.partition('=')
                if sep:
                    found[key.strip()] = value.strip()
        if not found:
            _rc, out = self._run(['wipefs', '--no-act', '--noheadings', '--output', 'TYPE', device])
            types = [line.strip() for line in out.splitlines() if line.strip()]
            if types:
                found = {'TYPE': types[0], 'SIGNATURES': ', '.join(types)}
        return found

    def holds_data(self, device):
        """True when the first MiB of the device is not all zeros (data without a known signature)."""
        with open(device, 'rb') as handle:
            head = handle.read(PROBE_BYTES)
        return head.count(b'\0') != len(head)

    def physical_volumes(self):
        """{physical volume path (resolved): volume group name or ''}."""
        if self._pvs is None:
            _rc, out = self._run(['pvs', '--noheadings', '--separator', '|',
                                  '-o', 'pv_name,vg_name'])
            self._pvs = {}
            for line in out.splitlines():
                name, _sep, group = line.strip().partition('|')
                if name:
                    self._pvs[os.path.realpath(name)] = group.strip()
        return self._pvs

    def volume_groups(self):
        return set(group for group in self.physical_volumes().values() if group)

    def logical_volumes(self, group):
        _rc, out = self._run(['lvs', '--noheadings', '-o', 'lv_name', group])
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def directory(self, path):
        """os.stat of path, or None when it does not exist."""
        try:
            return os.stat(path)
        except FileNotFoundError:
            return None

    def entries(self, path):
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []


def found_text(found):
    """What blkid found, as the refusal names it."""
    if 'PTTYPE' in found and 'TYPE' not in found:
        return 'a %s partition table' % found['PTTYPE']
    text = found.get('TYPE', 'a signature')
    if found.get('TYPE') == 'LVM2_member':
        text = 'an LVM physical volume'
    details = ['%s=%s' % (key, found[key]) for key in ('UUID', 'LABEL', 'SIGNATURES') if found.get(key)]
    return '%s (%s)' % (text, ', '.join(details)) if details else text


def permission_gaps(asked, info):
    """'permissions.mode: 0700 -> 0755 (directory)' lines for what the directory does not have."""
    have = {'mode': '%04o' % stat.S_IMODE(info.st_mode), 'owner': str(info.st_uid), 'group': str(info.st_gid)}
    return ['permissions.%s: %s -> %s (directory)' % (key, have[key], asked[key])
            for key in ('mode', 'owner', 'group') if key in asked and asked[key] != have[key]]


class BuildPlan(object):
    """What the storage under one pool needs: steps (BUILD, MKDIR) and the reasons, for differences."""

    def __init__(self):
        self.steps = []
        self.reasons = []

    def add(self, step, reason):
        if step not in self.steps:
            self.steps.append(step)
        self.reasons.append(reason)


class _Refusals(object):
    """Refusals that name the input (``pools[1].source.devices[0]: ...``) and the pool."""

    def __init__(self, label, pool_name):
        self.label = label
        self.about = "pool '%s'" % pool_name

    def refuse(self, field, text):
        raise StorageRefused('%s.%s: %s' % (self.label, field, text) if self.label else '%s: %s' % (field, text),
                             about=self.about)


def plan_storage(settings, pool_name, storage, label='', running=False):
    """The BuildPlan of a pool from its full settings (describe() of the definition). libvirt builds only a
    pool that does not run: for a running one (a new target that waits for a restart) the module makes the
    directory itself.

    Raises StorageRefused naming the input (label: ``pools[1]``, '' for a single pool) when the storage holds
    something else; types other than dir, fs, logical and netfs are never built (libvirt_pool leaves their
    storage to whoever provides it).
    """
    plan = BuildPlan()
    pool_type = settings['type']
    refusals = _Refusals(label, pool_name)
    if pool_type in ('dir', 'netfs'):
        _plan_directory(settings, storage, refusals, plan, pool_type == 'dir', running)
    elif pool_type == 'fs':
        _plan_fs(settings, storage, refusals, plan)
    elif pool_type == 'logical':
        _plan_logical(settings, pool_name, storage, refusals, plan)
    return plan


def _plan_directory(settings, storage, refusals, plan, with_permissions, running):
    path = settings['target']
    info = storage.directory(path)
    if info is None:
        plan.add(MKDIR if running else BUILD, 'target: %s does not exist (%s creates it)'
                 % (path, 'the module' if running else 'build'))
        return
    if not stat.S_ISDIR(info.st_mode):
        refusals.refuse('target', '%s of %s exists and is not a directory; move it away or choose another target'
                        % (path, refusals.about))
    if with_permissions:
        for gap in permission_gaps(settings['permissions'], info):
            plan.add(PERMISSIONS, gap)


def _plan_fs(settings, storage, refusals, plan):
    if not settings['source'].get('devices'):
        refusals.refuse('source.devices', 'an fs pool needs the block device to mount')
    device = settings['source']['devices'][0]
    field = 'source.devices[0]'
    what = 'device %s of %s' % (device, refusals.about)
    wanted = settings['source'].get('format', 'auto')
    _require_device(device, field, what, refusals)
    found = storage.signature(device)
    if not found:
        if storage.holds_data(device):
            refusals.refuse(field, '%s holds data that blkid does not recognise (its first MiB is not zero); it was '
                                   'not formatted. Wipe it yourself if the data is not needed.' % what)
        if wanted == 'auto':
            refusals.refuse('source.format', '%s holds no file system; set source.format (such as ext4) to have it '
                                             'made' % what)
        plan.add(BUILD, 'source.devices: %s holds no file system (build makes %s)' % (device, wanted))
        return
    if found.get('USAGE') != 'filesystem' or wanted not in ('auto', found.get('TYPE')):
        refusals.refuse(field, '%s holds %s, not %s; it was not formatted. Point source.devices at another device, '
                               'or wipe this one yourself (wipefs -a) if its data is not needed.'
                        % (what, found_text(found), 'a file system' if wanted == 'auto' else wanted))
    if storage.directory(settings['target']) is None:
        plan.add(MKDIR, 'target: %s does not exist (the mount point is created; %s on %s is used as it is)'
                 % (settings['target'], found.get('TYPE'), device))


def _plan_logical(settings, pool_name, storage, refusals, plan):
    group = settings['source'].get('name') or pool_name
    devices = settings['source'].get('devices') or []
    pvs = storage.physical_volumes()
    if group in storage.volume_groups():
        members = sorted(path for path, owner in pvs.items() if owner == group)
        strangers = [device for device in devices if os.path.realpath(device) not in members]
        if strangers:
            refusals.refuse('source.devices', 'volume group %s of %s exists on %s, not on %s'
                            % (group, refusals.about, ', '.join(members), ', '.join(strangers)))
        return
    if not devices:
        refusals.refuse('source.devices', 'volume group %s of %s does not exist and no device is named to create it '
                                          'on' % (group, refusals.about))
    for index, device in enumerate(devices):
        field = 'source.devices[%d]' % index
        what = 'device %s of %s' % (device, refusals.about)
        _require_device(device, field, what, refusals)
        owner = pvs.get(os.path.realpath(device))
        if owner is not None:
            refusals.refuse(field, '%s is an LVM physical volume already (%s); it was not touched'
                            % (what, 'of volume group %s' % owner if owner else 'in no volume group'))
        found = storage.signature(device)
        if found:
            refusals.refuse(field, '%s holds %s; it was not touched. Point source.devices at another device, or wipe '
                                   'this one yourself (wipefs -a) if its data is not needed.' % (what, found_text(found)))
        if storage.holds_data(device):
            refusals.refuse(field, '%s holds data that blkid does not recognise (its first MiB is not zero); it was '
                                   'not touched' % what)
    plan.add(BUILD, 'source.name: volume group %s does not exist (build creates it on %s)'
             % (group, ', '.join(devices)))


def _require_device(device, field, what, refusals):
    if not os.path.exists(device):
        refusals.refuse(field, '%s does not exist' % what)
