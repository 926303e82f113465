#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vbox_vm_info
short_description: Read VirtualBox VMs - power state, settings, NICs, storage with disks, snapshots
version_added: 0.1.0
description:
  - Reads VirtualBox VMs with C(VBoxManage showvminfo --machinereadable) (one call per VM, plus one
    C(list ostypes) and one C(list --long hdds) for all of them) and returns them parsed.
  - Names that are not registered VMs are listed in RV(missing); that is not an error.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.info_module
  - virtops.hypervisor.attributes.platform_linux
options:
  name:
    description: Names (or UUIDs) of the VMs to read. Default every VM registered for the user the module runs as.
    type: list
    elements: str
notes:
  - Needs VirtualBox (C(VBoxManage)) on the target.
seealso:
  - module: virtops.hypervisor.vbox_vm
  - module: virtops.hypervisor.vbox_snapshot
"""

EXAMPLES = r"""
- name: Read all VMs
  virtops.hypervisor.vbox_vm_info:
  register: vbox

- name: Names of the running ones
  ansible.builtin.debug:
    msg: "{{ vbox.vms | selectattr('state', 'eq', 'running') | map(attribute='name') }}"

- name: Read two VMs
  virtops.hypervisor.vbox_vm_info:
    name: [web1, web2]
  register: web

- name: Fail when one is missing
  ansible.builtin.assert:
    that: web.missing == []
"""

RETURN = r"""
vms:
  description: The VMs, in the order asked (or VirtualBox's order).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the VM.
      type: str
      sample: web1
    uuid:
      description: UUID of the VM.
      type: str
      sample: 0e80e6f7-4cd3-4f1f-93c1-63f283320663
    state:
      description: Power state as VirtualBox reports it (V(poweroff), V(running), V(paused), V(saved), V(aborted), ...).
      type: str
      sample: poweroff
    ostype:
      description: Guest OS type ID (as O(virtops.hypervisor.vbox_vm#module:ostype) takes it).
      type: str
      sample: Debian_64
    ostype_description:
      description: Guest OS type as VirtualBox describes it.
      type: str
      sample: Debian (64-bit)
    memory:
      description: Memory in MiB.
      type: int
      sample: 2048
    cpus:
      description: Virtual CPUs.
      type: int
      sample: 2
    firmware:
      description: V(bios), V(efi), V(efi32) or V(efi64).
      type: str
      sample: efi
    description:
      description: Description of the VM (empty when none).
      type: str
      sample: web server
    nics:
      description: The 8 network adapters in order (type V(none) when absent), with adapter or network, model
        (nictype), mac and cable_connected.
      type: list
      elements: dict
      sample: [{type: nat, model: 82540EM, mac: 08002728794D, cable_connected: true}, {type: none}]
    storage_controllers:
      description: Controllers with name, type (bus), chipset, port_count, bootable and disks (port, device,
        type, medium path or V(emptydrive), uuid, and for hard disks format, virtual_size in bytes and base, the
        image a differencing image of the VM's snapshots is based on).
      type: list
      elements: dict
      sample: [{name: SATA, type: sata, chipset: IntelAhci, port_count: 4, bootable: true, disks: [
               {port: 0, device: 0, type: hdd, medium: /srv/vbox/web1.vdi, format: VDI, virtual_size: 10737418240,
                base: /srv/vbox/web1.vdi, uuid: a08eaf33-f76e-45d9-9d4c-44b9eb444b4f}]}]
    boot_order:
      description: The 4 boot positions.
      type: list
      elements: str
      sample: [disk, dvd, none, none]
    snapshots:
      description: Snapshots in tree order, each with name, uuid, description, parent, children and current.
      type: list
      elements: dict
      sample: [{name: base, uuid: 8776b7de-031e-4a8a-9f8b-351207149f64, description: '', parent: null, children: [],
               current: true}]
    current_snapshot:
      description: Name of the current snapshot, null when none.
      type: str
      sample: base
    config_file:
      description: Path of the VM's settings file (C(.vbox)).
      type: str
      sample: /root/VirtualBox VMs/web1/web1.vbox
    snapshot_folder:
      description: Folder of the VM's snapshot and saved-state files.
      type: str
      sample: /root/VirtualBox VMs/web1/Snapshots
missing:
  description: Names asked for that are not registered VMs.
  returned: always
  type: list
  elements: str
  sample: [web3]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._vbox_vm import read_vms


def main():
    module = AnsibleModule(
        argument_spec={'name': {'type': 'list', 'elements': 'str'}},
        supports_check_mode=True,
    )
    run_module(module, lambda result: read_vms(module, module.params['name']))


if __name__ == '__main__':
    main()
