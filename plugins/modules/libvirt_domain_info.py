#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_domain_info
short_description: List libvirt domains with their state, resources, disks and interfaces
version_added: 0.1.0
description:
  - Reads every domain (or the ones named) over one connection. Settings come from the inactive definition,
    the one the next boot uses; O(xml=true) adds that definition with graphics passwords masked.
  - The addresses of a running domain's interfaces come from the sources in O(address_sources), each address
    with the source that reported it, and the domain's RV(domains[].address) is the first usable IPv4 address
    among them. The state of the guest agent comes from its channel (RV(domains[].guest_agent)).
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.info_module
  - virtops.hypervisor.attributes.platform_linux
  - virtops.hypervisor.libvirt
options:
  name:
    description: Only these domains. Names that do not exist are listed in RV(missing).
    type: list
    elements: str
  state:
    description: Only domains in these states.
    type: list
    elements: str
    choices: [running, paused, shutoff, shutdown, crashed, pmsuspended, nostate]
  xml:
    description: Also return each domain's inactive XML.
    type: bool
    default: false
  address_sources:
    description:
      - Where the addresses of running domains come from, in this order of preference whatever the order given.
      - V(lease) - the DHCP leases of libvirt's own networks (dnsmasq); an interface on a bridge or a network
        without DHCP has none.
      - V(agent) - the QEMU guest agent inside the guest, asked only while its channel is connected; it knows
        every address the guest has, also static ones and IPv6.
      - V(arp) - the host's ARP table (IPv4 only, no prefix); an entry exists only after the guest sent traffic
        to the host, and it may outlive the guest's address.
      - Each source costs a call per running domain; the agent call waits for the guest to answer. On hosts with
        many domains limit the sources to those the guests need, or give V([]) for no addresses at all.
    type: list
    elements: str
    choices: [lease, agent, arp]
    default: [lease, agent, arp]
    version_added: 1.1.0
seealso:
  - module: virtops.hypervisor.libvirt_domain
"""

EXAMPLES = r"""
- name: Every domain on the host
  virtops.hypervisor.libvirt_domain_info:
  register: vms

- name: Names of the running guests
  ansible.builtin.debug:
    msg: "{{ vms.domains | selectattr('state', 'eq', 'running') | map(attribute='name') }}"

- name: MAC addresses of two guests
  virtops.hypervisor.libvirt_domain_info:
    name: [web1, web2]
  register: web

- name: Show them
  ansible.builtin.debug:
    msg: "{{ web.domains | map(attribute='interfaces') | flatten | map(attribute='mac') }}"

- name: Addresses from the DHCP leases only (no guest agent calls)
  virtops.hypervisor.libvirt_domain_info:
    state: [running]
    address_sources: [lease]
  register: leased

- name: Each running guest with its address (null while it has no lease)
  ansible.builtin.debug:
    msg: "{{ leased.domains | items2dict(key_name='name', value_name='address') }}"
