#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_migration
short_description: Move libvirt domains to another host, live or offline, with or without their storage
version_added: 1.1.0
description:
  - Moves the domains named by O(name) or O(domains) from the host of O(uri) (by default the host the module
    runs on) to the host of O(destination). The module drives the migration itself (libvirt's
    C(virDomainMigrate3) with a connection to each host), so the host it runs on must be able to open
    O(destination); QEMU's data then goes straight from the source to O(migration_address).
  - Idempotent. A domain that is on the destination and gone from the source is reported with
    RV(migrations[].status=present) and not touched. A domain defined on both hosts is refused, naming both;
    with O(undefine_source=false) a shut-off definition left on the source by an earlier move is expected.
  - A preflight checks every domain of the call before the first one moves, and fails with every reason and
    nothing moved when one does not hold. The two hosts must differ in host UUID and host name (libvirt refuses
    "to migrate to the same host"; hosts cloned from one image share a UUID until C(host_uuid) is set in
    libvirtd.conf). The guest's CPU model must be compatible with the destination (libvirt's
    C(compareHypervisorCPU); skipped for guests without a CPU model and for C(host-passthrough)). The
    destination must have the memory of all live moves of the call available (free memory plus page cache).
    The files must be there or possible to create (see O(storage)). The migration address must be reachable
    from the source (see O(migration_port)).
  - To look at a directory that no storage pool holds (on either host), the module starts a transient C(dir)
    pool named C(virtops-migration-<hash>) over it and stops it again before it returns, in check mode too.
  - The moves run O(concurrency) at a time. When one fails, no further move starts, the ones running finish,
    and the files the module had created on the destination for the failed one are removed; the failed domain
    keeps running on the source.
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
    description: The domain to move. Mutually exclusive with O(domains).
    type: str
  domains:
    description: Several domains to move in one call, preflighted together, moved O(concurrency) at a time.
    type: list
    elements: str
  destination:
    description:
      - libvirt URI of the destination host, as the host the module runs on opens it, for example
        V(qemu+ssh://root@kvm2/system), V(qemu+tls://kvm2/system) or V(qemu+tcp://10.0.0.2/system). The kvm_host
        role's C(kvm_host_migration) sets up these transports between the hosts of a group.
    type: str
    required: true
  migration_address:
    description:
      - The address the source's QEMU sends memory and disks to (libvirt's C(--migrateuri) and C(--disks-uri)).
      - Default the host part of O(destination). Without it QEMU would dial the name the destination gives
        itself, which the source may not resolve.
    type: str
  migration_port:
    description:
      - Pin the port of the migration stream on the destination (C(tcp://address:port)). Without it libvirt picks
        one of the destination's C(migration_port_min)..C(migration_port_max) (49152..49215 by default).
      - The preflight opens a TCP connection from the source to this port (or 49152) of O(migration_address). A
        refused connection passes (nothing listens until a move starts); no answer within 3 seconds, or no route,
        fails the preflight. Only when the module runs on the source host (O(uri) names no host).
    type: int
  mode:
    description:
      - V(live) moves running (or paused) domains while they run; the guest does not restart.
      - V(offline) moves shut-off domains, their persistent definition and, unless O(storage=shared), their files.
    type: str
    choices: [live, offline]
    default: live
  storage:
    description:
      - V(shared) expects every disk at the same path on the destination (shared storage); the preflight checks it
        is there wherever a storage pool, or a transient pool over its directory, can show it.
      - V(copy) copies the disks. For a live move, an empty image of each disk's size and format is created first
        on the destination at the same path (in the pool that holds its directory), and libvirt copies the whole
        disk, backing chain flattened, into it (C(--copy-storage-all)).
      - V(copy_incremental) copies the top image only (C(--copy-storage-inc)); its backing files must be on the
        destination already, the module creates the overlay on them.
        Disks of C(type=volume) cannot move live this way (libvirt refuses to), the preflight says so.
      - Read-only disks (CD-ROMs such as a cloud-init seed) and the NVRAM file are copied byte for byte with
        V(copy) and V(copy_incremental), as libvirt does not copy them. An offline move copies every disk file
        byte for byte (with V(copy) also the backing files the destination lacks).
      - Kernel, initrd, DTB and loader files are never copied; they must be on the destination.
      - A disk file already on the destination is used when its format and size fit, and is never removed.
    type: str
    choices: [shared, copy, copy_incremental]
    default: shared
  persistent:
    description: Define the domain persistently on the destination (C(--persistent)). Offline moves always do.
    type: bool
    default: true
  undefine_source:
    description: Remove the domain's definition from the source after the move (C(--undefinesource)). Its disk
      files on the source are kept.
    type: bool
    default: true
  bandwidth:
    description: Limit of the migration stream, MiB/s (also for the disks). V(0) or unset, no limit.
    type: int
  max_downtime:
    description: Longest pause of the guest at the switch-over, in milliseconds (libvirt's default is 300).
    type: int
  auto_converge:
    description: Slow the guest's vCPUs down when memory is written faster than it is sent (C(--auto-converge)).
    type: bool
    default: false
  postcopy:
    description:
      - Switch to post-copy after the first pass over memory. The guest then runs on the destination at once and
        fetches the pages still missing over the network; the move always completes, and a network failure after
        the switch loses the guest.
      - Needs userfaultfd on the destination.
    type: bool
    default: false
  parallel_connections:
    description: Send memory over this many connections (C(--parallel)).
    type: int
  compressed:
    description: Compress repeated pages (C(--compressed), XBZRLE).
    type: bool
    default: false
  unsafe:
    description:
      - Move with O(storage=shared) although libvirt cannot see that a disk is on shared storage
        (C(--unsafe)). libvirt refuses ("Migration without shared storage is unsafe") when a disk's file system
        is not one it knows to be shared (NFS, GlusterFS, Ceph, GPFS...) and its cache mode is not C(none) or
        C(directsync). Set it only when the storage really is shared, for example a cluster file system
        libvirt does not recognize.
    type: bool
    default: false
  timeout:
    description:
      - Abort a move that has not finished after this many seconds; the guest keeps running on the source, the
        files created for it on the destination are removed, and the call fails.
      - A job that has switched to post-copy is not aborted.
    type: int
  concurrency:
    description: How many moves run at the same time.
    type: int
    default: 1
notes:
  - The module needs libvirt-python where it runs, a connection to both hosts, and for V(qemu+ssh) URIs a key that
    logs in without a prompt.
  - QEMU moves guests between hosts of the same accelerator; TCG guests move between TCG hosts.
seealso:
  - module: virtops.hypervisor.libvirt_domain
  - module: virtops.hypervisor.libvirt_domain_info
  - name: libvirt migration guide
    description: Transports, storage and the flags the options map to.
    link: https://libvirt.org/migration.html
"""

EXAMPLES = r"""
- name: Move web1 to kvm2 while it runs, copying its disks
  virtops.hypervisor.libvirt_migration:
    name: web1
    destination: qemu+ssh://root@kvm2.example.com/system
    storage: copy

- name: Empty kvm1 onto kvm2, two at a time, at most 2 minutes each
  virtops.hypervisor.libvirt_migration:
    domains: "{{ guests_on_kvm1 }}"
    destination: qemu+tls://kvm2.example.com/system
    migration_address: 10.0.20.2
    storage: copy
    concurrency: 2
    timeout: 120
    bandwidth: 500
    auto_converge: true
  register: moved

- name: Move a shut-off domain with its files
  virtops.hypervisor.libvirt_migration:
    name: batch7
    destination: qemu+ssh://root@kvm3.example.com/system
    mode: offline
    storage: copy
"""

RETURN = r"""
source:
  description: The host name of the source, as its libvirt reports it.
  returned: when the preflight passed
  type: str
  sample: kvm1
destination:
  description: The host name of the destination.
  returned: when the preflight passed
  type: str
  sample: kvm2
source_uuid:
  description: The source's host UUID.
  returned: when the preflight passed
  type: str
  sample: 3f1c0c8e-6a4e-4d1b-9a7e-1f0c7a9b2d11
destination_uuid:
  description: The destination's host UUID.
  returned: when the preflight passed
  type: str
  sample: 7d2b9e40-1c3a-4f5e-8b6d-2a9c0e4f1b22
migration_address:
  description: The address QEMU sends to.
  returned: when the preflight passed
  type: str
  sample: 10.0.20.2
actions:
  description: What was done (or would be in check mode), in order, for all domains.
  returned: always
  type: list
  elements: str
  sample: ["create an empty qcow2 image on kvm2 for disk vda (/var/lib/libvirt/images/web1.qcow2)",
           "migrate web1 live to kvm2 with storage copy"]
migrations:
  description: One item per domain of the call, in the order given.
  returned: when the preflight passed
  type: list
  elements: dict
  contains:
    name:
      description: The domain.
      type: str
      sample: web1
    status:
      description: V(moved) (or would be, in check mode), V(present) (on the destination already), V(failed), or
        V(not_started) (after another move of the call failed).
      type: str
      sample: moved
    state:
      description: Its run state, on the destination after the move.
      type: str
      sample: running
    persistent:
      description: Whether it is defined persistently on the destination.
      type: bool
      returned: after a move
    postcopy:
      description: Whether the move switched to post-copy.
      type: bool
      returned: after a live move
    error:
      description: Why the move failed.
      type: str
      returned: when RV(migrations[].status=failed)
    removed_again:
      description: The files the module had created or copied on the destination for a move that failed, and
        removed again (they are not in RV(migrations[].actions), as the call leaves the destination as it was).
      type: list
      elements: str
      returned: when a failed move had created files
    actions:
      description: What was done for this domain.
      type: list
      elements: str
    job:
      description: The statistics of the finished job, as libvirt counts them (those of an offline move are few).
      type: dict
      returned: after a move
      contains:
        seconds:
          description: Wall time of the move as the module measured it, files included.
          type: float
          sample: 1.41
        elapsed_ms:
          description: Time of the migration job.
          type: int
          sample: 1236
        downtime_ms:
          description: How long the guest was paused at the switch-over.
          type: int
          sample: 86
        data_transferred:
          description: Bytes sent in all.
          type: int
        memory_transferred:
          description: Bytes of memory sent.
          type: int
        memory_iterations:
          description: Passes over the guest's memory.
          type: int
          sample: 3
        disk_transferred:
          description: Bytes of disk copied, where libvirt reports them.
          type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION, run_libvirt_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._migration import MigrationManager


def main():
    module = AnsibleModule(
        argument_spec=dict(
            uri=URI_OPTION,
            name=dict(type='str'),
            domains=dict(type='list', elements='str'),
            destination=dict(type='str', required=True),
            migration_address=dict(type='str'),
            migration_port=dict(type='int'),
            mode=dict(type='str', choices=['live', 'offline'], default='live'),
            storage=dict(type='str', choices=['shared', 'copy', 'copy_incremental'], default='shared'),
            persistent=dict(type='bool', default=True),
            undefine_source=dict(type='bool', default=True),
            bandwidth=dict(type='int'),
            max_downtime=dict(type='int'),
            auto_converge=dict(type='bool', default=False),
            postcopy=dict(type='bool', default=False),
            parallel_connections=dict(type='int'),
            compressed=dict(type='bool', default=False),
            unsafe=dict(type='bool', default=False),
            timeout=dict(type='int'),
            concurrency=dict(type='int', default=1),
        ),
        mutually_exclusive=[('name', 'domains')],
        required_one_of=[('name', 'domains')],
        supports_check_mode=True,
    )
    run_libvirt_module(module, lambda conn, result: MigrationManager(conn, module, result).run())


if __name__ == '__main__':
    main()
