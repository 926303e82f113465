#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: qemu_image
short_description: Create, convert, resize and remove disk images with qemu-img, idempotently and atomically
version_added: 0.1.0
description:
  - Without O(src), O(state=present) creates the image at O(path) (O(format), O(size), or a thin overlay on
    O(backing_file)) unless it exists, and grows an existing image to O(size); shrinking needs O(allow_shrink=true).
    An existing image of another format or backing file is refused, not replaced.
  - Only V(qcow2) and V(raw) images can be resized; qemu-img cannot resize V(vdi), V(vmdk), V(vpc) or V(vhdx) images
    (none of their subformats). Another O(size) for an existing image of those formats is refused before anything
    is done, in check mode as in a real run, with the way out - convert it to V(qcow2) or V(raw) first, or to grow
    it, convert it with O(src) to a new path and a larger O(size).
  - With O(src), converts O(src) to O(path) in O(format) with C(qemu-img convert), and again only when the
    destination's format, virtual size or backing file differ from what is asked, when it was converted with other
    settings, or when the source changed since the last conversion. The module records a fingerprint of the source
    in the destination (the extended attribute C(user.virtops.qemu_image)) - size, mtime, inode, format and virtual
    size of each image of the source's backing chain - so telling needs no read of the images. A destination without
    that fingerprint (made by hand, copied without extended attributes) is converted again. On file systems without
    user extended attributes the fingerprint is kept in C(.<name>.qemu_image.json) beside the image.
  - Every create and conversion writes a temporary file C(.<name>.<random>.qemu_image.tmp) in the destination's
    directory and renames it over O(path) when qemu-img succeeded. A failed, interrupted or out-of-space run
    leaves O(path) as it was and removes its temporary file; a run killed with SIGKILL leaves only its temporary
    file, which the next run on the same O(path) removes.
  - Images a running VM (or any other qemu process) has open are never written to, replaced or removed; the
    module tells from qemu's own image locks and fails naming the image.
  - O(state=absent) removes the image (and its fingerprint file).
  - Diff mode shows the image before and after (format, virtual size, backing file, owner, group, mode).
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - ansible.builtin.files
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.check_mode_full
  - virtops.hypervisor.attributes.diff_mode_full
  - virtops.hypervisor.attributes.platform_linux
