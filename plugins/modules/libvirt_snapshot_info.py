#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_snapshot_info
short_description: List the snapshots of a libvirt domain as a tree
version_added: 0.1.0
description:
  - Returns every snapshot of a domain (or the ones named), oldest first, with its parent and children, the
    current snapshot, creation time, the domain state it recorded and what it holds (memory, disks).
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.info_module
  - virtops.hypervisor.attributes.platform_linux
  - virtops.hypervisor.libvirt
options:
  domain:
    description: Name of the domain.
    type: str
    required: true
  name:
    description: Only these snapshots. Names that do not exist are listed in RV(missing).
    type: list
    elements: str
  xml:
    description: Also return each snapshot's XML (without the domain definition it embeds).
    type: bool
    default: false
seealso:
  - module: virtops.hypervisor.libvirt_snapshot
"""

EXAMPLES = r"""
- name: Snapshots of web1
  virtops.hypervisor.libvirt_snapshot_info:
    domain: web1
  register: snaps

- name: The newest snapshot taken before an upgrade
  ansible.builtin.debug:
    msg: "{{ (snaps.snapshots | selectattr('name', 'match', 'pre-upgrade-') | last).name }}"
"""

RETURN = r"""
snapshots:
  description: The snapshots, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Snapshot name.
      type: str
      sample: pre-upgrade-1
    description:
      description: Description given when it was taken, or null.
      type: str
      sample: before the package upgrade
    parent:
      description: Name of the parent snapshot; null for a root.
      type: str
      sample: base
    children:
      description: Names of the direct children.
      type: list
      elements: str
      sample: []
    state:
      description: The domain state the snapshot recorded (V(running), V(shutoff), V(paused)...), or
        V(disk-snapshot) for disk-only snapshots.
      type: str
      sample: running
    creation_time:
      description: When it was taken, seconds since the epoch.
      type: int
      sample: 1795488000
    created:
      description: When it was taken, ISO 8601 in UTC.
      type: str
      sample: "2026-11-24T03:00:00Z"
    memory:
      description: Where the memory state is, V(internal), V(external) or V(no).
      type: str
      sample: internal
    disks:
      description: Disks and how each was snapshotted (V(internal), V(external) with its overlay file, V(no)).
      type: list
      elements: dict
      sample: [{name: vda, snapshot: internal, file: null}]
    current:
      description: Whether this is the domain's current snapshot.
      type: bool
      sample: true
    disk_only:
      description: Whether it is a disk-only (external) snapshot.
      type: bool
      sample: false
    xml:
      description: The snapshot XML without the embedded domain definition, passwords masked.
      type: str
      returned: when O(xml=true)
current:
  description: Name of the current snapshot, or null.
  returned: always
  type: str
  sample: pre-upgrade-1
roots:
  description: Names of the snapshots without a parent.
  returned: always
  type: list
  elements: str
  sample: [base]
missing:
  description: Names asked for in O(name) that the domain has no snapshot of.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION, run_libvirt_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._snapshot import snapshot_info


def main():
    module = AnsibleModule(
        argument_spec={
            'uri': dict(URI_OPTION),
            'domain': {'type': 'str', 'required': True},
            'name': {'type': 'list', 'elements': 'str'},
            'xml': {'type': 'bool', 'default': False},
        },
        supports_check_mode=True,
    )
    run_libvirt_module(module, lambda conn, result: snapshot_info(conn, module.params))


if __name__ == '__main__':
    main()
