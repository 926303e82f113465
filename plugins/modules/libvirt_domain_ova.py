#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_domain_ova
short_description: Write an OVA appliance of a shut-off libvirt domain, for VirtualBox and other OVF importers
version_added: 1.1.0
description:
  - Writes an OVA (OVF 1.0 envelope, SHA256 manifest, streamOptimized VMDK disks, in that order in one tar file, as
    VirtualBox writes it) of a libvirt domain - its vCPUs, memory, firmware (BIOS or EFI), description, disks, CD-ROM
    drives (empty; ISO images are not copied) and network adapters with their MAC addresses and models. The
    envelope carries a C(vbox:Machine) section, so M(virtops.hypervisor.vbox_vm) (O(virtops.hypervisor.vbox_vm#module:import_from))
    imports firmware, adapter types and controller as they were.
  - Idempotent - the OVA records a digest of what it was written from (the domain's settings above and, for each disk,
    its size, modification time, inode, format and virtual size). A rerun with the same domain and disks compares
    the digests and writes nothing; a changed setting or disk writes the OVA again.
  - The domain must be shut off - a running, paused or saved domain is refused, in check mode too, before anything
    is written (its disks change while it runs).
  - The disks are converted (C(qemu-img convert -O vmdk -o subformat=streamOptimized)) into a temporary directory
    beside O(path), the tar is written there and renamed over O(path); a failure leaves O(path) as it was and
    removes the temporary files.
  - Diff mode shows the appliance's settings before and after; check mode reports exactly what a real run writes.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.check_mode_full
  - virtops.hypervisor.attributes.diff_mode_full
  - virtops.hypervisor.attributes.platform_linux
  - virtops.hypervisor.libvirt
options:
  name:
    description: Name of the domain.
    type: str
    required: true
  path:
    description: The OVA file to write; it must end with C(.ova) and its directory must exist.
    type: path
    required: true
  ova_name:
    description: Name of the virtual system in the OVA (the VM name an import suggests); default the domain's name.
    type: str
  ostype:
    description:
      - VirtualBox OS type written into the OVA, such as V(Debian_64). Default from the domain's libosinfo
        metadata (V(Debian_64) for C(http://debian.org/debian/12)), else V(Other_64).
    type: str
  force:
    description: Write the OVA even when it is up to date (reported as a change every time).
    type: bool
    default: false
notes:
  - Needs qemu-img on the host (Debian and Ubuntu package C(qemu-utils)). Writing streamOptimized VMDK is about 15
    times slower than other conversions; plan a few seconds per GiB of data.
  - The OVA maps virtio disks to a SATA controller (VirtualBox's default, and what Linux and Windows boot from without
    extra drivers), SCSI disks to an LSI Logic controller and IDE disks to IDE; NIC models map to VirtualBox's
    adapter types (V(virtio) stays virtio, V(e1000) becomes V(82540EM), V(pcnet) becomes V(Am79C973)).
seealso:
  - module: virtops.hypervisor.ovf_info
  - module: virtops.hypervisor.vbox_vm
  - module: virtops.hypervisor.libvirt_domain
"""

EXAMPLES = r"""
- name: Shut the domain down
  virtops.hypervisor.libvirt_domain:
    name: web1
    state: shutdown

- name: Write its OVA; a rerun with the same domain and disks writes nothing
  virtops.hypervisor.libvirt_domain_ova:
    name: web1
    path: /srv/appliances/web1.ova
    ostype: Debian_64

- name: Import it into VirtualBox
  virtops.hypervisor.vbox_vm:
    name: web1
    import_from: /srv/appliances/web1.ova
"""

RETURN = r"""
path:
  description: Absolute path of the OVA.
  returned: always
  type: str
  sample: /srv/appliances/web1.ova
appliance:
  description: What the OVA holds (or would, in check mode) - name, ostype, vcpus, memory (MiB), firmware, disks
    (file, capacity in bytes, bus of the domain), cdroms (a count), nics (mac, model) and source_digest.
  returned: when the domain was read
  type: dict
  sample: {exists: true, name: web1, ostype: Debian_64, vcpus: 2, memory: 2048, firmware: bios,
           disks: [{file: web1-disk1.vmdk, capacity: 10737418240, bus: virtio}], cdroms: 0,
           nics: [{mac: "52:54:00:12:34:56", model: virtio}], source_digest: "sha256:0f3c..."}
source_digest:
  description: The digest of the domain and its disks, recorded in the OVA.
  returned: when the domain was read
  type: str
  sample: "sha256:0f3c..."
reasons:
  description: Why the OVA is (or would be) written; empty when it is up to date.
  returned: always
  type: list
  elements: str
  sample: [/srv/appliances/web1.ova does not exist]
actions:
  description: V(write) when the OVA was (or would be) written, else empty.
  returned: always
  type: list
  elements: str
  sample: [write]
differences:
  description: Not used by this module (always empty).
  returned: always
  type: list
  elements: str
  sample: []
failed_object:
  description: The domain or file a failure is about.
  returned: on failure
  type: str
  sample: domain 'web1'
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_ova import DomainOVA
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION, run_libvirt_module


def main():
    module = AnsibleModule(
        argument_spec={
            'uri': dict(URI_OPTION),
            'name': {'type': 'str', 'required': True},
            'path': {'type': 'path', 'required': True},
            'ova_name': {'type': 'str'},
            'ostype': {'type': 'str'},
            'force': {'type': 'bool', 'default': False},
        },
        supports_check_mode=True,
    )
    run_libvirt_module(module, lambda conn, result: DomainOVA(module, conn, result).run())


if __name__ == '__main__':
    main()
