#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: qemu_image_info
short_description: Read disk images with qemu-img - format, sizes, backing chain, snapshots, consistency
version_added: 0.1.0
description:
  - Runs C(qemu-img info --output=json --backing-chain) on each image and returns what it says, parsed - format,
    virtual and allocated size, cluster size, the backing chain, internal snapshots, the dirty, corrupt and
    encrypted flags - with the file's owner, group and mode.
  - With O(check=true) also runs C(qemu-img check --output=json) (V(qcow2), V(vdi), V(vhdx), V(vmdk) and V(qed);
    other formats report C(supported=false) in RV(images[].check)).
  - Images are read with C(-U) (shared), so images of running VMs can be read; what a running VM writes at that
    moment can make a check report leaks it does not have.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.info_module
  - virtops.hypervisor.attributes.platform_linux
options:
  path:
    description: Paths of the images. Paths that do not exist are returned with RV(images[].exists=false).
    type: list
    elements: path
    required: true
  check:
    description: Also check each image's consistency with C(qemu-img check).
    type: bool
    default: false
notes:
  - Needs qemu-img on the target (Debian and Ubuntu package C(qemu-utils), EL and Fedora C(qemu-img)).
seealso:
  - module: virtops.hypervisor.qemu_image
"""

EXAMPLES = r"""
- name: Read a VM's disk and its backing chain
  virtops.hypervisor.qemu_image_info:
    path: /var/lib/libvirt/images/web1.qcow2
  register: web1_disk

- name: Show the disk's virtual size
  ansible.builtin.debug:
    msg: "{{ web1_disk.images[0].virtual_size | human_readable }}"

- name: Check the images of the golden set
  virtops.hypervisor.qemu_image_info:
    path:
      - /var/lib/libvirt/images/golden/debian-12.qcow2
      - /var/lib/libvirt/images/golden/alma-9.qcow2
    check: true
  register: golden

- name: Fail on a damaged image
  ansible.builtin.assert:
    that: golden.images | selectattr('check.result', 'in', ['corrupt', 'error']) | list | length == 0
"""

RETURN = r"""
images:
  description: One entry per O(path), in order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Absolute path.
      type: str
    exists:
      description: Whether the image exists; the other keys are returned only when it does.
      type: bool
    format:
      description: Image format as qemu-img detects it.
      type: str
    virtual_size:
      description: Virtual size (what the guest sees) in bytes.
      type: int
    actual_size:
      description: Bytes allocated on the host's disk.
      type: int
    cluster_size:
      description: Cluster (block) size in bytes, for formats that have one.
      type: int
    backing_file:
      description: Backing file as written in the image, null without one.
      type: str
    full_backing_file:
      description: The backing file as qemu-img resolves it.
      type: str
    backing_format:
      description: Format of the backing file as written in the image.
      type: str
    backing_chain:
      description: The backing files, nearest first, each with path, format, virtual_size, actual_size,
        backing_file and backing_format.
      type: list
      elements: dict
    snapshots:
      description: Internal snapshots (qcow2) with id, name, vm_state_size, date_sec and vm_clock_sec.
      type: list
      elements: dict
    dirty:
      description: The image's dirty flag (not closed cleanly, or open in a running VM).
      type: bool
    corrupt:
      description: qcow2's corrupt flag (qemu found inconsistent metadata and stopped writing).
      type: bool
    encrypted:
      description: Whether the image is encrypted.
      type: bool
    subformat:
      description: vmdk create type (such as V(monolithicSparse), V(streamOptimized)).
      type: str
      returned: for vmdk images
    format_specific:
      description: The format-specific data of C(qemu-img info) as it is (qcow2 compat level, refcount bits, vmdk
        extents...).
      type: dict
    owner:
      description: Owner of the file.
      type: str
    group:
      description: Group of the file.
      type: str
    mode:
      description: Permissions of the file, octal.
      type: str
    check:
      description:
        - With O(check=true), the result of C(qemu-img check). Its C(result) is V(ok), V(leaks) (wasted clusters,
          harmless), V(corrupt), V(unsupported) (the format has no check; C(supported) is V(false)) or V(error)
          (C(error) has the message).
        - Also returns C(corruptions), C(leaks), C(check_errors), C(allocated_clusters), C(total_clusters),
          C(fragmented_clusters), C(image_end_offset) and qemu-img's exit code C(rc).
      type: dict
      returned: with O(check=true)
  sample:
    - path: /var/lib/libvirt/images/web1.qcow2
      exists: true
      format: qcow2
      virtual_size: 21474836480
      actual_size: 1480032256
      cluster_size: 65536
      backing_file: golden/debian-12.qcow2
      full_backing_file: /var/lib/libvirt/images/golden/debian-12.qcow2
      backing_format: qcow2
      backing_chain:
        - {path: /var/lib/libvirt/images/golden/debian-12.qcow2, format: qcow2, virtual_size: 21474836480,
           actual_size: 1101234176, backing_file: null, backing_format: null}
      snapshots: []
      dirty: false
      corrupt: false
      encrypted: false
      owner: libvirt-qemu
      group: kvm
      mode: '0660'
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._image_manager import read_images


def main():
    module = AnsibleModule(
        argument_spec={
            'path': {'type': 'list', 'elements': 'path', 'required': True},
            'check': {'type': 'bool', 'default': False},
        },
        supports_check_mode=True,
    )
    run_module(module, lambda result: {'images': read_images(module, module.params['path'], module.params['check'])})


if __name__ == '__main__':
    main()
