#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_domain
short_description: Define libvirt domains (VMs) and bring them to a run state, one or hundreds per call
version_added: 0.1.0
description:
  - Converges a libvirt domain's definition, autostart flag and run state. The definition is given either
    as structured options for the common case (memory, vCPUs, disks, interfaces...) or as a full O(xml)
    document.
  - B(Structured options) patch the definition libvirt holds. Settings the options do not name stay as
    they are, so a domain made elsewhere can be managed one setting at a time. Lists (O(disks),
    O(interfaces)) are complete; a disk or interface not in the list is removed.
  - B(Full XML) is compared with the inactive definition as libvirt normalized it. Each element and
    attribute of the XML must be in the definition (sizes in any unit, machine aliases such as V(pc) or
    V(q35) are compared as libvirt resolves them); what libvirt adds by itself (UUID, MAC and PCI
    addresses, controllers, memballoon, input, video, audio and console devices) is not a difference.
    A device of another kind that the XML leaves out is removed; so are C(<title>) and C(<description>).
  - The existing UUID and the MAC addresses of existing interfaces are kept in both forms, so a rerun
    never renumbers a guest's network identity. An interface is paired with an existing one by MAC, then
    by network or bridge, then by position.
  - Nothing is redefined unless a setting differs; check mode reports exactly what a real run would do.
    In diff mode the inactive XML (graphics passwords masked), run state and autostart are shown before
    and after. A changed definition of a running domain takes effect at its next boot; the module returns
    RV(restart_required) and restarts the guest only with O(apply=restart).
  - With O(domains), many domains converge in one call over one connection. Every item is validated before
    the first change; graceful shutdowns are requested for all items first and then awaited together. When
    libvirt refuses an item, the call stops there; the items before it report what was done to them (their
    state changes have not run), and nothing after it changes.
  - A change is reported only once it has been made, so a call that fails before changing anything reports
    C(changed=false).
  - Several runs may converge the same domains at the same time (two operators, overlapping jobs, forks
    delegating to one hypervisor). When a change fails because the domain is no longer what this run read
    (the other run defined, started, saved or removed it in between), the domain is read again and only what
    still differs is done, up to three times; both runs succeed and leave the state asked for.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.check_mode_full
  - virtops.hypervisor.attributes.diff_mode_full
  - virtops.hypervisor.attributes.platform_linux
  - virtops.hypervisor.libvirt
  - virtops.hypervisor.libvirt_domain
