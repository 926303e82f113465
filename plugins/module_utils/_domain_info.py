# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain_info: domains as the modules describe them (state, resources, disks, interfaces), with the
addresses of their interfaces and the state of their guest agent."""

from __future__ import annotations

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_addresses as da
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import STATE_NAMES, is_error, libvirt


def describe(dom, with_xml, address_sources=da.SOURCES):
    """A domain as libvirt_domain_info returns it."""
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    root = dx.parse(xml)
    info = dx.summarize(root)
    info.update(_addresses(dom, root, info['interfaces'], address_sources))
    state, reason = dom.state()
    info.update({
        'name': dom.name(),
        'uuid': dom.UUIDString(),
        'state': STATE_NAMES.get(state, 'nostate'),
        'state_reason': reason,
        'active': bool(dom.isActive()),
        'persistent': bool(dom.isPersistent()),
        'autostart': bool(dom.autostart()) if dom.isPersistent() else False,
        'has_managed_save': bool(dom.hasManagedSaveImage(0)) if dom.isPersistent() else False,
    })
    if with_xml:
        info['xml'] = dx.mask_secrets(xml)
    return info


def _addresses(dom, inactive_root, interfaces, sources):
    """guest_agent and address of a domain; each of its interfaces gets the addresses the sources report
    (matched by MAC: the settings come from the inactive definition, the addresses from the running guest)."""
    live_root = da.live_root(dom) if dom.isActive() else inactive_root
    live = da.interface_addresses(dom, sources, live_root)
    by_mac = {entry['mac']: entry['addresses'] for entry in live}
    for interface in interfaces:
        interface['addresses'] = by_mac.get((interface['mac'] or '').lower(), [])
    return {'guest_agent': da.agent_state_of(live_root), 'address': da.primary_address(live, sources)}


def domain_facts(conn, params):
    """What libvirt_domain_info returns: the domains asked for (all by default), filtered by state, and the
    names asked for that do not exist (when no state filter is given)."""
    names = params['name']
    states = params['state']
    found = []
    for dom in sorted(conn.listAllDomains(0), key=lambda item: item.name()):
        if names and dom.name() not in names:
            continue
        try:
            info = describe(dom, params['xml'], _sources(params))
        except libvirt.libvirtError as exc:
            if is_error(exc, 'VIR_ERR_NO_DOMAIN'):
                continue  # undefined by someone else since it was listed
            raise
        if not states or info['state'] in states:
            found.append(info)
    missing = sorted(set(names or ()) - set(info['name'] for info in found)) if not states else []
    return {'domains': found, 'missing': missing}


def _sources(params):
    """The address sources asked for, in libvirt_domain_info's order of preference (lease, agent, arp)."""
    asked = params.get('address_sources')
    return da.SOURCES if asked is None else tuple(source for source in da.SOURCES if source in asked)
