#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: vbox_vm
short_description: Create, configure, import, export, clone, start, stop and remove VirtualBox VMs
version_added: 0.1.0
description:
  - Manages one VirtualBox VM with C(VBoxManage). The VM is read once (C(showvminfo --machinereadable)), the
    settings the task gives are compared with it, and only differences are applied, with one C(modifyvm) call
    for all of them plus C(storagectl) and C(storageattach) for storage. Settings the task does not give are
    left as they are.
  - A VM that does not exist is created (C(createvm)), imported from an OVF/OVA appliance (O(import_from)) or
    cloned from another VM (O(clone_from)); the settings then apply on top. An existing VM is never
    re-imported or re-cloned.
  - Settings change only while the VM is powered off; asking for other settings of a running VM fails before
    anything changes, unless O(state) powers it off first (V(poweroff), V(acpi_shutdown)).
  - Starting a VM needs the VirtualBox kernel driver; when C(/dev/vboxdrv) is missing the module fails before
    anything changes (settings included) and says how to install it.
  - Diff mode shows the managed settings and the power state before and after, as the real run will leave
    them; check mode reports exactly what the real run changes.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.check_mode_full
  - virtops.hypervisor.attributes.diff_mode_full
  - virtops.hypervisor.attributes.platform_linux
options:
  name:
    description: Name of the VM (or its UUID, for an existing VM).
    type: str
    required: true
  state:
    description:
      - V(present) registers the VM with its settings and leaves its power state alone (a new VM is powered off).
      - V(running) also starts it headless (C(startvm --type headless)), or resumes it when paused.
      - V(poweroff) powers it off at once (like pulling the plug), or discards its saved state.
      - V(acpi_shutdown) presses the ACPI power button and waits up to O(timeout) seconds for the guest to
        power off; then it is powered off when O(force=true), else the task fails. A saved state is discarded.
      - V(paused) starts it (if needed) and pauses it.
      - V(saved) saves a running or paused VM's state to disk and stops it (C(controlvm savestate)).
      - V(absent) unregisters the VM (powering it off first); with O(delete_files) also deletes its files.
    type: str
    choices: [present, absent, running, poweroff, acpi_shutdown, paused, saved]
    default: present
  ostype:
    description:
      - Guest OS type ID, as C(VBoxManage list ostypes) prints it, such as V(Debian_64) or V(Windows11_64).
        Case does not matter; an unknown ID fails naming similar ones.
    type: str
  memory:
    description: Memory in MiB.
    type: int
  cpus:
    description: Number of virtual CPUs.
    type: int
  firmware:
    description: Firmware of the VM.
    type: str
    choices: [bios, efi, efi32, efi64]
  description:
    description: Free-text description of the VM (may span lines).
    type: str
  nics:
    description:
      - The VM's network adapters, first to eighth. The list is complete - adapters beyond it are removed
        (type V(none)) - but within an adapter only the keys given are compared (an unset O(nics[].mac) keeps
        the MAC address VirtualBox chose).
      - Unset leaves all adapters as they are; an empty list removes them all.
    type: list
    elements: dict
    suboptions:
      type:
        description:
          - What the adapter is attached to. V(null) keeps the adapter but attaches it to nothing; V(none)
            removes it.
        type: str
        required: true
        choices: [nat, bridged, hostonly, intnet, natnetwork, 'null', none]
      adapter:
        description: Host interface, required with O(nics[].type=bridged) (such as V(eth0)) and
          O(nics[].type=hostonly) (such as V(vboxnet0)).
        type: str
      network:
        description: Network name, required with O(nics[].type=intnet) and O(nics[].type=natnetwork).
        type: str
      model:
        description: Emulated adapter (C(--nictype)).
        type: str
        choices: [Am79C970A, Am79C973, Am79C960, 82540EM, 82543GC, 82545EM, virtio]
      mac:
        description: MAC address, 12 hex digits with or without colons.
        type: str
      cable_connected:
        description: Whether the virtual cable is plugged in.
        type: bool
  storage_controllers:
    description:
      - Storage controllers and what is attached to them. Controllers that are not listed, and slots of a listed
        controller that are not listed in its O(storage_controllers[].disks), are left as they are.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the controller, such as V(SATA).
        type: str
        required: true
      type:
        description:
          - Bus of the controller; required to create one. V(pcie) (alias V(nvme)) is an NVMe controller,
            V(virtio) a virtio-scsi one. An existing controller's bus cannot change.
        type: str
        choices: [ide, sata, scsi, sas, floppy, usb, pcie, nvme, virtio]
      port_count:
        description: Number of ports (SATA, SAS, NVMe, virtio).
        type: int
      bootable:
        description: Whether the firmware may boot from this controller.
        type: bool
      disks:
        description: Attachments, each in a port and device of this controller.
        type: list
        elements: dict
        suboptions:
          port:
            description: Port number, from 0.
            type: int
            required: true
          device:
            description: Device number on the port (IDE has 0 and 1; others 0).
            type: int
            default: 0
          type:
            description: Kind of drive.
            type: str
            choices: [hdd, dvddrive, fdd]
            default: hdd
          medium:
            description:
              - Absolute path of the image. For V(hdd) it is required and must exist (VirtualBox registers it);
                a missing file fails naming the item. For V(dvddrive) and V(fdd) unset means an empty drive.
              - A VM with snapshots works on differencing images; the image they are based on counts as attached.
            type: path
          state:
            description: V(absent) empties the slot (the image stays registered and on disk).
            type: str
            choices: [present, absent]
            default: present
  boot_order:
    description: Boot devices, up to 4; positions not given are set to V(none).
    type: list
    elements: str
    choices: [disk, dvd, net, floppy, none]
  base_folder:
    description: Folder under which a new VM's folder is made (C(--basefolder)); default VirtualBox's
      C(~/VirtualBox VMs) of the user the module runs as.
    type: path
  delete_files:
    description:
      - With O(state=absent), also delete the VM's files - settings, logs, saved states, snapshots and the hard
        disk images only this VM uses. Images another VM also uses, directly or as the base of a linked clone,
        are kept and listed in RV(kept_media). DVD and floppy images are kept.
    type: bool
    default: false
  timeout:
    description: Seconds O(state=acpi_shutdown) waits for the guest to power off.
    type: int
    default: 120
  force:
    description: With O(state=acpi_shutdown), power the VM off when the guest did not within O(timeout) instead
      of failing.
    type: bool
    default: false
  import_from:
    description:
      - OVF or OVA appliance to import the VM from when it does not exist (C(VBoxManage import --vsys 0
        --vmname <name>)), with O(ostype), O(memory), O(cpus), O(description) and O(base_folder) as overrides;
        the other settings apply after the import. Ignored when the VM exists.
    type: path
  export_to:
    description:
      - Export the VM to this appliance file (ending with C(.ova), or C(.ovf) which writes the disk images next
        to it) after the other changes, when the file does not exist or O(force_export=true). The export goes to
        a temporary name in the same directory and is renamed into place, so a failed export leaves no partial
        file. A running or paused VM cannot be exported.
    type: path
  export_format:
    description: OVF version of the export; default VBoxManage's (OVF 1.0).
    type: str
    choices: [ovf-1.0, ovf-2.0]
  force_export:
    description: Export even when O(export_to) exists (replacing it; reported as a change every time).
    type: bool
    default: false
  clone_from:
    description: VM to clone the VM from when it does not exist (C(VBoxManage clonevm)). Ignored when the VM
      exists.
    type: str
  clone_mode:
    description: V(full) copies the disks; V(linked) makes differencing disks on top of the source's snapshot
      O(clone_snapshot) (needed).
    type: str
    choices: [full, linked]
    default: full
  clone_snapshot:
    description: Snapshot of O(clone_from) to clone from (the VM's state at that snapshot).
    type: str
notes:
  - Needs VirtualBox (C(VBoxManage)) on the target; the M(virtops.hypervisor.vbox_vm_info) module reads VMs,
    M(virtops.hypervisor.vbox_snapshot) manages snapshots. VMs belong to the user the module runs as.
  - Settings are applied with several VBoxManage calls; if one fails, those before it stay applied (a VM created
    by the same task is removed again).
seealso:
  - module: virtops.hypervisor.vbox_vm_info
  - module: virtops.hypervisor.vbox_snapshot
"""

EXAMPLES = r"""
- name: A Debian VM with a disk, a DVD drive and two NICs
  virtops.hypervisor.vbox_vm:
    name: web1
    ostype: Debian_64
    memory: 2048
    cpus: 2
    firmware: efi
    nics:
      - type: nat
      - type: bridged
        adapter: eth0
        model: virtio
    storage_controllers:
      - name: SATA
        type: sata
        port_count: 4
        disks:
          - port: 0
            medium: /srv/vbox/web1.vdi
          - port: 1
            type: dvddrive
            medium: /srv/iso/debian-12.iso
    boot_order: [dvd, disk]

- name: Start it headless
  virtops.hypervisor.vbox_vm:
    name: web1
    state: running

- name: Shut it down gracefully, pull the plug after two minutes
  virtops.hypervisor.vbox_vm:
    name: web1
    state: acpi_shutdown
    timeout: 120
    force: true

- name: Import an appliance under another name, with more memory
  virtops.hypervisor.vbox_vm:
    name: web2
    import_from: /srv/appliances/web.ova
    memory: 4096

- name: A linked clone of a snapshot
  virtops.hypervisor.vbox_vm:
    name: web1-test
    clone_from: web1
    clone_mode: linked
    clone_snapshot: base

- name: Export to an OVA (only when the file does not exist yet)
  virtops.hypervisor.vbox_vm:
    name: web1
    state: poweroff
    export_to: /srv/appliances/web1.ova
    export_format: ovf-2.0

- name: Remove a VM with its files
  virtops.hypervisor.vbox_vm:
    name: web1-test
    state: absent
    delete_files: true
"""

RETURN = r"""
vm:
  description: The VM afterwards, as M(virtops.hypervisor.vbox_vm_info) returns it (in check mode, as it is
    before the change); null when it does not exist.
  returned: always
  type: dict
  sample: {name: web1, state: poweroff, ostype: Debian_64, memory: 2048, cpus: 2, firmware: efi}
state:
  description: Power state afterwards (predicted in check mode), or V(absent).
  returned: always
  type: str
  sample: poweroff
differences:
  description: The managed settings that differed, as C(setting - before -> after).
  returned: always
  type: list
  elements: str
  sample: ["memory: 1024 -> 2048", "nics[1].type: none -> bridged"]
actions:
  description: What was done, or would be in check mode, in order (V(create), V(import), V(clone), V(modify),
    V(start), V(pause), V(resume), V(save), V(poweroff), V(acpi_shutdown), V(discard_saved_state), V(export),
    V(unregister), V(delete_files)). A failed call lists what had been done before it failed; an ACPI shutdown
    that timed out without O(force) lists V(acpi_shutdown), since the button was pressed.
  returned: always
  type: list
  elements: str
  sample: [create, modify]
export:
  description: The appliance file written (or that would be in check mode).
  returned: when an export was done
  type: str
  sample: /srv/appliances/web1.ova
appliance:
  description: What C(VBoxManage import -n) read from O(import_from) (ostype, name, memory, cpus, description,
    base_folder).
  returned: when the VM was imported
  type: dict
  sample: {ostype: Debian_64, name: web, memory: 1024, cpus: 1}
deleted_media:
  description: Hard disk images deleted with O(delete_files=true) (or that would be).
  returned: when O(state=absent), O(delete_files=true) and the VM existed
  type: list
  elements: str
  sample: [/root/VirtualBox VMs/web1/web1.vdi]
kept_media:
  description: Images of the VM kept by O(delete_files=true) because other VMs use them, with the reason.
  returned: when O(state=absent), O(delete_files=true) and the VM existed
  type: list
  elements: dict
  sample: [{location: /srv/vbox/base.vdi, reason: "also used by VM(s) 47f6958f-... (directly or through linked clones)"}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._vbox_vm import VMManager


def main():
    module = AnsibleModule(
        argument_spec={
            'name': {'type': 'str', 'required': True},
            'state': {'type': 'str', 'default': 'present',
                      'choices': ['present', 'absent', 'running', 'poweroff', 'acpi_shutdown', 'paused', 'saved']},
            'ostype': {'type': 'str'},
            'memory': {'type': 'int'},
            'cpus': {'type': 'int'},
            'firmware': {'type': 'str', 'choices': ['bios', 'efi', 'efi32', 'efi64']},
            'description': {'type': 'str'},
            'nics': {'type': 'list', 'elements': 'dict', 'options': {
                'type': {'type': 'str', 'required': True,
                         'choices': ['nat', 'bridged', 'hostonly', 'intnet', 'natnetwork', 'null', 'none']},
                'adapter': {'type': 'str'},
                'network': {'type': 'str'},
                'model': {'type': 'str',
                          'choices': ['Am79C970A', 'Am79C973', 'Am79C960', '82540EM', '82543GC', '82545EM', 'virtio']},
                'mac': {'type': 'str'},
                'cable_connected': {'type': 'bool'},
            }},
            'storage_controllers': {'type': 'list', 'elements': 'dict', 'options': {
                'name': {'type': 'str', 'required': True},
                'type': {'type': 'str',
                         'choices': ['ide', 'sata', 'scsi', 'sas', 'floppy', 'usb', 'pcie', 'nvme', 'virtio']},
                'port_count': {'type': 'int'},
                'bootable': {'type': 'bool'},
                'disks': {'type': 'list', 'elements': 'dict', 'options': {
                    'port': {'type': 'int', 'required': True},
                    'device': {'type': 'int', 'default': 0},
                    'type': {'type': 'str', 'default': 'hdd', 'choices': ['hdd', 'dvddrive', 'fdd']},
                    'medium': {'type': 'path'},
                    'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
                }},
            }},
            'boot_order': {'type': 'list', 'elements': 'str', 'choices': ['disk', 'dvd', 'net', 'floppy', 'none']},
            'base_folder': {'type': 'path'},
            'delete_files': {'type': 'bool', 'default': False},
            'timeout': {'type': 'int', 'default': 120},
            'force': {'type': 'bool', 'default': False},
            'import_from': {'type': 'path'},
            'export_to': {'type': 'path'},
            'export_format': {'type': 'str', 'choices': ['ovf-1.0', 'ovf-2.0']},
            'force_export': {'type': 'bool', 'default': False},
            'clone_from': {'type': 'str'},
            'clone_mode': {'type': 'str', 'default': 'full', 'choices': ['full', 'linked']},
            'clone_snapshot': {'type': 'str'},
        },
        mutually_exclusive=[('import_from', 'clone_from')],
        supports_check_mode=True,
    )
    run_module(module, lambda result: VMManager(module, result).run())


if __name__ == '__main__':
    main()