options:
  domains:
    description:
      - Several domains at once. Each item takes the options of a single domain (O(name) or O(xml), the
        structured options, O(clone_from), O(tags), O(metadata), O(cloud_init), O(state), O(autostart),
        O(shutdown_timeout), O(force), O(apply), O(remove_storage), O(wait_for), O(wait_timeout)).
      - O(state), O(autostart), O(shutdown_timeout), O(force), O(apply), O(remove_storage), O(wait_for) and
        O(wait_timeout) given at the top level are the defaults for items that do not set them.
      - Mutually exclusive with O(name), O(xml), O(clone_from), O(tags), O(metadata), O(cloud_init) and the
        structured options at the top level.
      - Clones of all items are planned (sources, pools, volumes to create) before the first change.
    type: list
    elements: dict
    suboptions:
      name:
        description: See O(name).
        type: str
      xml:
        description: See O(xml).
        type: str
      state:
        description: See O(state).
        type: str
        choices: [present, running, paused, shutdown, destroyed, saved, absent]
      autostart:
        description: See O(autostart).
        type: bool
      shutdown_timeout:
        description: See O(shutdown_timeout).
        type: int
      force:
        description: See O(force).
        type: bool
      apply:
        description: See O(apply).
        type: str
        choices: [next_boot, restart]
      remove_storage:
        description: See O(remove_storage).
        type: bool
      wait_for:
        description: See O(wait_for).
        type: str
        choices: [ip, agent, ssh]
        version_added: 1.1.0
      wait_timeout:
        description: See O(wait_timeout).
        type: int
        version_added: 1.1.0
      domain_type:
        description: See O(domain_type).
        type: str
      memory:
        description: See O(memory).
        type: int
      vcpus:
        description: See O(vcpus).
        type: int
      machine:
        description: See O(machine).
        type: str
      firmware:
        description: See O(firmware).
        type: str
        choices: [bios, efi]
        version_added: 1.1.0
      cpu:
        description: See O(cpu).
        type: dict
        suboptions:
          mode:
            description: See O(cpu.mode).
            type: str
            choices: [custom, host-model, host-passthrough, maximum]
            default: custom
          model:
            description: See O(cpu.model).
            type: str
      boot:
        description: See O(boot).
        type: dict
        suboptions:
          devices:
            description: See O(boot.devices).
            type: list
            elements: str
            choices: [hd, cdrom, network, fd]
          kernel:
            description: See O(boot.kernel).
            type: str
          initrd:
            description: See O(boot.initrd).
            type: str
          cmdline:
            description: See O(boot.cmdline).
            type: str
      disks:
        description: See O(disks).
        type: list
        elements: dict
        suboptions:
          path:
            description: See O(disks[].path).
            type: str
          volume:
            description: See O(disks[].volume).
            type: dict
            suboptions:
              pool:
                description: See O(disks[].volume.pool).
                type: str
                required: true
              name:
                description: See O(disks[].volume.name).
                type: str
                required: true
          device:
            description: See O(disks[].device).
            type: str
            choices: [disk, cdrom]
            default: disk
          bus:
            description: See O(disks[].bus).
            type: str
            choices: [virtio, sata, scsi, ide, usb]
          format:
            description: See O(disks[].format).
            type: str
          target:
            description: See O(disks[].target).
            type: str
          readonly:
            description: See O(disks[].readonly).
            type: bool
            default: false
      interfaces:
        description: See O(interfaces).
        type: list
        elements: dict
        suboptions:
          type:
            description: See O(interfaces[].type).
            type: str
            choices: [network, bridge, user]
          network:
            description: See O(interfaces[].network).
            type: str
          bridge:
            description: See O(interfaces[].bridge).
            type: str
          model:
            description: See O(interfaces[].model).
            type: str
            default: virtio
          mac:
            description: See O(interfaces[].mac).
            type: str
      serial_console:
        description: See O(serial_console).
        type: bool
      serial_log:
        description: See O(serial_log).
        type: path
      guest_agent:
        description: See O(guest_agent).
        type: bool
        version_added: 1.1.0
      graphics:
        description: See O(graphics).
        type: dict
        suboptions:
          type:
            description: See O(graphics.type).
            type: str
            choices: [none, vnc, spice]
            required: true
          listen:
            description: See O(graphics.listen).
            type: str
          port:
            description: See O(graphics.port).
            type: int
          password:
            description: See O(graphics.password).
            type: str
      tags:
        description: See O(tags).
        type: list
        elements: str
        version_added: 1.1.0
      metadata:
        description: See O(metadata).
        type: dict
        version_added: 1.1.0
      cloud_init:
        description: See O(cloud_init).
        type: dict
        version_added: 1.1.0
        suboptions:
          user_data:
            description: See O(cloud_init.user_data).
            type: raw
          meta_data:
            description: See O(cloud_init.meta_data).
            type: dict
          network_config:
            description: See O(cloud_init.network_config).
            type: raw
          vendor_data:
            description: See O(cloud_init.vendor_data).
            type: raw
          pool:
            description: See O(cloud_init.pool).
            type: str
      clone_from:
        description: See O(clone_from).
        type: dict
        version_added: 1.1.0
        suboptions:
          name:
            description: See O(clone_from.name).
            type: str
            required: true
          linked:
            description: See O(clone_from.linked).
            type: bool
            default: false
          pool:
            description: See O(clone_from.pool).
            type: str
