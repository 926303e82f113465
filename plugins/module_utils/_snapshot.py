# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt snapshots: read them as a tree, create by name, delete with care, revert, keep the newest N.

Snapshots are records of a past state: an existing snapshot is never changed. Asking again for a
snapshot that exists with other settings is reported (a warning and ``differences``), not acted on.

Another run may take or delete the same snapshots at the same time (two operators, overlapping AWX
jobs). Creating and deleting therefore go through ``retry_on_conflict``: when libvirt refuses because
the tree changed since it was read ("already exists", "no domain snapshot with matching name"), the
tree is read again and compared again, so the second run finds its work done and reports no change.
"""

from __future__ import annotations

import datetime
import os
import xml.etree.ElementTree as ET

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    STATE_NAMES, LibvirtFailure, error_text, is_error, libvirt, lookup_domain, retry_on_conflict)

INTERNAL_FORMATS = ('qcow2',)


def describe(snap, with_xml=False):
    """A snapshot as the modules return it."""
    xml = snap.getXMLDesc(libvirt.VIR_DOMAIN_SNAPSHOT_XML_SECURE)
    root = ET.fromstring(xml)
    created = int(root.findtext('creationTime') or 0)
    memory = root.find('memory')
    disks = []
    for disk in root.findall('disks/disk'):
        source = disk.find('source')
        disks.append({'name': disk.get('name'), 'snapshot': disk.get('snapshot') or 'internal',
                      'file': source.get('file') if source is not None else None})
    info = {
        'name': snap.getName(),
        'description': root.findtext('description'),
        'parent': root.findtext('parent/name'),
        'children': sorted(child.getName() for child in snap.listAllChildren(0)),
        'state': root.findtext('state'),
        'creation_time': created,
        'created': datetime.datetime.fromtimestamp(created, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'memory': memory.get('snapshot') if memory is not None else 'no',
        'disks': disks,
        'current': bool(snap.isCurrent(0)),
        'disk_only': bool(disks) and all(disk['snapshot'] != 'internal' for disk in disks),
    }
    if with_xml:
        for domain in root.findall('domain') + root.findall('inactiveDomain'):
            root.remove(domain)
        info['xml'] = dx.mask_secrets(ET.tostring(root, encoding='unicode'))
    return info


def find_domain(conn, name, uri):
    """The domain named name, or a LibvirtFailure saying it does not exist."""
    dom = lookup_domain(conn, name)
    if dom is None:
        raise LibvirtFailure("domain '%s' does not exist at %s" % (name, uri), about="domain '%s'" % name)
    return dom


def read_all(dom):
    """All snapshots of a domain, oldest first; one that another run deletes while it is read is left out."""
    found = []
    for snap in dom.listAllSnapshots(0):
        try:
            found.append(describe(snap))
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_DOMAIN_SNAPSHOT'):
                raise
    return sorted(found, key=lambda item: (item['creation_time'], item['name']))


def by_name(snapshots, name):
    return next((item for item in snapshots if item['name'] == name), None)


def tree_text(snapshots, domain_state):
    """The snapshot tree as lines, for diffs."""
    names = set(item['name'] for item in snapshots)
    by_parent = {}
    for item in snapshots:
        by_parent.setdefault(item['parent'] if item['parent'] in names else None, []).append(item)
    lines = ['# domain state: %s' % domain_state]

    def walk(parent, depth):
        for item in by_parent.get(parent, []):
            marker = ' [current]' if item['current'] else ''
            lines.append('%s%s (%s, memory %s, %s)%s'
                         % ('  ' * depth, item['name'], item['state'], item['memory'], item['created'], marker))
            walk(item['name'], depth + 1)
    walk(None, 0)
    return '\n'.join(lines) + '\n'


class SnapshotManager(object):
    """One libvirt_snapshot call: read the domain's snapshot tree, compare it with what was asked, act.

    ``run()`` is ``prepare()`` (check the options, read the tree once), ``converge()`` (act, through
    ``Result.perform``; creating and deleting again on a fresh reading when another run changed the
    tree in between) and ``report()`` (the tree afterwards, predicted in check mode).
    """

    def __init__(self, conn, params, result):
        self.conn = conn
        self.params = params
        self.result = result
        self.check_mode = result.check_mode
        self.about = "snapshot '%s' of domain '%s'" % (params['name'], params['domain'])
        self.dom = None
        self.before = []
        self.state_before = None
        self.removed = []

    def run(self):
        self.prepare()
        self.converge()
        self.report()

    def prepare(self):
        params = self.params
        self.result.set(domain=params['domain'], name=params['name'], removed=self.removed)
        if params['retain'] is not None and (params['retain'] < 1 or params['state'] != 'present'):
            raise ModuleFailure('retain must be 1 or more, and works with state present only', about=self.about)
        if params['retain_prefix'] is not None and not params['name'].startswith(params['retain_prefix']):
            raise ModuleFailure("name '%s' does not start with retain_prefix '%s': the snapshot just taken would "
                                "not count" % (params['name'], params['retain_prefix']), about=self.about)
        self.dom = find_domain(self.conn, params['domain'], params['uri'])
        self.before = read_all(self.dom)
        self.state_before = self._domain_state()

    def converge(self):
        state = self.params['state']
        if state == 'reverted':
            self._revert()
        else:
            retry_on_conflict(lambda: read_all(self.dom), self._present if state == 'present' else self._absent,
                              seen=self.before)

    def report(self):
        after = self._predicted(self.before) if self.check_mode else read_all(self.dom)
        snapshot = by_name(after, self.params['name'])
        domain_state = self._domain_state_after()
        self.result.set(snapshot=snapshot, current=next((item['name'] for item in after if item['current']), None),
                        domain_state=domain_state)
        if self.result.diff_mode:
            self.result.add_diff(tree_text(self.before, self.state_before), tree_text(after, domain_state),
                                 self.params['domain'])

    def _domain_state(self):
        return STATE_NAMES.get(self.dom.state()[0], 'nostate')

    def _domain_state_after(self):
        if self.check_mode and self.params['state'] == 'reverted':
            return self._reverted_state()
        return self._domain_state()

    def _reverted_state(self):
        wanted = self.params['after_revert']
        if wanted != 'snapshot':
            return wanted
        snap = by_name(self.before, self.params['name'])
        return {'running': 'running', 'paused': 'paused'}.get(snap['state'], 'shutoff')

    # --- present -------------------------------------------------------------------------------

    def _present(self, seen):
        """Take the snapshot unless seen holds it, then apply retain."""
        existing = by_name(seen, self.params['name'])
        if existing is not None:
            self._report_differences(existing)
        else:
            xml, flags = self._creation_request()
            self.result.perform('create', self._create, xml, flags)
        if self.params['retain']:
            self._retain(seen)

    def _report_differences(self, existing):
        params = self.params
        found = []
        if params['description'] is not None and (existing['description'] or '') != params['description']:
            found.append("description is '%s'" % (existing['description'] or ''))
        if params['disk_only'] is not None and existing['disk_only'] != params['disk_only']:
            found.append('disk_only is %s' % existing['disk_only'])
        wanted_files = dict((disk['name'], disk['file']) for disk in params['disks'] or [] if disk.get('file'))
        have_files = dict((disk['name'], disk['file']) for disk in existing['disks'] if disk['file'])
        for disk, path in sorted(wanted_files.items()):
            if have_files.get(disk) != path:
                found.append('disk %s is %s' % (disk, have_files.get(disk) or 'internal'))
        for line in found:
            if line not in self.result.differences:  # a retry reads the same snapshot again
                self.result.differ(line)
        if found:
            self.result.warn(
                "snapshot '%s' of domain '%s' exists and differs from what was asked (%s); it was left as it is: a "
                "snapshot records a past state. Delete it (state: absent) and create it again to change it."
                % (params['name'], params['domain'], '; '.join(found)))

    def _creation_request(self):
        params = self.params
        root = ET.Element('domainsnapshot')
        ET.SubElement(root, 'name').text = params['name']
        if params['description']:
            ET.SubElement(root, 'description').text = params['description']
        disk_only = bool(params['disk_only'])
        flags = 0
        if disk_only:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
            if params['disks']:
                disks = ET.SubElement(root, 'disks')
                for disk in params['disks']:
                    elem = ET.SubElement(disks, 'disk', {'name': disk['name'], 'snapshot': 'external'})
                    if disk.get('file'):
                        if not os.path.isabs(disk['file']):
                            raise ModuleFailure("disks: file '%s' of disk %s must be an absolute path"
                                                % (disk['file'], disk['name']), about=self.about)
                        ET.SubElement(elem, 'source', {'file': disk['file']})
        else:
            if params['disks']:
                raise ModuleFailure('disks (external snapshot files) needs disk_only: true', about=self.about)
            self._require_internal_capable()
        if params['quiesce']:
            if not disk_only:
                raise ModuleFailure('quiesce needs disk_only: true (libvirt quiesces only disk-only snapshots)',
                                    about=self.about)
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE
        if params['atomic']:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
        return ET.tostring(root, encoding='unicode'), flags

    def _require_internal_capable(self):
        """Internal snapshots live inside qcow2 images: refuse other disks before libvirt does."""
        root = dx.parse(self.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        writable = [disk for disk in root.findall('devices/disk')
                    if disk.get('device', 'disk') == 'disk' and dx.disk_source(disk) is not None]
        if not writable:
            raise ModuleFailure("domain '%s' has no disk to snapshot: internal snapshots are stored in its qcow2 "
                                "disks" % self.params['domain'], about="domain '%s'" % self.params['domain'])
        for disk in writable:
            driver = disk.find('driver')
            image_format = driver.get('type') if driver is not None else 'raw'
            if image_format not in INTERNAL_FORMATS:
                raise ModuleFailure(
                    "disk %s of domain '%s' (%s) is %s: internal snapshots need qcow2 disks. Set disk_only: true for "
                    "an external snapshot (a qcow2 overlay next to the image), or convert the disk to qcow2."
                    % (dx.target_dev(disk), self.params['domain'],
                       dx.disk_source(disk)[1], image_format), about="domain '%s'" % self.params['domain'])

    def _create(self, xml, flags):
        try:
            self.dom.snapshotCreateXML(xml, flags)
        except libvirt.libvirtError as exc:
            text = error_text(exc)
            if self.params['quiesce'] and ('agent' in text.lower()):
                raise LibvirtFailure("cannot quiesce domain '%s': %s. Quiescing needs the QEMU guest agent running in "
                                     "the guest and a guest agent channel in the domain." % (self.params['domain'], text),
                                     about=self.about)
            raise LibvirtFailure("cannot create snapshot '%s' of domain '%s': %s"
                                 % (self.params['name'], self.params['domain'], text), about=self.about)

    def _retain(self, seen):
        """Delete the oldest snapshots named with retain_prefix beyond the newest `retain` (this one counts)."""
        prefix = self.params['retain_prefix']
        if self.check_mode:
            items = [(item['creation_time'], item['name']) for item in seen]
            if by_name(seen, self.params['name']) is None:
                items.append((float('inf'), self.params['name']))
        else:
            items = [(item['creation_time'], item['name']) for item in read_all(self.dom)]
        ours = [name for _created, name in sorted(items) if name.startswith(prefix)]
        for name in ours[:-self.params['retain']]:
            self.result.perform('retain', self._delete, name, 0)
            self.removed.append(name)

    # --- absent --------------------------------------------------------------------------------

    def _absent(self, seen):
        """Delete the snapshot (or its descendants) if seen holds it."""
        params = self.params
        if by_name(seen, params['name']) is None:
            return
        children = descendants(seen, params['name'])
        if params['children_only']:
            if not children:
                return
            flags = libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY
            removed = children
        else:
            if children and not params['children']:
                raise ModuleFailure(
                    "snapshot '%s' of domain '%s' has child snapshots (%s): set children: true to delete them with "
                    "it, or children_only: true to delete only them" % (params['name'], params['domain'],
                                                                        ', '.join(children)), about=self.about)
            flags = libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN if children else 0
            removed = [params['name']] + children
        if params['metadata_only']:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY
        self.result.perform('delete', self._delete, params['name'], flags)
        self.removed.extend(removed)

    def _delete(self, name, flags):
        try:
            self.dom.snapshotLookupByName(name, 0).delete(flags)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure("cannot delete snapshot '%s' of domain '%s': %s"
                                 % (name, self.params['domain'], error_text(exc)),
                                 about="snapshot '%s' of domain '%s'" % (name, self.params['domain']))

    # --- reverted ------------------------------------------------------------------------------

    def _revert(self):
        """Revert to the snapshot: always a change (it discards whatever happened since)."""
        params = self.params
        if by_name(self.before, params['name']) is None:
            names = ', '.join(item['name'] for item in self.before) or 'none'
            raise ModuleFailure("domain '%s' has no snapshot '%s' to revert to (its snapshots: %s)"
                                % (params['domain'], params['name'], names), about=self.about)
        flags = {'running': libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING,
                 'paused': libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED}.get(params['after_revert'], 0)
        if params['force']:
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE
        self.result.perform('revert', self._revert_to, flags)

    def _revert_to(self, flags):
        try:
            self.dom.revertToSnapshot(self.dom.snapshotLookupByName(self.params['name'], 0), flags)
        except libvirt.libvirtError as exc:
            raise LibvirtFailure("cannot revert domain '%s' to snapshot '%s': %s"
                                 % (self.params['domain'], self.params['name'], error_text(exc)), about=self.about)

    # --- check mode ----------------------------------------------------------------------------

    def _predicted(self, snapshots):
        """The snapshot list a real run would leave (check mode)."""
        params = self.params
        removed = set(self.removed)
        after = [dict(item) for item in snapshots if item['name'] not in removed]
        if params['state'] == 'present' and by_name(snapshots, params['name']) is None:
            for item in after:
                item['current'] = False
            parent = next((item['name'] for item in snapshots if item['current']), None)
            after.append({'name': params['name'], 'description': params['description'], 'parent': parent,
                          'children': [], 'state': 'disk-snapshot' if params['disk_only'] and self.dom.isActive()
                          else self._domain_state(),
                          'creation_time': None, 'created': '(now)',
                          'memory': 'no' if params['disk_only'] or not self.dom.isActive() else 'internal',
                          'disks': [], 'current': True, 'disk_only': bool(params['disk_only'])})
        if params['state'] == 'reverted':
            for item in after:
                item['current'] = item['name'] == params['name']
        parents = dict((item['name'], item['parent']) for item in snapshots)
        for item in after:
            while item['parent'] in removed:  # libvirt re-parents the children of a deleted snapshot
                item['parent'] = parents.get(item['parent'])
        current = next((item['name'] for item in snapshots if item['current']), None)
        if current in removed:  # and makes the nearest surviving ancestor current
            while current in removed:
                current = parents.get(current)
            for item in after:
                item['current'] = item['name'] == current
        return after


def descendants(snapshots, name):
    """Names of every snapshot below name in the tree, sorted."""
    children = dict((item['name'], item['children']) for item in snapshots)
    found, todo = [], list(children.get(name, []))
    while todo:
        child = todo.pop()
        if child not in found:
            found.append(child)
            todo.extend(children.get(child, []))
    return sorted(found)


def snapshot_info(conn, params):
    dom = find_domain(conn, params['domain'], params['uri'])
    names = params.get('name')
    snapshots = [describe(snap, params['xml']) for snap in dom.listAllSnapshots(0)
                 if not names or snap.getName() in names]
    snapshots.sort(key=lambda item: (item['creation_time'], item['name']))
    return {
        'snapshots': snapshots,
        'current': next((item['name'] for item in snapshots if item['current']), None),
        'roots': [item['name'] for item in snapshots if item['parent'] is None],
        'missing': sorted(set(names or ()) - set(item['name'] for item in snapshots)),
    }
