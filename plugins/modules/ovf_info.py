#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ovf_info
short_description: Read an OVF or OVA appliance into a plain hardware description
version_added: 1.1.0
description:
  - Reads the OVF envelope of an appliance - an C(.ova) tar archive (without extracting its disks) or an C(.ovf)
    file with its disk files beside it - and returns what a VM needs on another hypervisor - name, description, OS
    type, vCPUs, memory, firmware, disks (file, format, capacity, controller, bus, offset in the archive), CD/DVD
    drives and network adapters (model mapped to libvirt's, MAC address, network).
  - VirtualBox writes firmware, MAC addresses, the type of a virtio adapter and empty DVD drives only in its
    C(vbox:Machine) section; they are read from there. VMware's C(vmw:Config) firmware key is read too.
  - A file that is not an appliance, an envelope that is not OVF, and an appliance whose envelope names a file it
    does not hold fail with a message naming the file.
  - Pure Python on the target (no qemu-img, no VirtualBox).
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.info_module
  - virtops.hypervisor.attributes.platform_linux
options:
  path:
    description: The C(.ova) file, or the C(.ovf) envelope of an appliance whose files are in the same directory.
    type: path
    required: true
  verify:
    description:
      - Also check every file against the appliance's manifest (C(.mf), SHA1, SHA256 or SHA512 lines); reads all
        the disks. A mismatch, or no manifest, fails the task.
    type: bool
    default: false
notes:
  - The disk of an OVA can be converted in place with M(virtops.hypervisor.qemu_image) (O(virtops.hypervisor.qemu_image#module:src)
    the OVA, O(virtops.hypervisor.qemu_image#module:src_member) the C(file) of the disk in RV(appliance.disks)).
  - Only the first virtual system of an envelope is read; a C(VirtualSystemCollection) is refused.
seealso:
  - module: virtops.hypervisor.libvirt_domain_ova
  - module: virtops.hypervisor.vbox_vm
  - name: DMTF OVF specification (DSP0243)
    description: The OVF envelope format.
    link: https://www.dmtf.org/standards/ovf
"""

EXAMPLES = r"""
- name: Read an appliance VirtualBox exported
  virtops.hypervisor.ovf_info:
    path: /srv/appliances/web1.ova
  register: web1_ova

- name: Its first disk as a qcow2 image for libvirt, read in place from the OVA
  virtops.hypervisor.qemu_image:
    src: /srv/appliances/web1.ova
    src_member: "{{ web1_ova.appliance.disks[0].file }}"
    path: /var/lib/libvirt/images/web1.qcow2
    format: qcow2

- name: Check a downloaded appliance against its manifest
  virtops.hypervisor.ovf_info:
    path: /srv/appliances/vendor.ova
    verify: true
"""

RETURN = r"""
appliance:
  description: The appliance's hardware description.
  returned: always
  type: dict
  contains:
    path:
      description: Absolute path of the appliance.
      type: str
      sample: /srv/appliances/web1.ova
    format:
      description: V(ova) (a tar archive) or V(ovf) (an envelope with files beside it).
      type: str
      sample: ova
    ovf:
      description: Name of the envelope (the C(.ovf) member or file).
      type: str
      sample: web1.ovf
    name:
      description: Name of the virtual system.
      type: str
      sample: web1
    description:
      description: Its annotation, or null.
      type: str
      sample: Web server
    ostype:
      description: OS type - VirtualBox's ID when the appliance has one (V(Debian_64)), else the OS section's description.
      type: str
      sample: Debian_64
    os_id:
      description: The CIM operating system id of the OS section.
      type: int
      sample: 96
    vcpus:
      description: Number of virtual CPUs (1 when the envelope gives none).
      type: int
      sample: 2
    memory:
      description: Memory in MiB.
      type: int
      sample: 2048
    firmware:
      description: V(bios) or V(efi).
      type: str
      sample: efi
    disks:
      description:
        - The disks in the order of the hardware section, each with C(file) (its name in the appliance), C(format)
          (V(vmdk)...), C(subformat) (V(streamOptimized)), C(format_uri), C(capacity) (bytes), C(disk_id),
          C(controller) (V(ide), V(sata), V(scsi), V(sas), V(nvme), V(virtio)), C(bus) (the libvirt disk bus for
          that controller - V(ide), V(sata), V(scsi)), C(controller_index), C(address) (port on the controller),
          C(size) (bytes of the file) and, in an OVA, C(offset) (where the file starts in the archive) or, beside an
          OVF, C(path).
      type: list
      elements: dict
      sample: [{file: web1-disk001.vmdk, format: vmdk, subformat: streamOptimized, capacity: 10737418240,
                controller: sata, bus: sata, controller_index: 0, address: 0, offset: 8192, size: 1432335360}]
    cdroms:
      description: CD/DVD drives - C(controller), C(bus), C(address) and C(file) (an ISO in the appliance, or null
        for an empty drive).
      type: list
      elements: dict
      sample: [{controller: sata, bus: sata, controller_index: 0, address: 1, file: null}]
    nics:
      description:
        - Network adapters in order - C(network) (the OVF network name, V(NAT) for example), C(model) (libvirt's
          model - V(virtio), V(e1000), V(e1000e), V(pcnet), V(vmxnet3), V(rtl8139); V(e1000) when the appliance
          names none), C(adapter_type) (as the appliance names it, V(82540EM) for example), C(mac)
          (V(52:54:00:1a:2b:3c), or null) and C(attachment) (VirtualBox's - V(nat), V(bridged), V(intnet)... - or null).
      type: list
      elements: dict
      sample: [{network: NAT, model: virtio, adapter_type: virtio, mac: "52:54:00:1a:2b:3c", attachment: nat}]
    boot_order:
      description: Boot devices in order (V(disk), V(dvd), V(net), V(floppy)) when the appliance says, else empty.
      type: list
      elements: str
      sample: [disk, dvd]
    source_digest:
      description: In an OVA M(virtops.hypervisor.libvirt_domain_ova) wrote, the digest of the domain and disks it
        was written from; else null.
      type: str
      sample: "sha256:0f3c..."
    files:
      description: The other files of the appliance (disks, manifest) with C(name), C(size) and C(offset) or C(path).
      type: list
      elements: dict
      sample: [{name: web1-disk001.vmdk, offset: 8192, size: 1432335360}]
verified:
  description: V(true) when O(verify=true) and every file matched the manifest.
  returned: when O(verify=true)
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._ovf import appliance_facts


def main():
    module = AnsibleModule(
        argument_spec={
            'path': {'type': 'path', 'required': True},
            'verify': {'type': 'bool', 'default': False},
        },
        supports_check_mode=True,
    )
    run_module(module, lambda result: appliance_facts(module.params))


if __name__ == '__main__':
    main()
