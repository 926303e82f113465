#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vbox_snapshot
short_description: Take, delete and restore snapshots of VirtualBox VMs
version_added: 0.1.0
description:
  - Snapshots are identified by name, or by UUID (VirtualBox allows several snapshots of the same name, and
    the module then fails asking for the UUID of the one meant). O(state=present) takes one if the VM has no
    snapshot of that name; an existing snapshot is never changed, and if it has another description the module
    says so in a warning and RV(differences).
  - O(state=absent) deletes the snapshot; VirtualBox merges its disk state into its child. VirtualBox cannot
    delete a snapshot with more than one child, nor the current snapshot when it has a child; the module
    refuses both before anything is changed, naming the children.
  - O(state=restored) brings the VM back to the snapshot, discarding the current state (disks and, for a saved
    VM, the saved memory). It therefore happens whenever it is asked and always reports a change; check mode
    reports it without restoring. The VM must be powered off, saved or aborted.
  - Diff mode shows the VM's snapshot tree before and after; check mode predicts it.
  - Works through C(VBoxManage), run as the user that owns the VMs (VirtualBox VMs are per user).
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.check_mode_full
  - virtops.hypervisor.attributes.diff_mode_full
  - virtops.hypervisor.attributes.platform_linux
options:
  vm:
    description: Name or UUID of the VM, as VBoxManage knows it.
    type: str
    required: true
  name:
    description:
      - Name of the snapshot, or the UUID of an existing snapshot (with or without braces).
      - A new snapshot cannot be given a name that looks like a UUID.
    type: str
    required: true
  state:
    description:
      - V(present) takes the snapshot unless one of that name exists.
      - V(absent) deletes it (merging its disk state into its child).
      - V(restored) restores the VM to it (the VM must not be running).
    type: str
    choices: [present, absent, restored]
    default: present
  description:
    description:
      - With O(state=present), the description stored with a new snapshot. For an existing snapshot a different
        description is reported, not changed. Other states refuse it.
    type: str
  live:
    description:
      - With O(state=present), take the snapshot of a running VM without pausing it (C(VBoxManage snapshot take
        --live)). The guest keeps running while its memory is saved, so the snapshot is slower to take and the
        memory may change meanwhile.
      - Applies to running VMs only; a VM that is not running is snapshotted as usual (there is nothing to
        pause, and VirtualBox refuses C(--live) for it). Other states than O(state=present) refuse it.
    type: bool
    default: false
notes:
  - Needs C(VBoxManage) on the target (the C(virtops.hypervisor.virtualbox_host) role installs VirtualBox).
  - VirtualBox's snapshots keep no memory of who asked for them; a VM restored and then changed again is not
    "at" the snapshot any more, which is why O(state=restored) always restores.
seealso:
  - module: virtops.hypervisor.libvirt_snapshot
  - name: VBoxManage snapshot
    description: The VirtualBox manual's reference of the command this module drives.
    link: https://www.virtualbox.org/manual/topics/vboxmanage.html#vboxmanage-snapshot
"""

EXAMPLES = r"""
- name: Snapshot a running VM without pausing it
  virtops.hypervisor.vbox_snapshot:
    vm: build-agent
    name: before-upgrade
    description: before the toolchain upgrade
    live: true

- name: Go back to it (the VM must be powered off or saved)
  virtops.hypervisor.vbox_snapshot:
    vm: build-agent
    name: before-upgrade
    state: restored

- name: Delete it; its disk state is merged into its child
  virtops.hypervisor.vbox_snapshot:
    vm: build-agent
    name: before-upgrade
    state: absent

- name: Delete one of two snapshots called "base", by UUID
  virtops.hypervisor.vbox_snapshot:
    vm: build-agent
    name: 9891aa7b-f959-4c15-b643-5083fde294d3
    state: absent
"""

RETURN = r"""
snapshot:
  description: The snapshot after the call; null when it does not exist. In check mode a snapshot that would be
    taken has C(uuid) null.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the snapshot.
      type: str
    uuid:
      description: UUID of the snapshot.
      type: str
    description:
      description: Its description (empty when it has none).
      type: str
    parent:
      description: Name of its parent snapshot, null for the root.
      type: str
    children:
      description: Names of its child snapshots, in VirtualBox's order.
      type: list
      elements: str
    current:
      description: Whether it is the VM's current snapshot.
      type: bool
  sample: {name: before-upgrade, uuid: 9891aa7b-f959-4c15-b643-5083fde294d3, description: '', parent: null,
           children: [], current: true}
snapshots:
  description: All snapshots of the VM afterwards (predicted in check mode), in tree order (a parent before its
    children), each as in RV(snapshot).
  returned: always
  type: list
  elements: dict
  sample: [{name: base, uuid: 9891aa7b-f959-4c15-b643-5083fde294d3, description: '', parent: null,
            children: [before-upgrade], current: false}]
current:
  description: Name of the VM's current snapshot afterwards; null when it has none.
  returned: always
  type: str
  sample: before-upgrade
vm_state:
  description: The VM's state afterwards as VBoxManage names it (predicted in check mode), such as V(poweroff),
    V(saved), V(running).
  returned: always
  type: str
  sample: poweroff
actions:
  description: What was done, or would be in check mode (V(take), V(delete), V(restore)); empty when nothing
    changed. A failed call lists what had been done before it failed.
  returned: always
  type: list
  elements: str
  sample: [take]
differences:
  description: How an existing snapshot differs from what was asked; it is left as it is. Empty otherwise.
  returned: always
  type: list
  elements: str
  sample: ["description is 'old text'"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._vbox_snapshot import VBoxSnapshotManager


def main():
    module = AnsibleModule(
        argument_spec={
            'vm': {'type': 'str', 'required': True},
            'name': {'type': 'str', 'required': True},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent', 'restored']},
            'description': {'type': 'str'},
            'live': {'type': 'bool', 'default': False},
        },
        supports_check_mode=True,
    )
    run_module(module, lambda result: VBoxSnapshotManager(module, result).run())


if __name__ == '__main__':
    main()
