#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_pool
short_description: Define, build, start, stop and remove libvirt storage pools without destroying data
version_added: 1.1.0
description:
  - Pools are identified by name. A pool is described by the structured options (O(type) V(dir), V(fs),
    V(logical) or V(netfs), O(target), O(source), O(permissions)) or, for any type libvirt knows, by its full
    O(xml). An existing pool is compared with what was asked only on the settings given, after libvirt's
    defaults are filled in (source format, the permissions it reads from the directory), so a rerun reports no
    change; a redefinition keeps the pool's UUID.
  - The storage is built only when it is missing, and never over data. A V(dir) pool's directory is created
    (with O(permissions)); a V(fs) pool's device is formatted with O(source.format) only when it holds no
    signature and its first MiB is zero, a device that already holds that file system is mounted as it is; a
    V(logical) pool uses the volume group named O(source.name) when it exists and creates it on
    O(source.devices) only when they are empty. A device that holds anything else (another file system, an LVM
    physical volume, a partition table, data) is refused with what C(blkid) found, and nothing changes.
  - The probes (C(blkid -p), C(wipefs --no-act), C(pvs), C(lvs), the target directory) run on the host the
    module runs on. With an O(uri) that names another host, nothing is probed or built (a warning says so),
    and O(delete=true) on a pool that does not run is refused (its volumes cannot be listed).
  - A change to the definition of a running pool takes effect when it next starts; the module reports
    RV(restart_required) and restarts it with O(apply=restart).
  - O(pools) converges several pools in one call. Every item is validated, read and planned before the first
    change; an item that is refused fails the call with nothing changed.
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
    description:
      - Name of the pool. With O(xml), optional (the XML's C(<name>)), and must match it when given.
      - Without O(type), O(target), O(source), O(permissions) and O(xml), the pool must exist; only its run
        state and autostart are converged.
    type: str
  xml:
    description:
      - The full pool definition (C(<pool type=...>)), for any pool type. Mutually exclusive with the structured
        options. A C(<uuid>) in it must match the existing pool's.
      - Compared with the stored definition on type, target path and permissions, and on the source (devices,
        host, directory, name, format, and every other source element as written).
    type: str
  type:
    description: Pool type. Cannot change on an existing pool. Other types through O(xml).
    type: str
    choices: [dir, fs, logical, netfs]
  target:
    description:
      - Absolute path, the directory of a V(dir) pool, the mount point of V(fs) and V(netfs) pools. A V(logical)
        pool's is C(/dev/<volume group>) (libvirt's default when left out).
    type: path
  source:
    description: Where the storage comes from.
    type: dict
    suboptions:
      devices:
        description:
          - Block devices. V(fs) takes one (the device with the file system); V(logical) the physical volumes to
            create the volume group on when it does not exist.
        type: list
        elements: path
      host:
        description: V(netfs) server name or address.
        type: str
      dir:
        description: V(netfs) exported directory on the server (absolute).
        type: str
      format:
        description:
          - V(fs) file system (V(ext4), V(xfs) ...; libvirt's default V(auto) mounts whatever is there but
            cannot make a new one), V(netfs) protocol (V(auto), V(nfs), V(cifs), V(glusterfs)), V(logical)
            V(lvm2).
        type: str
      name:
        description: V(logical) volume group name; libvirt's default is the pool name.
        type: str
  permissions:
    description:
      - Owner, group and mode of the target directory (V(dir), V(fs), V(netfs)). Stored in the definition; for a
        V(dir) pool the directory itself is also created or corrected with them.
    type: dict
    suboptions:
      owner:
        description: User name (resolved on the host to its number, which libvirt stores) or number.
        type: str
      group:
        description: Group name (resolved on the host) or number.
        type: str
      mode:
        description: Octal mode as a quoted string, such as V('0755').
        type: raw
  state:
    description:
      - V(active) defines the pool when needed, builds its storage when missing, and starts it.
      - V(inactive) does the same but leaves the pool stopped (stopping it if it runs).
      - V(present) defines and builds, and leaves the run state as it is (a new pool stays stopped).
      - V(absent) stops and undefines the pool; the storage stays unless O(delete=true).
      - Default V(active).
    type: str
    choices: [present, active, inactive, absent]
  autostart:
    description: Start the pool when libvirtd starts. Left as it is when not given (a new pool has it off).
    type: bool
  delete:
    description:
      - With O(state=absent), also remove the storage (libvirt's pool delete, after the pool is stopped).
        V(dir) removes the directory; V(logical) removes the volume group and the LVM labels of its devices;
        V(fs) and V(netfs) remove only the mount point directory, the file system on the device and the files
        on the share stay.
      - A V(dir) or V(logical) pool that still holds volumes is refused (the task fails, nothing changes, the
        volumes are named in the message and RV(volumes)) unless O(force=true), which deletes the volumes first.
      - Default V(false).
    type: bool
  force:
    description:
      - With O(delete=true), delete the pool's volumes, then the pool.
      - Stop or restart a pool that running domains use (otherwise refused, naming the domains).
      - Default V(false).
    type: bool
  apply:
    description:
      - How a changed definition of a running pool takes effect. V(next_start) leaves it running on the old one
        (RV(restart_required) is true); V(restart) stops and starts it (refused while running domains use its
        volumes, unless O(force=true)).
      - Default V(next_start).
    type: str
    choices: [next_start, restart]
  pools:
    description:
      - Several pools at once. Each item takes the options of a single pool.
      - O(state), O(autostart), O(delete), O(force) and O(apply) given at the top level are the defaults for
        items that do not set them.
      - Mutually exclusive with O(name), O(xml) and the structured options at the top level.
    type: list
    elements: dict
    suboptions:
      name:
        description: See O(name).
        type: str
      xml:
        description: See O(xml).
        type: str
      type:
        description: See O(type).
        type: str
        choices: [dir, fs, logical, netfs]
      target:
        description: See O(target).
        type: path
      source:
        description: See O(source).
        type: dict
        suboptions:
          devices:
            description: See O(source.devices).
            type: list
            elements: path
          host:
            description: See O(source.host).
            type: str
          dir:
            description: See O(source.dir).
            type: str
          format:
            description: See O(source.format).
            type: str
          name:
            description: See O(source.name).
            type: str
      permissions:
        description: See O(permissions).
        type: dict
        suboptions:
          owner:
            description: See O(permissions.owner).
            type: str
          group:
            description: See O(permissions.group).
            type: str
          mode:
            description: See O(permissions.mode).
            type: raw
      state:
        description: See O(state).
        type: str
        choices: [present, active, inactive, absent]
      autostart:
        description: See O(autostart).
        type: bool
      delete:
        description: See O(delete).
        type: bool
      force:
        description: See O(force).
        type: bool
      apply:
        description: See O(apply).
        type: str
        choices: [next_start, restart]
notes:
  - Removing a pool never touches the domains that use its volumes; stopping it while they run is refused
    unless O(force=true).
seealso:
  - module: virtops.hypervisor.libvirt_pool_info
  - module: virtops.hypervisor.libvirt_domain
"""

EXAMPLES = r"""
- name: A directory pool, running and started with libvirtd
  virtops.hypervisor.libvirt_pool:
    name: images
    type: dir
    target: /srv/libvirt/images
    permissions:
      owner: root
      group: kvm
      mode: "0770"
    autostart: true

- name: An ext4 file system on a disk (made only if the disk is empty), mounted by libvirt
  virtops.hypervisor.libvirt_pool:
    name: fast
    type: fs
    source:
      devices: [/dev/nvme1n1]
      format: ext4
    target: /srv/libvirt/fast

- name: An LVM pool on the volume group vg_guests (created on /dev/sdb if it does not exist)
  virtops.hypervisor.libvirt_pool:
    name: guests
    type: logical
    source:
      name: vg_guests
      devices: [/dev/sdb]

- name: Several pools, all inactive unless an item says otherwise
  virtops.hypervisor.libvirt_pool:
    state: inactive
    pools:
      - name: iso
        type: netfs
        source: {host: nas.example.com, dir: /export/iso, format: nfs}
        target: /srv/libvirt/iso
      - name: scratch
        type: dir
        target: /var/tmp/scratch
        state: active

- name: Remove a pool and its directory, with the volumes still in it
  virtops.hypervisor.libvirt_pool:
    name: scratch
    state: absent
    delete: true
    force: true
"""

RETURN = r"""
name:
  description: The pool (a single pool; in a batch each item of RV(pools) has it).
  returned: always
  type: str
  sample: images
state:
  description: The pool's state afterwards (predicted in check mode), V(active), V(inactive) or V(absent).
  returned: always
  type: str
  sample: active
autostart:
  description: Whether the pool starts with libvirtd, afterwards.
  returned: always
  type: bool
  sample: true
restart_required:
  description: The pool runs on an older definition than the stored one; it takes effect at the next start
    (O(apply=restart) restarts it).
  returned: always
  type: bool
  sample: false
restart_reasons:
  description: The settings the running pool does not have yet, as C(what running -> stored) lines.
  returned: when RV(restart_required) is true
  type: list
  elements: str
  sample: ["target: /srv/old -> /srv/new"]
deleted_volumes:
  description: Volumes deleted with the pool (O(delete=true) with O(force=true)).
  returned: with O(delete=true)
  type: list
  elements: str
  sample: [web1.qcow2]
actions:
  description:
    - What was done, or would be in check mode, in order (V(define), V(build), V(create target directory),
      V(set permissions), V(destroy), V(start), V(autostart), V(no autostart), V(delete volume NAME),
      V(delete), V(undefine)). An action is listed only once it succeeded.
  returned: always
  type: list
  elements: str
  sample: [define, build, start, autostart]
differences:
  description: What differed from the request, as C(what before -> after) lines; empty when nothing did.
  returned: always
  type: list
  elements: str
  sample: ["pool: (none) -> defined", "target: /srv/images does not exist (build creates it)"]
pools:
  description: With O(pools), one result per item (name, state, autostart, restart_required, actions,
    differences ...), in order.
  returned: with O(pools)
  type: list
  elements: dict
volumes:
  description: The volumes that made O(delete=true) refuse.
  returned: on failure, when a pool to delete still has volumes
  type: list
  elements: str
  sample: [web1.qcow2]
domains:
  description: The running domains that made a stop or restart refuse.
  returned: on failure, when running domains use the pool
  type: list
  elements: str
  sample: [web1]
failed_object:
  description: The pool a failure is about, such as C(pool 'images').
  returned: on failure
  type: str
  sample: pool 'images'
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._pool import converge_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._pool_options import MODULE_OPTIONS, STRUCTURED_OPTIONS


def main():
    module = AnsibleModule(
        argument_spec=MODULE_OPTIONS,
        mutually_exclusive=[('pools', key) for key in ('name', 'xml') + STRUCTURED_OPTIONS],
        required_one_of=[('name', 'xml', 'pools')],
        supports_check_mode=True,
    )
    run_module(module, lambda result: converge_module(module, result))


if __name__ == '__main__':
    main()