options:
  path:
    description: Absolute path of the image file.
    type: path
    required: true
  state:
    description:
      - V(present) creates, converts or resizes the image as described above.
      - V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  format:
    description:
      - Format of the image at O(path). V(vpc) is VHD (Hyper-V, Azure, Virtual PC), V(vdi) VirtualBox, V(vmdk)
        VMware.
    type: str
    choices: [qcow2, raw, vdi, vmdk, vpc, vhdx]
    default: qcow2
  size:
    description:
      - Virtual size of the image, in bytes or with a suffix K, M, G, T, P or E (powers of 1024, as qemu-img reads
        them), such as V(10G) or V(512M). Sizes are compared in bytes, as qemu-img rounds them - up to whole
        512-byte sectors, and for V(vpc) up to its disk geometry unless O(options) has C(force_size=on).
      - Without O(src), needed to create an image unless O(backing_file) is given (the overlay then has the size of
        its backing file). An existing V(qcow2) or V(raw) image of another size is resized (see O(allow_shrink));
        other formats cannot be resized and are refused.
      - With O(src), the destination's size after the conversion, at least the size of O(src) (default the same).
        Some formats round it up (V(vpc) to its disk geometry unless O(options) has C(force_size=on)).
    type: raw
  allow_shrink:
    description: Let O(size) shrink an existing image (C(qemu-img resize --shrink)). Data beyond the new size is
      lost; shrink the file systems and partitions inside first.
    type: bool
    default: false
  backing_file:
    description:
      - Backing file of a thin overlay; relative paths are relative to the directory of O(path), as qemu-img
        resolves them. Only for formats with backing files (V(qcow2), V(vmdk), V(vhdx) cannot).
      - An existing image with another backing file is refused (rebasing is not this module's job).
      - With O(src), the conversion writes only what differs from the backing file (C(qemu-img convert -B)).
    type: str
  backing_format:
    description: Format of O(backing_file). Default is the format qemu-img detects in it.
    type: str
    choices: [qcow2, raw, vdi, vmdk, vpc, vhdx]
  preallocation:
    description:
      - Preallocation mode of a new image (C(-o preallocation=)), also used when growing V(raw) and V(qcow2)
        images. Which modes a format supports is qemu-img's to say (V(qcow2) all, V(raw) V(off), V(falloc) and
        V(full), V(vdi) V(off) and V(metadata)).
    type: str
    choices: ['off', metadata, falloc, full]
  cluster_size:
    description: Cluster size of a new V(qcow2) or V(vhdx) image, such as V(64K) or V(2M). An existing image with
      another cluster size is reported in RV(differences), not changed.
    type: raw
  subformat:
    description:
      - The variant of the format. V(vmdk) - V(monolithicSparse) (default) or V(streamOptimized) (compressed, for
        OVA and cloud imports; about 15 times slower to write); the multi-file vmdk variants are refused, they cannot
        be replaced atomically. V(vpc) - V(dynamic) (default) or V(fixed) (what Azure needs). V(vhdx) - V(dynamic) or
        V(fixed).
    type: str
  options:
    description:
      - Further format options (C(qemu-img create -o) and C(convert -o)) as a dictionary, such as C(compat) and
        C(lazy_refcounts) for V(qcow2) or C(force_size) for V(vpc). Booleans are written V(on) or V(off).
      - They apply when the image is written. With O(src), changing them converts again; without O(src), they are
        not compared with an existing image.
    type: dict
  src:
    description:
      - The image to convert to O(path). The destination is converted again only as described above. A source in
        use by a running VM is refused by qemu-img (its lock); shut the VM down first.
    type: path
  src_format:
    description: Format of O(src). Default is the format qemu-img detects (C(qemu-img info)).
    type: str
  src_member:
    description:
      - The image to convert is this file inside O(src), an uncompressed tar archive such as an OVA (the C(file)
        of a disk in RV(virtops.hypervisor.ovf_info#module:appliance.disks)).
        It is read in place, through qemu-img's raw driver at the member's offset; nothing is extracted.
      - The fingerprint that decides a new conversion is then the archive's (size, mtime, inode) and the member's
        name. Only standalone images (no backing file) can be read this way.
    type: str
    version_added: 1.1.0
  compress:
    description: Compress the data of the destination (C(qemu-img convert -c)); V(qcow2) and V(vmdk) only.
    type: bool
    default: false
  force:
    description: With O(src), convert even when the destination is up to date.
    type: bool
    default: false
  fsync:
    description:
      - Flush the new image to disk before renaming it over O(path), so that it survives a power loss or a
        kernel crash right after the run. Without it, like plain C(qemu-img convert), the kernel writes the data
        back in its own time; the rename is atomic either way for failed, interrupted and out-of-space runs.
      - Costs the time the disk needs to write the image (at the ~670 MB/s measured with dd on the development
        machine, about 1.5 s per GiB of data).
    type: bool
    default: false
notes:
  - Needs qemu-img on the target (Debian and Ubuntu package C(qemu-utils), EL and Fedora C(qemu-img)).
  - O(path) must be a regular file (or not exist); block devices and the multi-file vmdk variants are refused.
  - A destination written in place by a VM after its conversion is not converted again while its source and the
    settings stay the same; use O(force=true) to start over.
  - Conversions use C(qemu-img convert -W) (out-of-order writes) for uncompressed V(raw) and V(qcow2) destinations
    without a backing file, and qemu-img's default cache modes, which were the fastest measured.
seealso:
  - module: virtops.hypervisor.qemu_image_info
  - module: virtops.hypervisor.libvirt_domain
"""

EXAMPLES = r"""
- name: A 20 GiB qcow2 disk for a new VM
  virtops.hypervisor.qemu_image:
    path: /var/lib/libvirt/images/web1.qcow2
    size: 20G
    owner: libvirt-qemu
    group: kvm
    mode: '0660'

- name: A thin overlay on a golden image
  virtops.hypervisor.qemu_image:
    path: /var/lib/libvirt/images/web2.qcow2
    backing_file: golden/debian-12.qcow2
    backing_format: qcow2

- name: Grow a disk to 40 GiB (never shrinks without allow_shrink)
  virtops.hypervisor.qemu_image:
    path: /var/lib/libvirt/images/web1.qcow2
    size: 40G

- name: Convert a qcow2 image to a VirtualBox disk; converted again only when the source changes
  virtops.hypervisor.qemu_image:
    src: /var/lib/libvirt/images/debian-12.qcow2
    path: /srv/export/debian-12.vdi
    format: vdi

- name: The disk of an OVA as a qcow2 image, read in place from the archive
  virtops.hypervisor.qemu_image:
    src: /srv/appliances/web1.ova
    src_member: web1-disk001.vmdk
    path: /var/lib/libvirt/images/web1.qcow2

- name: A fixed-size VHD for Azure
  virtops.hypervisor.qemu_image:
    src: /srv/images/app.raw
    path: /srv/export/app.vhd
    format: vpc
    subformat: fixed
    options:
      force_size: true

- name: A compressed qcow2 for distribution
  virtops.hypervisor.qemu_image:
    src: /var/lib/libvirt/images/golden.qcow2
    path: /srv/export/golden-compressed.qcow2
    compress: true

- name: Remove an image no VM uses any more
  virtops.hypervisor.qemu_image:
    path: /var/lib/libvirt/images/old.qcow2
    state: absent
"""

RETURN = r"""
path:
  description: Absolute path of the image.
  returned: always
  type: str
  sample: /srv/export/debian-12.vdi
image:
  description:
    - The image after the call (predicted in check mode, where O(src) is not converted and RV(image.actual_size)
      is the size before); null when it does not exist.
  returned: always
  type: dict
  contains:
    exists:
      description: Always V(true) here.
      type: bool
    format:
      description: Image format.
      type: str
    virtual_size:
      description: Virtual size in bytes.
      type: int
    actual_size:
      description: Bytes allocated on disk.
      type: int
    backing_file:
      description: Backing file as written in the image.
      type: str
    backing_format:
      description: Format of the backing file as written in the image.
      type: str
    subformat:
      description: vmdk create type.
      type: str
      returned: for vmdk images
  sample: {exists: true, format: vdi, virtual_size: 2147483648, actual_size: 1065353216, backing_file: null,
           backing_format: null, path: /srv/export/debian-12.vdi}
actions:
  description:
    - What was done, or would be in check mode - V(create), V(convert), V(grow), V(shrink), V(remove),
      V(attributes). An action is listed once it succeeded, so a failed call lists what was done before the
      failure (and reports C(changed=false) when that is nothing).
    - V(attributes) is listed when owner, group or mode of an image this call did not write change; a created or
      converted image gets them as part of that action.
  returned: always
  type: list
  elements: str
  sample: [convert]
reasons:
  description: Why, for each action.
  returned: always
  type: list
  elements: str
  sample: ["source /var/lib/libvirt/images/debian-12.qcow2 changed since the last conversion (size, mtime_ns)"]
differences:
  description: Settings of an existing image that differ from what was asked and are fixed at creation (cluster
    size, subformat); the image is left as it is. Empty when there are none.
  returned: always
  type: list
  elements: str
  sample: ["cluster size is 64 KiB"]
stale_temp_files:
  description: Temporary files of O(path) left by a killed run, removed by this one (check mode lists them and
    leaves them). Removing them is housekeeping, not an action on the image - it does not make the call changed.
  returned: always
  type: list
  elements: str
  sample: [/srv/export/.debian-12.vdi.k2j4x9ab.qemu_image.tmp]
failed_object:
  description: The image a failure is about (its absolute path).
  returned: on failure
  type: str
  sample: /var/lib/libvirt/images/web1.vdi
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._image_manager import ImageManager
from ansible_collections.virtops.hypervisor.plugins.module_utils._qemu_img import FORMATS


def main():
    module = AnsibleModule(
        argument_spec={
            'path': {'type': 'path', 'required': True},
            'state': {'type': 'str', 'default': 'present', 'choices': ['present', 'absent']},
            'format': {'type': 'str', 'default': 'qcow2', 'choices': list(FORMATS)},
            'size': {'type': 'raw'},
            'allow_shrink': {'type': 'bool', 'default': False},
            'backing_file': {'type': 'str'},
            'backing_format': {'type': 'str', 'choices': list(FORMATS)},
            'preallocation': {'type': 'str', 'choices': ['off', 'metadata', 'falloc', 'full']},
            'cluster_size': {'type': 'raw'},
            'subformat': {'type': 'str'},
            'options': {'type': 'dict'},
            'src': {'type': 'path'},
            'src_format': {'type': 'str'},
            'src_member': {'type': 'str'},
            'compress': {'type': 'bool', 'default': False},
            'force': {'type': 'bool', 'default': False},
            'fsync': {'type': 'bool', 'default': False},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run_module(module, lambda result: ImageManager(module, result).run())


if __name__ == '__main__':
    main()
