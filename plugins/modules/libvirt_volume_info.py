#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_volume_info
short_description: Read libvirt storage volumes and which domains use them
version_added: 1.1.0
description:
  - Returns the volumes of one pool, or of every active pool, with their format, sizes and backing file, the
    domains whose disks use them (active or inactive definitions) and the volumes that use them as backing file.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.info_module
  - virtops.hypervisor.attributes.platform_linux
  - virtops.hypervisor.libvirt
options:
  pool:
    description: Read this pool only (it must exist and be active). Default every active pool.
    type: str
  name:
    description: Return only the volumes of these names.
    type: list
    elements: str
seealso:
  - module: virtops.hypervisor.libvirt_volume
"""

EXAMPLES = r"""
- name: Volumes of the default pool
  virtops.hypervisor.libvirt_volume_info:
    pool: default
  register: found

- name: Volumes no domain uses
  ansible.builtin.debug:
    msg: "{{ found.volumes | rejectattr('domains') | map(attribute='name') }}"
"""

RETURN = r"""
volumes:
  description: The volumes, sorted by pool and name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the volume.
      type: str
    pool:
      description: Its pool.
      type: str
    path:
      description: Its path on the host.
      type: str
    key:
      description: libvirt's key of the volume.
      type: str
    type:
      description: libvirt's volume type (V(file), V(block), V(dir), V(network) ...).
      type: str
    format:
      description: Its format (V(qcow2), V(raw) ...).
      type: str
    capacity:
      description: Virtual size in bytes.
      type: int
    allocation:
      description: Bytes it takes in the pool.
      type: int
    backing:
      description: Its backing file (C(path), C(format)), or null.
      type: dict
    permissions:
      description: C(mode) (octal string), C(owner) and C(group) (numbers) as libvirt reports them.
      type: dict
    domains:
      description: Names of the domains with a disk on it.
      type: list
      elements: str
    overlays:
      description: Volumes (C(pool/name)) whose backing file it is.
      type: list
      elements: str
  sample: [{name: web1.qcow2, pool: default, path: /var/lib/libvirt/images/web1.qcow2,
            key: /var/lib/libvirt/images/web1.qcow2,
            type: file, format: qcow2, capacity: 21474836480, allocation: 200704,
            backing: {path: /var/lib/libvirt/images/base.qcow2, format: qcow2},
            permissions: {mode: '0600', owner: 0, group: 0}, domains: [web1], overlays: []}]
missing:
  description: Names given in O(name) that no pool read has.
  returned: always
  type: list
  elements: str
  sample: []
inactive_pools:
  description: Pools that were not read because they are not active (without O(pool)).
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION, run_libvirt_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_read import volume_info


def main():
    module = AnsibleModule(
        argument_spec={
            'uri': dict(URI_OPTION),
            'pool': {'type': 'str'},
            'name': {'type': 'list', 'elements': 'str'},
        },
        supports_check_mode=True,
    )
    run_libvirt_module(module, lambda conn, result: volume_info(module, conn))


if __name__ == '__main__':
    main()
