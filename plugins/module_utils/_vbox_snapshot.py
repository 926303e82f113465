# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""VirtualBox snapshots: read the tree once, take by name, delete, restore, and predict the tree in check mode.

Facts about VBoxManage 7.2 this relies on (checked on 7.2.22):
- Snapshot names are not unique: `snapshot take` happily takes a second `s1`, and `snapshot delete s1`
  then picks one of them. The manager therefore finds snapshots itself (by name or UUID) and always
  addresses VBoxManage by UUID.
- A new snapshot becomes the last child of the current snapshot and the new current snapshot.
- `snapshot delete` merges the snapshot's disk state into its child. VirtualBox refuses to delete a
  snapshot with more than one child ("... has 2 child snapshots, which is more than the one snapshot
  allowed for deletion") and the current snapshot when it has a child. A deleted snapshot's only child
  becomes the *last* child of its parent; deleting the current snapshot makes its parent current.
- `snapshot restore` makes the snapshot current and replaces each attached disk by a new, empty
  differencing image on top of the snapshot's; it needs the VM powered off, saved or aborted.
- `snapshot take --live` fails on a VM that is not running ("Cannot take a live snapshot of a virtual
  machine unless it is running."): live is only passed for a running VM (nothing to pause otherwise).
- Snapshots are records of a past state: an existing one is never changed by this module. A different
  description is reported (warning and ``differences``), as libvirt_snapshot does.
"""

from __future__ import annotations

import copy
import re

from ansible_collections.virtops.hypervisor.plugins.module_utils._vboxmanage import (
    VBoxFailure, VBoxManage, about, error_text, parent_of, read_tree, snapshot_entry, walk)

UUID_RE = re.compile(r'^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$')
# VM states in which VirtualBox restores a snapshot (the VM's process is not running).
RESTORABLE_STATES = ('poweroff', 'saved', 'aborted', 'aborted-saved', 'teleported')
NEW = '(new)'  # the key and the shown UUID of the snapshot check mode predicts


# --- the tree, pure functions ------------------------------------------------------------------

def describe(tree, uuid):
    """A snapshot as the module returns it (a predicted new one without UUID)."""
    return dict(snapshot_entry(tree, uuid), uuid=None if uuid == NEW else uuid)


def snapshots(tree):
    """All snapshots in tree order."""
    return [describe(tree, uuid) for uuid, _depth in walk(tree)]


def find(tree, name):
    """The UUIDs of the snapshots `name` means: the one with that UUID, or all of that name."""
    match = UUID_RE.match(name)
    if match:
        wanted = match.group(1).lower()
        found = [uuid for uuid in tree['info'] if uuid.lower() == wanted]
        if found:
            return found
    return [uuid for uuid, _depth in walk(tree) if tree['info'][uuid]['name'] == name]


def predict_take(tree, name, description):
    """The tree after `snapshot take`: the new snapshot is the last child of the current one, and current."""
    after = copy.deepcopy(tree)
    after['info'][NEW] = {'name': name, 'description': description or ''}
    after['children'][NEW] = []
    if after['current'] is None:
        after['roots'].append(NEW)
    else:
        after['children'][after['current']].append(NEW)
    after['current'] = NEW
    return after


def delete_refusal(tree, uuid):
    """Why VirtualBox would refuse to delete the snapshot, or None."""
    children = tree['children'][uuid]
    names = ', '.join("'%s'" % tree['info'][child]['name'] for child in children)
    if len(children) > 1:
        return ('it has %d child snapshots (%s) and VirtualBox deletes (merges) a snapshot only when it has at '
                'most one: delete the children first' % (len(children), names))
    if children and tree['current'] == uuid:
        return ('it is the current snapshot and has a child snapshot (%s): VirtualBox cannot merge it then; '
                'restore another snapshot or delete the child first' % names)
    return None


def predict_delete(tree, uuid):
    """The tree after `snapshot delete`: the only child moves to the end of the parent's children (or
    becomes the root), and a deleted current snapshot hands `current` to its parent."""
    after = copy.deepcopy(tree)
    parent = parent_of(after, uuid)
    siblings = after['children'][parent] if parent else after['roots']
    siblings.remove(uuid)
    siblings.extend(after['children'].pop(uuid))
    del after['info'][uuid]
    if after['current'] == uuid:
        after['current'] = parent
    return after


def predict_restore(tree, uuid):
    after = copy.deepcopy(tree)
    after['current'] = uuid
    return after


def tree_text(tree, vm_state):
    """The snapshot tree as lines, for diffs: name (uuid) "description" [current], indented by depth."""
    lines = ['# VM state: %s' % vm_state]
    for uuid, depth in walk(tree):
        info = tree['info'][uuid]
        description = info['description'].replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')
        shown = ' "%s"' % description if description else ''
        marker = ' [current]' if tree['current'] == uuid else ''
        lines.append('%s%s (%s)%s%s' % ('  ' * depth, info['name'], uuid, shown, marker))
    return '\n'.join(lines) + '\n'


# --- the manager -------------------------------------------------------------------------------

class VBoxSnapshotManager(object):
    """Bring one snapshot of one VM to the asked state, recording what it does in a Result (_contract.py)."""

    def __init__(self, module, result):
        self.params = module.params
        self.result = result
        self.check_mode = result.check_mode
        result.set(vm=self.params['vm'], name=self.params['name'])
        self.vbox = VBoxManage(module)
        self.vm_uuid = None
        self.vm_state = None
        self.before = None
        self.uuid = None

    def run(self):
        about("snapshot '%s' of VM '%s'" % (self.params['name'], self.params['vm']), self._run)

    def _run(self):
        params = self.params
        self._check_request()
        values = self._read()
        self.vm_uuid = values['UUID']
        self.vm_state = values.get('VMState', 'unknown')
        self.before = read_tree(values)
        matches = find(self.before, params['name'])
        if len(matches) > 1:
            raise VBoxFailure(
                "VM '%s' has %d snapshots named '%s' (VirtualBox allows duplicate names): give the UUID of the one "
                "you mean as name (%s)" % (params['vm'], len(matches), params['name'], '; '.join(
                    '%s, parent %s' % (uuid, describe(self.before, uuid)['parent'] or 'none') for uuid in matches)))
        self.uuid = matches[0] if matches else None
        state = params['state']
        if state == 'present':
            after, vm_state_after = self._present()
        elif state == 'absent':
            after, vm_state_after = self._absent()
        else:
            after, vm_state_after = self._restore()
        if self.result.changed and not self.check_mode:
            values = self._read()
            after, vm_state_after = read_tree(values), values.get('VMState', 'unknown')
        self.result.set(snapshot=describe(after, self.uuid) if self.uuid in after['info'] else None,
                        snapshots=snapshots(after),
                        current=after['info'][after['current']]['name'] if after['current'] else None,
                        vm_state=vm_state_after)
        self.result.add_diff(tree_text(self.before, self.vm_state), tree_text(after, vm_state_after),
                             params['vm'], params['vm'])

    def _check_request(self):
        params = self.params
        if not params['name'].strip():
            raise VBoxFailure('name must not be empty')
        for option in ('description', 'live'):
            if params['state'] != 'present' and params[option] not in (None, False):
                raise VBoxFailure('%s applies to state present only (state is %s)' % (option, params['state']))

    def _read(self):
        values = self.vbox.showvminfo(self.params['vm'])
        if values is None:
            raise VBoxFailure("VM '%s' is not registered with VirtualBox (see VBoxManage list vms): nothing was "
                              "changed" % self.params['vm'])
        return values

    def _snapshot_command(self, args, what):
        """Run `VBoxManage snapshot <vm uuid> <args>`; a failure names the command and VirtualBox's message."""
        rc, out, err = self.vbox.run(['snapshot', self.vm_uuid] + args, check=False)
        if rc != 0:
            raise VBoxFailure("cannot %s of VM '%s': VBoxManage snapshot %s %s failed: %s"
                              % (what, self.params['vm'], self.params['vm'], ' '.join(args), error_text(err)))
        return out

    # --- present -------------------------------------------------------------------------------

    def _present(self):
        params = self.params
        if self.uuid is not None:
            self._report_differences()
            return self.before, self.vm_state
        if UUID_RE.match(params['name']):
            raise VBoxFailure("VM '%s' has no snapshot with UUID %s, and a new snapshot is not given a name that "
                              "looks like a UUID (VBoxManage would take it for one)" % (params['vm'], params['name']))
        args = ['take', params['name']]
        if params['description']:
            args += ['--description', params['description']]
        if params['live'] and self.vm_state == 'running':
            args.append('--live')
        out = self.result.perform('take', self._snapshot_command, args, "take snapshot '%s'" % params['name'])
        if self.check_mode:
            self.uuid = NEW
            return predict_take(self.before, params['name'], params['description']), self.vm_state
        match = re.search(r'Snapshot taken\. UUID: ([0-9a-fA-F-]{36})', out)
        if match is None:
            raise VBoxFailure("VBoxManage snapshot %s take %s printed no UUID: %s"
                              % (params['vm'], params['name'], out.strip()))
        self.uuid = match.group(1)
        return None, None

    def _report_differences(self):
        params = self.params
        existing = self.before['info'][self.uuid]
        found = []
        if params['description'] is not None and existing['description'] != params['description']:
            found.append("description is '%s'" % existing['description'])
        for line in found:
            self.result.differ(line)
        if found:
            self.result.warn(
                "snapshot '%s' of VM '%s' exists and differs from what was asked (%s); it was left as it is: a "
                "snapshot records a past state. Delete it (state: absent) and take it again to change it."
                % (existing['name'], params['vm'], '; '.join(found)))

    # --- absent --------------------------------------------------------------------------------

    def _absent(self):
        if self.uuid is None:
            return self.before, self.vm_state
        name = self.before['info'][self.uuid]['name']
        refusal = delete_refusal(self.before, self.uuid)
        if refusal:
            raise VBoxFailure("cannot delete snapshot '%s' of VM '%s': %s" % (name, self.params['vm'], refusal))
        self.result.perform('delete', self._snapshot_command, ['delete', self.uuid], "delete snapshot '%s'" % name)
        if self.check_mode:
            return predict_delete(self.before, self.uuid), self.vm_state
        return None, None

    # --- restored ------------------------------------------------------------------------------

    def _restore(self):
        params = self.params
        if self.uuid is None:
            names = ', '.join("'%s'" % item['name'] for item in snapshots(self.before)) or 'none'
            raise VBoxFailure("VM '%s' has no snapshot '%s' to restore (its snapshots: %s)"
                              % (params['vm'], params['name'], names))
        name = self.before['info'][self.uuid]['name']
        if self.vm_state not in RESTORABLE_STATES:
            raise VBoxFailure(
                "cannot restore snapshot '%s' of VM '%s': the VM is %s, and VirtualBox restores snapshots only of a "
                "VM that is powered off, saved or aborted. Power it off or save its state first (VBoxManage controlvm "
                "%s poweroff, or savestate), then restore." % (name, params['vm'], self.vm_state, params['vm']))
        self.result.perform('restore', self._snapshot_command, ['restore', self.uuid], "restore snapshot '%s'" % name)
        if self.check_mode:
            return predict_restore(self.before, self.uuid), self._restored_state()
        return None, None

    def _restored_state(self):
        """The VM state a restore leaves: saved when the snapshot holds a saved execution state."""
        rc, out, _err = self.vbox.run(['snapshot', self.vm_uuid, 'showvminfo', self.uuid], check=False)
        if rc == 0 and re.search(r'^State:\s+saved', out, re.MULTILINE):
            return 'saved'
        return 'poweroff'
