#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_snapshot
short_description: Take, delete and revert to snapshots of libvirt domains, keeping the newest N
version_added: 0.1.0
description:
  - Snapshots are identified by name. O(state=present) takes one if the domain has no snapshot of that name;
    an existing snapshot is never changed, and if it was taken with other settings (description, disk-only,
    overlay files) the module says so in a warning and RV(differences).
  - Internal snapshots (the default) are stored inside the domain's qcow2 disks; for a running domain they
    include its memory, so reverting resumes the guest where it was. O(disk_only=true) takes an external,
    disk-only snapshot instead (new qcow2 overlay files, the only kind for raw disks).
  - O(state=reverted) discards every change made since the snapshot. It therefore happens only when asked,
    and always reports a change; check mode reports it without reverting.
  - O(retain) with O(retain_prefix) implements "snapshot before each change, keep the last N" in one call.
  - Diff mode shows the domain's snapshot tree before and after.
  - Runs that take or delete the same snapshot at the same time (two operators, overlapping jobs) both succeed.
    When libvirt refuses because another run changed the snapshot tree since it was read, the module reads the
    tree again and compares again (a few times at most), and the run that finds its work done reports no change.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.check_mode_full
  - virtops.hypervisor.attributes.diff_mode_full
  - virtops.hypervisor.attributes.platform_linux
  - virtops.hypervisor.libvirt
options:
  domain:
    description: Name of the domain.
    type: str
    required: true
  name:
    description: Name of the snapshot.
    type: str
    required: true
  state:
    description:
      - V(present) takes the snapshot unless one of that name exists.
      - V(absent) deletes it (see O(children), O(children_only), O(metadata_only)).
      - V(reverted) reverts the domain to it; the domain's state afterwards follows O(after_revert).
    type: str
    choices: [present, absent, reverted]
    default: present
  description:
    description: Description stored with a new snapshot.
    type: str
  disk_only:
    description:
      - Take an external, disk-only snapshot (each disk gets a qcow2 overlay; no memory state). Needed for
        raw disks, and for O(quiesce). Default V(false) (internal snapshot, with memory when running).
    type: bool
  disks:
    description:
      - With O(disk_only=true), where the overlay of each disk goes. Disks not listed get libvirt's default
        name next to their image.
    type: list
    elements: dict
    suboptions:
      name:
        description: Disk target in the domain, such as V(vda).
        type: str
        required: true
      file:
        description: Absolute path of the overlay file to create.
        type: path
  quiesce:
    description:
      - Freeze the guest's file systems during the snapshot through the QEMU guest agent (needs
        O(disk_only=true)). Fails clearly when no agent answers.
    type: bool
    default: false
  atomic:
    description: Ask libvirt to take the snapshot of all disks or none.
    type: bool
    default: false
  retain:
    description:
      - With O(state=present), keep only the newest O(retain) snapshots whose name starts with O(retain_prefix)
        (the one just taken counts) and delete the older ones, in the same call. Deleting a snapshot that has
        children re-parents them.
    type: int
  retain_prefix:
    description: Name prefix of the snapshots O(retain) applies to, such as V(pre-upgrade-).
    type: str
  children:
    description: With O(state=absent), also delete the snapshot's descendants. Without it a snapshot with
      children is not deleted.
    type: bool
    default: false
  children_only:
    description: With O(state=absent), delete only the snapshot's descendants and keep the snapshot.
    type: bool
    default: false
  metadata_only:
    description: With O(state=absent), delete only libvirt's record, not the data in the images.
    type: bool
    default: false
  after_revert:
    description:
      - With O(state=reverted), the domain's state afterwards. V(snapshot) restores the state the snapshot
        recorded (running for a live snapshot with memory, else shut off); V(running) and V(paused) force it.
    type: str
    choices: [snapshot, running, paused]
    default: snapshot
  force:
    description: With O(state=reverted), let libvirt revert even where it considers the result risky (see
      C(virsh snapshot-revert --force)).
    type: bool
    default: false
notes:
  - With libvirt older than 9.7, external (disk-only) snapshots can be taken but not reverted to or deleted,
    except with O(metadata_only=true); libvirt's error says so.
