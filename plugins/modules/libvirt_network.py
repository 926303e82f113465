#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_network
short_description: Define libvirt virtual networks and change their DHCP and DNS hosts without a restart
version_added: 1.1.0
description:
  - Converges a libvirt network's definition, autostart flag and run state. The definition is given either as
    structured options (O(forward), O(bridge), O(ipv4), O(ipv6), O(dns_hosts)...) or as a full O(xml) document.
  - B(Structured options) describe the network completely for what they cover; options left out stay as
    libvirt has them. O(ipv4) and O(ipv6) are whole blocks (address, prefix, DHCP range and hosts), and the
    host lists are complete; a DHCP or DNS host not listed is removed. Settings the options do not cover (NAT
    port ranges, DNS forwarders, TFTP, BOOTP) are kept.
  - B(Full XML) is compared with the definition libvirt stores, leaving out what libvirt adds by itself where
    the XML does not have it (UUID, bridge MAC address, bridge name, C(stp) and C(delay)).
  - The UUID, the bridge's MAC address and a bridge name libvirt chose are kept in both forms, so a rerun
    never sees them as a difference.
  - On a B(running) network, DHCP hosts (O(ipv4.dhcp.hosts), O(ipv6.dhcp.hosts)) and O(dns_hosts) are added,
    changed and removed with virNetworkUpdate, in the running network and its stored definition together;
    the network does not restart, dnsmasq keeps running (it rereads its hosts files) and guests keep their
    leases. Any other difference is stored for the next start and returned
    in RV(restart_reasons); the module restarts the network only with O(apply=restart).
  - Stopping, restarting or removing a network that running domains use would cut them off. The module refuses
    and names the domains unless O(force=true).
  - With O(networks), many networks converge in one call over one connection. Every item is validated before the
    first change (addresses inside the subnet, ranges in order, no MAC, IP or name twice among the hosts,
    bridge names libvirt takes); an error names the item, for example C(networks[1].ipv4.dhcp.hosts[0].ip).
  - Check mode reports exactly what a real run does; diff mode shows the network before and after as readable
    lines, and RV(differences) lists each difference.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.check_mode_full
  - virtops.hypervisor.attributes.diff_mode_full
  - virtops.hypervisor.attributes.platform_linux
  - virtops.hypervisor.libvirt
