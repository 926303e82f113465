# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain_info: domains as the modules describe them (state, resources, disks, interfaces)."""

from __future__ import annotations

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import STATE_NAMES, is_error, libvirt


def describe(dom, with_xml):
    """A domain as libvirt_domain_info returns it."""
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    info = dx.summarize(dx.parse(xml))
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
            info = describe(dom, params['xml'])
        except libvirt.libvirtError as exc:
            if is_error(exc, 'VIR_ERR_NO_DOMAIN'):
                continue  # undefined by someone else since it was listed
            raise
        if not states or info['state'] in states:
            found.append(info)
    missing = sorted(set(names or ()) - set(info['name'] for info in found)) if not states else []
    return {'domains': found, 'missing': missing}
