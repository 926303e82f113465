#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_network_info
short_description: Describe libvirt networks, their DHCP hosts and current DHCP leases
version_added: 1.1.0
description:
  - Returns each network's state, autostart flag, bridge, addresses, DHCP and DNS hosts in the form
    M(virtops.hypervisor.libvirt_network) takes them, and the DHCP leases dnsmasq has handed out.
  - For a running network the running definition is described, otherwise the stored one.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.info_module
  - virtops.hypervisor.attributes.platform_linux
  - virtops.hypervisor.libvirt
options:
  networks:
    description: Names of the networks to describe; all networks when left out.
    type: list
    elements: str
seealso:
  - module: virtops.hypervisor.libvirt_network
"""

EXAMPLES = r"""
- name: The lab network and its leases
  virtops.hypervisor.libvirt_network_info:
    networks: [lab]
  register: lab

- name: Show the address the guest web1 got
  ansible.builtin.debug:
    msg: "{{ lab.networks[0].leases | selectattr('hostname', 'equalto', 'web1') | map(attribute='ip') | first }}"
"""

RETURN = r"""
networks:
  description: The networks found, sorted by name.
  type: list
  elements: dict
  returned: always
  contains:
    name:
      description: Name of the network.
      type: str
      sample: lab
    uuid:
      description: UUID of the network.
      type: str
    state:
      description: V(active) or V(inactive).
      type: str
      sample: active
    active:
      description: Whether the network runs.
      type: bool
    persistent:
      description: Whether the network is defined (not only running).
      type: bool
    autostart:
      description: Whether the network starts with libvirtd.
      type: bool
    forward:
      description: Forward mode, as O(virtops.hypervisor.libvirt_network#module:forward) takes it.
      type: str
      sample: nat
    bridge:
      description: Name of the bridge (null for macvtap).
      type: str
      sample: virbr-lab
    interface:
      description: The host interface the network forwards to, if one is set.
      type: str
    mtu:
      description: MTU of the bridge when set.
      type: int
    domain:
      description: DNS domain of the network.
      type: str
    ipv4:
      description: The IPv4 block (address, prefix, dhcp with range and hosts), or null.
      type: dict
      sample: {address: 10.77.0.1, prefix: 24, dhcp: {range: {start: 10.77.0.100, end: 10.77.0.199}, hosts: []}}
    ipv6:
      description: The IPv6 block with the keys of RV(networks[].ipv4), or null.
      type: dict
    addresses:
      description: The network's own addresses with prefix.
      type: list
      elements: str
      sample: [10.77.0.1/24]
    dhcp_hosts:
      description: The reserved addresses of both families, each with mac, ip, name and family.
      type: list
      elements: dict
      sample: [{mac: "52:54:00:00:77:10", ip: 10.77.0.10, name: web1, family: ipv4}]
    dns_hosts:
      description: DNS host records, each with ip and names.
      type: list
      elements: dict
    leases:
      description:
        - The current DHCP leases of a running network (empty when inactive), each with mac, ip, prefix,
          hostname, client_id, family, expiry_time (seconds since the epoch) and expiry (UTC, ISO 8601).
        - Null when the libvirt driver cannot list leases (the test driver); a warning says so.
      type: list
      elements: dict
      sample: [{mac: "52:54:00:00:77:10", ip: 10.77.0.10, prefix: 24, hostname: web1, client_id: null,
                family: ipv4, expiry_time: 1795000000, expiry: "2026-11-18T09:06:40Z"}]
missing:
  description: Names given in O(networks) that do not exist.
  type: list
  elements: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION, run_libvirt_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._network import network_facts


def main():
    module = AnsibleModule(
        argument_spec={'uri': dict(URI_OPTION), 'networks': {'type': 'list', 'elements': 'str'}},
        supports_check_mode=True,
    )
    run_libvirt_module(module, lambda conn, result: network_facts(conn, module.params, result))


if __name__ == '__main__':
    main()