options:
  networks:
    description:
      - Several networks at once. Each item takes the options of a single network (O(name) or O(xml), the
        structured options, O(state), O(autostart), O(apply), O(force)).
      - O(state), O(autostart), O(apply) and O(force) given at the top level are the defaults for items that
        do not set them.
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
      state:
        description: See O(state).
        type: str
        choices: [present, active, inactive, absent]
      autostart:
        description: See O(autostart).
        type: bool
      apply:
        description: See O(apply).
        type: str
        choices: [next_start, restart]
      force:
        description: See O(force).
        type: bool
      forward:
        description: See O(forward).
        type: str
        choices: [nat, route, open, isolated, bridge, macvtap]
      bridge:
        description: See O(bridge).
        type: str
      interface:
        description: See O(interface).
        type: str
      mtu:
        description: See O(mtu).
        type: int
      domain:
        description: See O(domain).
        type: str
      ipv4:
        description: See O(ipv4).
        type: dict
        suboptions: &ip_options
          address:
            description: The host's address on the network (the gateway guests get). Leave out (V({})) to remove the block.
            type: str
          prefix:
            description: Prefix length of the subnet.
            type: int
          dhcp:
            description: DHCP on the network; left out, the network hands out no addresses.
            type: dict
            suboptions:
              range:
                description: The addresses handed out to guests without a reserved one.
                type: dict
                suboptions:
                  start:
                    description: First address, inside the subnet.
                    type: str
                    required: true
                  end:
                    description: Last address, inside the subnet and not before O(ipv4.dhcp.range.start).
                    type: str
                    required: true
              hosts:
                description:
                  - Reserved addresses, the complete list. IPv4 hosts are matched by O(ipv4.dhcp.hosts[].mac)
                    (or name); IPv6 hosts by name.
                type: list
                elements: dict
                suboptions:
                  mac:
                    description: The guest interface's MAC address (IPv4 only).
                    type: str
                  ip:
                    description: The reserved address, inside the subnet.
                    type: str
                  name:
                    description: Host name dnsmasq hands out with the address.
                    type: str
      ipv6:
        description: See O(ipv6).
        type: dict
        suboptions: *ip_options
      dns_hosts:
        description: See O(dns_hosts).
        type: list
        elements: dict
        suboptions: &dns_options
          ip:
            description: The address the names resolve to.
            type: str
            required: true
          names:
            description: Host names.
            type: list
            elements: str
            required: true
  name:
    description: Name of the network. With O(xml), optional; it must then match the XML's C(<name>).
    type: str
  xml:
    description:
      - The full network definition, instead of the structured options.
    type: str
  state:
    description:
      - V(present) defines the network and leaves its run state as it is.
      - V(active) defines and starts it; V(inactive) defines it and stops it.
      - V(absent) stops and undefines it.
      - Default V(active).
    type: str
    choices: [present, active, inactive, absent]
  autostart:
    description: Start the network when libvirtd starts. Left out, the flag is not changed (a new network gets V(false)).
    type: bool
  apply:
    description:
      - What to do when a running network differs in settings that need a restart (anything but DHCP and DNS
        hosts). V(next_start) stores the new definition and returns RV(restart_required); V(restart) stops and
        starts the network (refused while running domains use it, unless O(force)).
      - Default V(next_start).
    type: str
    choices: [next_start, restart]
  force:
    description:
      - Stop, restart or remove the network even when running domains use it; they lose their connection
        (libvirt does not reattach them).
      - Default V(false).
    type: bool
  forward:
    description:
      - V(nat) (guests reach out through the host's address), V(route) (routed, no NAT), V(open) (no firewall rules),
        V(isolated) (guests and host only), V(bridge) (guests join an existing host bridge O(bridge)),
        V(macvtap) (guests share the host interface O(interface) through macvtap).
      - A new network without O(forward) is isolated, as libvirt makes it.
    type: str
    choices: [nat, route, open, isolated, bridge, macvtap]
  bridge:
    description:
      - The bridge libvirt creates for the network (up to 15 characters), or with O(forward=bridge) the existing
        host bridge. Left out, libvirt picks a name (C(virbr1)...) and the module keeps it.
    type: str
  interface:
    description: The host interface that V(route), V(nat) and V(macvtap) networks forward to.
    type: str
  mtu:
    description: MTU of the network's bridge.
    type: int
  domain:
    description: DNS domain of the network (dnsmasq answers for names in it).
    type: str
  ipv4:
    description:
      - The network's IPv4 block, complete (address, prefix, DHCP range and hosts). V({}) removes it.
    type: dict
    suboptions: *ip_options
  ipv6:
    description:
      - The network's IPv6 block, with the keys of O(ipv4). DHCP hosts are matched by name; C(mac) is refused.
    type: dict
    suboptions: *ip_options
  dns_hosts:
    description: DNS host records dnsmasq serves, the complete list (V([]) removes all).
    type: list
    elements: dict
    suboptions: *dns_options
notes:
  - The test driver (C(test:///default)) works too; it keeps networks for as long as the module process runs
    and lists no DHCP leases.
seealso:
  - module: virtops.hypervisor.libvirt_network_info
  - name: libvirt network XML format
    description: What the O(xml) option takes.
    link: https://libvirt.org/formatnetwork.html
"""

EXAMPLES = r"""
- name: A NAT network with reserved addresses and DNS names
  virtops.hypervisor.libvirt_network:
    name: lab
    forward: nat
    bridge: virbr-lab
    domain: lab.internal
    ipv4:
      address: 10.77.0.1
      prefix: 24
      dhcp:
        range: {start: 10.77.0.100, end: 10.77.0.199}
        hosts:
          - {mac: "52:54:00:00:77:10", ip: 10.77.0.10, name: web1}
    dns_hosts:
      - {ip: 10.77.0.10, names: [web1.lab.internal]}
    autostart: true
    state: active

- name: Several networks in one call; all inactive unless an item says otherwise
  virtops.hypervisor.libvirt_network:
    state: inactive
    networks:
      - {name: backend, forward: isolated, ipv4: {address: 10.78.0.1, prefix: 24}}
      - {name: uplink, forward: bridge, bridge: br0, state: active}

- name: Change the MTU of a running network and restart it (refused while guests use it)
  virtops.hypervisor.libvirt_network:
    name: lab
    mtu: 9000
    apply: restart

- name: A network from full XML
  virtops.hypervisor.libvirt_network:
    xml: "{{ lookup('ansible.builtin.file', 'files/storage-net.xml') }}"

- name: Remove a network, even if guests still use it
  virtops.hypervisor.libvirt_network:
    name: old-lab
    state: absent
    force: true
"""

RETURN = r"""
name:
  description: Name of the network.
  type: str
  returned: when O(networks) is not used
  sample: lab
state:
  description: The network's state afterwards (V(active), V(inactive) or V(absent)).
  type: str
  returned: when O(networks) is not used
  sample: active
autostart:
  description: Whether the network starts with libvirtd.
  type: bool
  returned: when O(networks) is not used
uuid:
  description: UUID of the network (null when absent, and for a new network in check mode).
  type: str
  returned: when O(networks) is not used
  sample: 4cd8a5f4-3e3f-4ad5-9c8f-5a3a0c1f8a10
bridge:
  description: The bridge's name (null when absent, for macvtap, and when libvirt has not picked one yet in check mode).
  type: str
  returned: when O(networks) is not used
  sample: virbr-lab
restart_required:
  description: The running network differs from its stored definition in settings that take effect only when it restarts.
  type: bool
  returned: when O(networks) is not used
restart_reasons:
  description: What differs between the running network and the definition, one line each.
  type: list
  elements: str
  returned: when O(networks) is not used
  sample: ["mtu: 1500 -> 9000"]
actions:
  description: What was done (in check mode, would be done), in order.
  type: list
  elements: str
  returned: always
  sample: [define, update hosts (2), autostart, start]
differences:
  description:
    - "Each difference between the network and what was asked, as C(what: before -> after), or for host lists
      C(ipv4.dhcp.hosts: + 52:54:00:00:77:10 10.77.0.10 web1)."
  type: list
  elements: str
  returned: always
  sample: ["ipv4.dhcp.hosts: + 52:54:00:00:77:10 10.77.0.10 web1", "autostart: false -> true"]
domains:
  description: The running domains that use the network, when the module refused to stop it because of them.
  type: list
  elements: str
  returned: on that failure
networks:
  description:
    - One result per item of O(networks), in order, with the keys above. When an item fails, the list ends with it.
  type: list
  elements: dict
  returned: when O(networks) is used
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import run_libvirt_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._network import converge_networks
from ansible_collections.virtops.hypervisor.plugins.module_utils._network_spec import MODULE_OPTIONS, STRUCTURED_OPTIONS


def main():
    module = AnsibleModule(
        argument_spec=MODULE_OPTIONS,
        mutually_exclusive=[('networks', key) for key in ('name', 'xml') + STRUCTURED_OPTIONS],
        required_one_of=[('name', 'xml', 'networks')],
        supports_check_mode=True,
    )
    run_libvirt_module(module, lambda conn, result: converge_networks(conn, module, result))


if __name__ == '__main__':
    main()