"""

RETURN = r"""
domains:
  description: The domains, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Domain name.
      type: str
      sample: web1
    uuid:
      description: Domain UUID.
      type: str
      sample: 4dea22b3-1d52-d8f3-2516-782e98ab3fa0
    state:
      description: Run state.
      type: str
      choices: [running, paused, shutoff, shutdown, crashed, pmsuspended, nostate]
      sample: running
    state_reason:
      description: libvirt's numeric reason for the state (virDomain*Reason), for example 1 (booted) for running.
      type: int
      sample: 1
    active:
      description: Whether the domain runs (also when paused).
      type: bool
      sample: true
    persistent:
      description: Whether the domain has a definition (false for transient domains).
      type: bool
      sample: true
    autostart:
      description: Whether libvirt starts the domain when the host boots.
      type: bool
      sample: false
    has_managed_save:
      description: Whether a saved state exists (the next start restores it).
      type: bool
      sample: false
    domain_type:
      description: Hypervisor type, V(kvm) or V(qemu) (TCG emulation).
      type: str
      sample: kvm
    memory_mib:
      description: Maximum memory in MiB.
      type: int
      sample: 1024
    current_memory_mib:
      description: Memory at boot in MiB.
      type: int
      sample: 1024
    vcpus:
      description: Number of virtual CPUs.
      type: int
      sample: 2
    arch:
      description: Guest architecture.
      type: str
      sample: x86_64
    machine:
      description: Machine type, as libvirt resolved it.
      type: str
      sample: pc-q35-7.2
    firmware:
      description: V(efi) (C(<os firmware='efi'>) or an OVMF pflash loader) or V(bios).
      type: str
      sample: bios
      version_added: 1.1.0
    cpu_mode:
      description: CPU mode, or null when the definition has no C(<cpu>).
      type: str
      sample: host-model
    cpu_model:
      description: CPU model for mode V(custom).
      type: str
      sample: qemu64
    boot:
      description: Boot devices in order and direct kernel boot settings.
      type: dict
      sample: {devices: [hd], kernel: null, initrd: null, cmdline: null}
    disks:
      description: Disks and CD-ROM drives.
      type: list
      elements: dict
      sample: [{device: disk, type: file, source: /var/lib/libvirt/images/web1.qcow2, target: vda, bus: virtio,
                format: qcow2, readonly: false}]
    interfaces:
      description: Network interfaces.
      type: list
      elements: dict
      sample: [{type: network, source: default, mac: "52:54:00:6b:3c:58", model: virtio,
                addresses: [{address: 192.168.122.10, prefix: 24, family: ipv4, source: lease}]}]
      contains:
        type:
          description: Interface type (network, bridge, user, direct...).
          type: str
          sample: network
        source:
          description: The network or bridge it is attached to.
          type: str
          sample: default
        mac:
          description: MAC address.
          type: str
          sample: "52:54:00:6b:3c:58"
        model:
          description: Device model.
          type: str
          sample: virtio
        addresses:
          description:
            - The addresses the sources in O(address_sources) report for this interface, in the order of the
              sources (lease, agent, arp); an address two sources report is listed once for each.
            - Empty when the domain does not run or no source knows an address yet.
          type: list
          elements: dict
          version_added: 1.1.0
          contains:
            address:
              description: The IPv4 or IPv6 address.
              type: str
              sample: 192.168.122.10
            prefix:
              description: Prefix length; null when the source does not know it (V(arp)).
              type: int
              sample: 24
            family:
              description: Address family.
              type: str
              choices: [ipv4, ipv6]
              sample: ipv4
            source:
              description: Where it comes from.
              type: str
              choices: [lease, agent, arp]
              sample: lease
    address:
      description:
        - The domain's first usable IPv4 address (not loopback or link-local) by source (lease, then agent, then
          arp), then interface order; null when none is known.
      type: str
      sample: 192.168.122.10
      version_added: 1.1.0
    guest_agent:
      description:
        - The QEMU guest agent's channel as libvirt sees it. V(connected) while qemu-ga runs in the guest,
          V(disconnected) when the channel exists but nothing answers on it (also when the domain does not run),
          V(absent) when the domain has no C(org.qemu.guest_agent.0) channel.
      type: str
      choices: [connected, disconnected, absent]
      sample: connected
      version_added: 1.1.0
    graphics:
      description: Graphics consoles (port -1 means chosen at start).
      type: list
      elements: dict
      sample: [{type: vnc, port: -1, listen: 127.0.0.1}]
    serial_console:
      description: Whether the domain has a serial port.
      type: bool
      sample: true
    tags:
      description: The domain's tags (M(virtops.hypervisor.libvirt_domain) O(virtops.hypervisor.libvirt_domain#module:tags)), sorted.
      type: list
      elements: str
      sample: [web, zone-a]
      version_added: 1.1.0
    metadata:
      description: The domain's key/value metadata (M(virtops.hypervisor.libvirt_domain) O(virtops.hypervisor.libvirt_domain#module:metadata)).
      type: dict
      sample: {role: frontend}
      version_added: 1.1.0
    xml:
      description: Inactive definition, graphics passwords masked.
      type: str
      returned: when O(xml=true)
missing:
  description: Names given in O(name) that no domain has (empty when O(state) filters).
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_addresses import SOURCES
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_info import domain_facts
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    STATE_NAMES, URI_OPTION, run_libvirt_module)


def main():
    module = AnsibleModule(
        argument_spec={
            'uri': dict(URI_OPTION),
            'name': {'type': 'list', 'elements': 'str'},
            'state': {'type': 'list', 'elements': 'str', 'choices': sorted(set(STATE_NAMES.values()))},
            'xml': {'type': 'bool', 'default': False},
            'address_sources': {'type': 'list', 'elements': 'str', 'choices': list(SOURCES), 'default': list(SOURCES)},
        },
        supports_check_mode=True,
    )
    run_libvirt_module(module, lambda conn, result: domain_facts(conn, module.params))


if __name__ == '__main__':
    main()
