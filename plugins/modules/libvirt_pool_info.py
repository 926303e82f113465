#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_pool_info
short_description: List libvirt storage pools with their state, sizes and volumes
version_added: 1.1.0
description:
  - Reads every storage pool (or the ones named) over one connection, with the figures libvirt keeps for it
    (capacity, allocation and available space in bytes, as of the pool's last refresh) and its volumes.
  - Settings come from the pool's current definition (for a running pool, the one it runs on).
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.info_module
  - virtops.hypervisor.attributes.platform_linux
  - virtops.hypervisor.libvirt
options:
  name:
    description: Only these pools. Names that do not exist are listed in RV(missing).
    type: list
    elements: str
  details:
    description: Return each volume as a dict (name, path, format, capacity, allocation) instead of its name.
    type: bool
    default: false
seealso:
  - module: virtops.hypervisor.libvirt_pool
"""

EXAMPLES = r"""
- name: Every pool on the host
  virtops.hypervisor.libvirt_pool_info:
  register: storage

- name: Free space of the running pools
  ansible.builtin.debug:
    msg: "{{ storage.pools | selectattr('state', 'eq', 'active') | items2dict(key_name='name', value_name='available') }}"

- name: The volumes of one pool with their sizes
  virtops.hypervisor.libvirt_pool_info:
    name: [images]
    details: true
  register: images
"""

RETURN = r"""
pools:
  description: The pools, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Pool name.
      type: str
      sample: images
    uuid:
      description: Pool UUID.
      type: str
      sample: 8a2e3d7c-5f0b-4bd4-9d0e-1f3c9a2b7e61
    type:
      description: Pool type.
      type: str
      sample: dir
    state:
      description: V(active) (running), V(inactive), V(building), V(degraded) or V(inaccessible).
      type: str
      sample: active
    autostart:
      description: Whether the pool starts with libvirtd.
      type: bool
      sample: true
    persistent:
      description: Whether the pool has a definition (false for transient pools).
      type: bool
      sample: true
    target:
      description: Target path (directory, mount point or C(/dev/<volume group>)); null when the pool has none.
      type: str
      sample: /var/lib/libvirt/images
    permissions:
      description: The target's permissions libvirt reports (mode, owner, group); empty when it reports none.
      type: dict
      sample: {mode: '0711', owner: '0', group: '0'}
    source:
      description:
        - The source (devices, host, dir, format, name as they apply; C(other) holds any other source element
          as XML). The format is libvirt's default when the definition gives none.
      type: dict
      sample: {devices: [/dev/sdb], name: vg_guests, format: lvm2}
    capacity:
      description: Size in bytes (0 when the pool does not run).
      type: int
      sample: 107374182400
    allocation:
      description: Bytes allocated (0 when the pool does not run).
      type: int
      sample: 2147483648
    available:
      description: Bytes free (0 when the pool does not run).
      type: int
      sample: 105226698752
    volumes:
      description:
        - Names of the volumes, sorted; with O(details=true) dicts with name, path, format, capacity and allocation
          (bytes). Empty when the pool does not run (libvirt lists volumes of running pools only).
      type: list
      elements: raw
      sample: [web1.qcow2, db1.qcow2]
missing:
  description: Names given in O(name) that no pool has.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION, run_libvirt_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._pool import pool_facts


def main():
    module = AnsibleModule(
        argument_spec={
            'uri': dict(URI_OPTION),
            'name': {'type': 'list', 'elements': 'str'},
            'details': {'type': 'bool', 'default': False},
        },
        supports_check_mode=True,
    )
    run_libvirt_module(module, lambda conn, result: pool_facts(conn, module.params))


if __name__ == '__main__':
    main()