seealso:
  - module: virtops.hypervisor.libvirt_snapshot_info
  - module: virtops.hypervisor.libvirt_domain
"""

EXAMPLES = r"""
- name: Snapshot before an upgrade, keep the last three of them
  virtops.hypervisor.libvirt_snapshot:
    domain: web1
    name: "pre-upgrade-{{ now(utc=true, fmt='%Y%m%d%H%M%S') }}"
    description: before the package upgrade
    retain: 3
    retain_prefix: pre-upgrade-

- name: Go back to the snapshot, guest running
  virtops.hypervisor.libvirt_snapshot:
    domain: web1
    name: pre-upgrade-20261124030000
    state: reverted
    after_revert: running

- name: A disk-only snapshot with the overlay where we want it
  virtops.hypervisor.libvirt_snapshot:
    domain: db1
    name: before-migration
    disk_only: true
    disks:
      - name: vda
        file: /var/lib/libvirt/images/db1-before-migration.qcow2

- name: Delete a snapshot and everything taken after it
  virtops.hypervisor.libvirt_snapshot:
    domain: web1
    name: base
    state: absent
    children: true
"""

RETURN = r"""
snapshot:
  description: The snapshot after the call (as M(virtops.hypervisor.libvirt_snapshot_info) returns it); null when it
    does not exist.
  returned: always
  type: dict
  sample: {name: pre-upgrade-1, parent: null, children: [], state: running, memory: internal, current: true}
current:
  description: Name of the domain's current snapshot afterwards.
  returned: always
  type: str
  sample: pre-upgrade-1
domain_state:
  description: The domain's state afterwards (predicted in check mode).
  returned: always
  type: str
  sample: running
actions:
  description:
    - What was done, or would be in check mode, in order (V(create), V(delete), V(retain) once per snapshot it
      deleted, V(revert)). Empty when nothing changed.
    - An action is listed only once libvirt carried it out, so a failed call lists what was done before the
      failure; a snapshot libvirt refuses to take, delete or revert to is not listed (and C(changed) stays false).
  returned: always
  type: list
  elements: str
  sample: [create, retain]
removed:
  description: Snapshots deleted (O(state=absent) with its descendants, or by O(retain)).
  returned: always
  type: list
  elements: str
  sample: [pre-upgrade-20261120]
differences:
  description: How an existing snapshot differs from what was asked; it is left as it is. Empty when it does not
    differ, or does not exist.
  returned: always
  type: list
  elements: str
  sample: ["description is 'old text'"]
domain:
  description: The domain, as given in O(domain).
  returned: always
  type: str
  sample: web1
name:
  description: The snapshot, as given in O(name).
  returned: always
  type: str
  sample: pre-upgrade-1
failed_object:
  description: The snapshot or domain a failure is about, such as C(snapshot 'base' of domain 'web1').
  returned: on failure
  type: str
  sample: snapshot 'base' of domain 'web1'
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION, run_libvirt_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._snapshot import SnapshotManager


def main():
    module = AnsibleModule(
        argument_spec={
            'uri': dict(URI_OPTION),
            'domain': {'type': 'str', 'required': True},
            'name': {'type': 'str', 'required': True},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent', 'reverted']},
            'description': {'type': 'str'},
            'disk_only': {'type': 'bool'},
            'disks': {'type': 'list', 'elements': 'dict', 'options': {
                'name': {'type': 'str', 'required': True},
                'file': {'type': 'path'},
            }},
            'quiesce': {'type': 'bool', 'default': False},
            'atomic': {'type': 'bool', 'default': False},
            'retain': {'type': 'int'},
            'retain_prefix': {'type': 'str'},
            'children': {'type': 'bool', 'default': False},
            'children_only': {'type': 'bool', 'default': False},
            'metadata_only': {'type': 'bool', 'default': False},
            'after_revert': {'type': 'str', 'default': 'snapshot', 'choices': ['snapshot', 'running', 'paused']},
            'force': {'type': 'bool', 'default': False},
        },
        mutually_exclusive=[('children', 'children_only')],
        required_together=[('retain', 'retain_prefix')],
        supports_check_mode=True,
    )
    run_libvirt_module(module, lambda conn, result: SnapshotManager(conn, module.params, result).run())


if __name__ == '__main__':
    main()