notes:
  - The test driver (C(test:///default)) works too; its domains live as long as the module process.
  - Disks are not created, except the copies a clone gets (O(clone_from)); use M(virtops.hypervisor.qemu_image) or a
    storage pool for that.
seealso:
  - module: virtops.hypervisor.libvirt_domain_info
  - name: libvirt domain XML format
    description: Every element of a full O(xml).
    link: https://libvirt.org/formatdomain.html
"""

EXAMPLES = r"""
- name: A small guest from structured options, running
  virtops.hypervisor.libvirt_domain:
    name: web1
    memory: 1024
    vcpus: 2
    disks:
      - path: /var/lib/libvirt/images/web1.qcow2
    interfaces:
      - network: default
    serial_console: true
    autostart: true
    state: running

- name: Give web1 more memory, restart it now rather than at its next boot
  virtops.hypervisor.libvirt_domain:
    name: web1
    memory: 2048
    apply: restart
    state: running

- name: A guest from a full XML document
  virtops.hypervisor.libvirt_domain:
    xml: "{{ lookup('ansible.builtin.template', 'db1.xml.j2') }}"
    state: present

- name: Shut a guest down gracefully; power it off if it ignores ACPI for two minutes
  virtops.hypervisor.libvirt_domain:
    name: web1
    state: shutdown
    shutdown_timeout: 120
    force: true

- name: A whole host in one call, one connection
  virtops.hypervisor.libvirt_domain:
    state: running
    domains: "{{ guests | map('combine', {'interfaces': [{'network': 'default'}]}) }}"

- name: Three linked clones of a shut-off template, each with its own memory, running
  virtops.hypervisor.libvirt_domain:
    state: running
    domains:
      - {name: ci1, clone_from: {name: debian12-template, linked: true}, memory: 2048}
      - {name: ci2, clone_from: {name: debian12-template, linked: true}, memory: 2048}
      - {name: ci3, clone_from: {name: debian12-template, linked: true}, memory: 4096}

- name: A full clone whose disks go into another pool
  virtops.hypervisor.libvirt_domain:
    name: web2
    clone_from:
      name: web1
      pool: fast
    interfaces:
      - network: default

- name: Three guests running and answering on SSH, waited for together
  virtops.hypervisor.libvirt_domain:
    state: running
    wait_for: ssh
    wait_timeout: 600
    domains: "{{ guests }}"
  register: started

- name: Each of them in the inventory by the address it got
  ansible.builtin.add_host:
    name: "{{ item.name }}"
    ansible_host: "{{ item.address }}"
  loop: "{{ started.domains }}"
  loop_control:
    label: "{{ item.name }}"

- name: A guest from a cloud image, configured by cloud-init (the seed goes into the pool of its disk)
  virtops.hypervisor.libvirt_domain:
    name: web1
    memory: 1024
    vcpus: 2
    disks:
      - volume: {pool: images, name: web1.qcow2}
    interfaces:
      - network: default
    cloud_init:
      user_data:
        users:
          - name: ops
            sudo: ALL=(ALL) NOPASSWD:ALL
            ssh_authorized_keys: ["{{ lookup('ansible.builtin.file', 'ops.pub') }}"]
        packages: [nginx, qemu-guest-agent]
      meta_data:
        local-hostname: web1.example.org
      network_config:
        version: 2
        ethernets:
          eth0: {dhcp4: true}
    guest_agent: true
    tags: [web, zone-a]
    metadata:
      role: frontend
    state: running
    wait_for: agent

- name: New user data for a running guest, applied by restarting it (cloud-init runs again as a new instance)
  virtops.hypervisor.libvirt_domain:
    name: web1
    cloud_init:
      user_data: "{{ lookup('ansible.builtin.template', 'web1-user-data.yml.j2') }}"
    apply: restart
    state: running

- name: Tag a domain defined from full XML
  virtops.hypervisor.libvirt_domain:
    xml: "{{ lookup('ansible.builtin.file', 'db1.xml') }}"
    tags: [db]
    metadata: {backup: nightly}

- name: Remove a guest with its disks (disks other domains use are kept)
  virtops.hypervisor.libvirt_domain:
    name: old1
    state: absent
    remove_storage: true
"""

RETURN = r"""
name:
  description: Name of the domain (single-domain form).
  returned: when O(domains) is not used
  type: str
  sample: web1
state:
  description: Run state after the call (predicted in check mode), or V(absent).
  returned: when O(domains) is not used
  type: str
  sample: running
actions:
  description:
    - What was done (or would be done in check mode), in order. V(define), V(update), V(autostart),
      V(no_autostart), V(start), V(restore) (start from a saved state), V(resume), V(wakeup), V(pause),
      V(shutdown), V(restart), V(destroy), V(save), V(undefine), V(clone) (volumes and NVRAM created and the clone
      defined, O(clone_from)), V(create_seed) and V(update_seed) (the O(cloud_init) seed written, before the
      definition that attaches it), V(update_live_metadata) (O(tags) or O(metadata) set on the running domain).
    - An action is listed once it has been done; a call that failed lists only what it did before the failure.
    - With O(domains), the top-level list is empty and each item of RV(domains) has its own.
  returned: always
  type: list
  elements: str
  sample: [update, start]
clone:
  description:
    - What the clone was made of (in check mode, what it would be made of). RV(clone.volumes) are the volumes
      created for it, in the order of the source's disks; RV(clone.shared) the disk sources it shares with the source.
  returned: when O(clone_from) made the domain
  type: dict
  version_added: 1.1.0
  contains:
    source:
      description: The domain cloned.
      type: str
      sample: web1
    linked:
      description: Whether the volumes are overlays on the source's disks.
      type: bool
      sample: false
    pool:
      description: The pool of the new volumes; null when the source has no disk to copy.
      type: str
      sample: images
    volumes:
      description:
        - One entry per copied disk, with the source disk, the new volume and, for linked clones, its backing file.
      type: list
      elements: dict
      sample: [{target: vda, source: /var/lib/libvirt/images/web1.qcow2, pool: images, volume: web2-vda.qcow2,
                path: /var/lib/libvirt/images/web2-vda.qcow2, format: qcow2, backing: null}]
    nvram:
      description:
        - The source's NVRAM file and the clone's; C(copied) is false when the source has none yet (libvirt makes the
          clone's from the firmware template at its first start). Null for guests without NVRAM.
      type: dict
      sample: {source: /var/lib/libvirt/qemu/nvram/web1_VARS.fd, path: /var/lib/libvirt/qemu/nvram/web2_VARS.fd,
               copied: true}
    shared:
      description: Disk sources the clone uses as they are (CD-ROMs, read-only and shareable disks).
      type: list
      elements: str
      sample: [/var/lib/libvirt/images/tools.iso]
cloud_init:
  description:
    - The domain's cloud-init seed (O(cloud_init)) and whether this call wrote it (in check mode, would write it).
    - C(storage) is V(volume) (C(pool) and C(volume) set) or V(file) (C(path) set); C(size) in bytes; C(sha256) of
      the image; C(instance_id) as written in its meta data.
  returned: when O(cloud_init) is given (and the domain is not absent)
  type: dict
  version_added: 1.1.0
  sample: {storage: volume, pool: images, volume: web1-cidata.iso, path: null, size: 53248,
           sha256: "sha256:19b25856e1c150ca834cffc8b59b23adbd0ec0389e58eb22b3b64768098d002b",
           instance_id: web1-3f9a0c2b7d1e, written: true}
created:
  description: Whether the domain was defined by this call.
  returned: when the definition changed
  type: bool
  sample: false
differences:
  description:
    - For an existing domain whose definition differs from what was asked, what differed. For full XML, the
      paths in the XML and what they ask for; for structured options, the names of the settings. Empty when
      the definition is as asked or the domain is new.
    - With O(domains), the top-level list is empty and each item of RV(domains) has its own.
  returned: always
  type: list
  elements: str
  sample: ["domain/memory: 2097152 KiB, not 1048576 KiB"]
restart_required:
  description: The domain runs with settings that differ from its definition; they apply at its next boot.
  returned: when O(domains) is not used
  type: bool
  sample: true
restart_reasons:
  description:
    - The settings that differ between the running guest and its definition; V(guest_agent) when the agent
      channel was added or removed; V(cloud_init) when the seed changed since the guest booted (it read the old
      one).
  returned: when RV(restart_required) is true
  type: list
  elements: str
  sample: [memory_mib, vcpus]
restarted:
  description: The guest was shut down and started again to apply its definition (O(apply=restart)).
  returned: when it happened
  type: bool
  sample: true
removed_storage:
  description:
    - Disk sources deleted with the domain (O(remove_storage)); pairs of source kind and path. In check mode
      the ones that would be deleted; a source already gone (another run removed it) is not listed.
  returned: when O(state=absent) removed an existing domain
  type: list
  elements: list
  sample: [[file, /var/lib/libvirt/images/old1.qcow2]]
kept_storage:
  description: Disk sources not deleted although O(remove_storage) was set, with the reason.
  returned: when O(state=absent) removed an existing domain
  type: list
  elements: dict
  sample: [{source: /var/lib/libvirt/images/base.qcow2, reason: used by another domain}]
address:
  description:
    - The domain's first usable IPv4 address (lease, then guest agent, then ARP table), or null. In check mode
      null for a domain the run would start.
  returned: when O(wait_for) is set
  type: str
  sample: 10.79.0.10
  version_added: 1.1.0
addresses:
  description:
    - Every address found for the domain's interfaces, in interface order, each with the source that reported
      it and the MAC address of its interface (the entries of M(virtops.hypervisor.libvirt_domain_info)'s
      C(interfaces[].addresses), plus C(mac)). An address two sources report is listed once for each.
  returned: when O(wait_for) is set
  type: list
  elements: dict
  sample: [{address: 10.79.0.10, prefix: 24, family: ipv4, source: lease, mac: "52:54:00:00:79:10"}]
  version_added: 1.1.0
guest_agent:
  description:
    - The guest agent channel's state, V(connected), V(disconnected) or V(absent) (no channel); null when the
      domain was not looked at (check mode, a domain the run would start).
  returned: when O(wait_for) is set
  type: str
  sample: connected
  version_added: 1.1.0
wait:
  description:
    - How the wait for O(wait_for) went. C(ready) is whether the goal was reached, C(seconds) how long it took
      (or how long was waited). On a timeout the task fails; the domains that were ready say so here.
  returned: when O(wait_for) is set
  type: dict
  sample: {for: ssh, ready: true, seconds: 41.3}
  version_added: 1.1.0
  contains:
    for:
      description: The goal, O(wait_for).
      type: str
      choices: [ip, agent, ssh]
    ready:
      description: Whether the goal was reached (in check mode, at the one look; false without a look).
      type: bool
    seconds:
      description: Seconds from the end of the state changes to the last look.
      type: float
failed_object:
  description: The domain a failure is about.
  returned: on failure, when it is about one domain
  type: str
  sample: "domain 'web1'"
domains:
  description:
    - One result per item of O(domains), in order, with the keys above. When an item fails, the list ends
      with it.
  returned: when O(domains) is used
  type: list
  elements: dict
  sample: [{name: web1, changed: true, state: running, actions: [start], differences: [], restart_required: false}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain import converge_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_options import (
    MODULE_OPTIONS, STRUCTURED_OPTIONS)


def main():
    module = AnsibleModule(
        argument_spec=MODULE_OPTIONS,
        mutually_exclusive=[('domains', key) for key in ('name', 'xml', 'clone_from', 'tags', 'metadata', 'cloud_init')
                            + STRUCTURED_OPTIONS],
        required_one_of=[('name', 'xml', 'domains')],
        supports_check_mode=True,
    )
    run_module(module, lambda result: converge_module(module, result))


if __name__ == '__main__':
    main()
