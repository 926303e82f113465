# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Converge libvirt networks (libvirt_network) and describe them (libvirt_network_info).

Every item is validated first (``_network_spec``). Each network is then read once (its stored and, when
it runs, its live definition), compared with what was asked (``_network_plan``) and changed through
``Result.perform``: DHCP and DNS hosts of a running network with virNetworkUpdate (live and stored
together), anything else by defining the network again, which takes effect when it next starts. The
module restarts a running network only with ``apply: restart``, and stops one that running domains use
only with ``force``.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET

from ansible_collections.virtops.hypervisor.plugins.module_utils import _network_plan as plan
from ansible_collections.virtops.hypervisor.plugins.module_utils import _network_xml as nx
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    LibvirtFailure, ObjectReading, error_text, is_error, libvirt, lookup_by_name, read_object, retry_on_conflict)
from ansible_collections.virtops.hypervisor.plugins.module_utils._network_spec import build_specs

UPDATE_COMMANDS = {'add': 'VIR_NETWORK_UPDATE_COMMAND_ADD_LAST', 'modify': 'VIR_NETWORK_UPDATE_COMMAND_MODIFY',
                   'delete': 'VIR_NETWORK_UPDATE_COMMAND_DELETE'}
# The restart reason when full XML differs only in what the model does not describe (DNS forwarders...).
OUTSIDE_THE_OPTIONS = 'xml: settings the structured options do not cover differ'
UPDATE_SECTIONS = {'dhcp_host': 'VIR_NETWORK_SECTION_IP_DHCP_HOST', 'dns_host': 'VIR_NETWORK_SECTION_DNS_HOST'}


def lookup_network(conn, name):
    return lookup_by_name(conn.networkLookupByName, name, 'VIR_ERR_NO_NETWORK')


def read_network(conn, name):
    """An ObjectReading of the network named name (``obj`` the network), or None when there is none."""
    return read_object(conn.networkLookupByName, name, libvirt.VIR_NETWORK_XML_INACTIVE, 'VIR_ERR_NO_NETWORK')


def domains_using(conn, name):
    """Names of the running domains with an interface on the network."""
    found = []
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            root = ET.fromstring(dom.XMLDesc(0))
        except libvirt.libvirtError:
            continue  # stopped or undefined since it was listed
        sources = root.findall("devices/interface[@type='network']/source")
        if any(source.get('network') == name for source in sources):
            found.append(dom.name())
    return sorted(found)


class _Plan(object):
    """What one network needs: a new definition, live host updates, a restart, start or stop."""

    def __init__(self):
        self.define = None  # the XML to define, or None
        self.steps = []  # virNetworkUpdate steps on the running network
        self.steps_flags = 0
        self.restart_reasons = []
        self.differences = []
        self.wanted = None  # the model after this run


class NetworkManager(object):

    def __init__(self, conn, uri, result):
        self.conn = conn
        self.uri = uri
        self.result = result
        self.check_mode = result.check_mode

    def converge(self, params):
        specs, batch = build_specs(params)
        if batch:
            self.result.diff_as_list()
        for spec in specs:
            fields = dict(name=spec.name, restart_required=False, restart_reasons=[])
            item = self.result.item('networks', **fields) if batch else self.result
            if not batch:
                item.set(**fields)
            reading = read_network(self.conn, spec.name)
            before = self._view(reading)
            final = retry_on_conflict(lambda: read_network(self.conn, spec.name),
                                      lambda seen: self._converge(spec, seen, item), seen=reading)
            self._report(spec, item, before, final)

    # --- one network -------------------------------------------------------------------------------

    def _converge(self, spec, reading, item):
        """Act on reading; returns (model, state, autostart, uuid) as the network is afterwards."""
        del item.differences[:]  # a new attempt reads the network again
        about = "network '%s'" % spec.name
        if spec.state == 'absent':
            return self._absent(spec, reading, item, about)
        if reading is None:
            return self._create(spec, item)
        found = self._plan(spec, reading)
        for line in found.differences:
            item.differ(line)
        stop = spec.state == 'inactive' and reading.active
        restart = bool(found.restart_reasons) and spec.apply == 'restart'
        if stop or restart:  # before any change: a refused call changes nothing
            self._refuse_if_used(spec, about, 'stop' if stop else 'restart')
        if found.define is not None:
            item.perform('define', self._define, found.define)
        if found.steps:
            item.perform('update hosts (%d)' % len(found.steps), self._update, reading.obj, found.steps,
                         found.steps_flags)
        autostart = self._autostart(spec, reading, item)
        return found.wanted, self._run_state(spec, reading, found, item), autostart, reading.uuid

    def _run_state(self, spec, reading, found, item):
        """Start, stop or restart the network as asked; returns its state afterwards."""
        if spec.state == 'active' and not reading.active:
            item.differ('state: inactive -> active')
            item.perform('start', reading.obj.create)
            return 'active'
        if spec.state == 'inactive' and reading.active:
            item.differ('state: active -> inactive')
            item.perform('stop', reading.obj.destroy)
            return 'inactive'
        if found.restart_reasons and spec.apply == 'restart':
            for reason in found.restart_reasons:
                if reason not in item.differences:  # the stored definition may already have it
                    item.differ(reason)
            item.perform('restart', self._restart, reading.obj)
        elif found.restart_reasons:
            item.set(restart_required=True, restart_reasons=found.restart_reasons)
        return reading.state

    def _create(self, spec, item):
        wanted = spec.wanted(None)
        root = spec.xml if spec.xml is not None else nx.patched(nx.new_network(spec.name), nx.empty_model(), wanted)
        item.differ('network: absent -> present')
        net = item.perform('define', self._define, nx.to_text(root))
        if spec.autostart:  # net is None in check mode: the side effects below do not run then
            item.differ('autostart: false -> true')
            item.perform('autostart', _set_autostart, net)
        if spec.state == 'active':
            item.differ('state: inactive -> active')
            item.perform('start', _start, net)
        return (wanted, 'active' if spec.state == 'active' else 'inactive', bool(spec.autostart),
                net.UUIDString() if net is not None else None)

    def _absent(self, spec, reading, item, about):
        if reading is None:
            return None, 'absent', False, None
        item.differ('network: present -> absent')
        if reading.active:
            self._refuse_if_used(spec, about, 'remove')
            item.perform('stop', reading.obj.destroy)
        if reading.persistent:
            item.perform('undefine', reading.obj.undefine)
        return None, 'absent', False, None

    def _plan(self, spec, reading):
        """Compare the stored and the live definition with what was asked."""
        found = _Plan()
        config = nx.parse(reading.xml)
        have = nx.describe(config)
        asked = nx.kept_from(config, spec.xml) if spec.xml is not None else None
        found.wanted = wanted = nx.describe(asked) if asked is not None else spec.wanted(have)
        lines = plan.differences(have, wanted)
        found.differences = [line for line, _live in lines]
        outside = asked is not None and _outside_differs(config, asked, spec.xml)
        if outside and all(live_ok for _line, live_ok in lines):
            found.differences.append(OUTSIDE_THE_OPTIONS)
        if asked is not None:
            changed = nx.canonical(config, spec.xml) != nx.canonical(asked, spec.xml)
            new_xml = nx.to_text(asked)
        else:
            changed = bool(lines)
            new_xml = nx.to_text(nx.patched(config, have, wanted))
        if not reading.active or spec.state == 'inactive':  # stopped now or by this run: nothing live to change
            found.define = new_xml if changed else None
            return found
        live_root = nx.parse(reading.live_xml)
        self._plan_live(found, live_root, asked is not None and _outside_differs(live_root, asked, spec.xml))
        found.steps_flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
        hosts_only = not outside and all(live_ok for _line, live_ok in lines)
        if changed and hosts_only and plan.update_steps(have, wanted, _parents(config)) == found.steps:
            found.steps_flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG  # one update changes both the same way
        elif changed:
            found.define = new_xml
        if found.restart_reasons and spec.apply == 'restart':
            found.steps = []  # the restart brings them
        return found

    @staticmethod
    def _plan_live(found, live_root, outside):
        """The restart reasons and host updates of the running network (live_root) against found.wanted."""
        live = nx.describe(live_root)
        found.restart_reasons = [line for line, live_ok in plan.differences(live, found.wanted) if not live_ok]
        if outside and not found.restart_reasons:
            found.restart_reasons.append(OUTSIDE_THE_OPTIONS)
        found.steps = plan.update_steps(live, found.wanted, _parents(live_root))

    def _autostart(self, spec, reading, item):
        if spec.autostart is None or spec.autostart == reading.autostart:
            return reading.autostart
        item.differ('autostart: %s -> %s' % (plan.show(reading.autostart), plan.show(spec.autostart)))
        item.perform('autostart' if spec.autostart else 'no autostart', reading.obj.setAutostart,
                     1 if spec.autostart else 0)
        return spec.autostart

    def _refuse_if_used(self, spec, about, verb):
        users = domains_using(self.conn, spec.name)
        if users and not spec.force:
            raise ModuleFailure("will not %s network '%s': running domains use it (%s); they would lose their "
                                "network. Stop them first or set force: true"
                                % (verb, spec.name, ', '.join(users)), about=about, domains=users)

    # --- side effects ------------------------------------------------------------------------------

    def _define(self, xml):
        try:
            return self.conn.networkDefineXML(xml)
        except libvirt.libvirtError as exc:
            root = ET.fromstring(xml)
            raise LibvirtFailure("libvirt at %s refused the definition of network '%s': %s"
                                 % (self.uri, root.findtext('name'), error_text(exc)),
                                 about="network '%s'" % root.findtext('name'))

    def _update(self, net, steps, flags):
        for step in steps:
            try:
                net.update(getattr(libvirt, UPDATE_COMMANDS[step.command]), getattr(libvirt, UPDATE_SECTIONS[step.section]),
                           step.parent, step.xml, flags)
            except libvirt.libvirtError as exc:
                raise LibvirtFailure("libvirt at %s refused to %s %s on network '%s': %s"
                                     % (self.uri, step.command, step.xml, net.name(), error_text(exc)),
                                     about="network '%s'" % net.name())

    @staticmethod
    def _restart(net):
        net.destroy()
        net.create()

    # --- report ------------------------------------------------------------------------------------

    def _view(self, reading):
        if not self.result.diff_mode:
            return None
        if reading is None:
            return plan.view(None, 'absent', False)
        return plan.view(nx.describe(nx.parse(reading.xml)), reading.state, reading.autostart)

    def _report(self, spec, item, before, final):
        model, state, autostart, uuid = final
        if not self.check_mode and state != 'absent':
            reading = read_network(self.conn, spec.name)
            model = nx.describe(nx.parse(reading.xml))
            state, autostart, uuid = reading.state, reading.autostart, reading.uuid
        item.set(state=state, autostart=bool(autostart), uuid=uuid,
                 bridge=model['bridge'] if model else None)
        if self.result.diff_mode:
            item.add_diff(before, plan.view(model, state, autostart) if state != 'absent' else 'state: absent\n',
                          "network '%s'" % spec.name)


def _outside_differs(actual, asked, given):
    """Whether actual differs from asked (full XML) in more than the DHCP and DNS hosts."""
    return nx.canonical(actual, given, True) != nx.canonical(asked, given, True)


def _set_autostart(net):
    net.setAutostart(1)


def _start(net):
    net.create()


def _parents(root):
    return {family: index for family, (index, _element) in nx.ip_elements(root).items()}


def converge_networks(conn, module, result):
    NetworkManager(conn, module.params['uri'], result).converge(module.params)


# --- libvirt_network_info -------------------------------------------------------------------------

def describe_network(net, result, uri):
    """A network as libvirt_network_info returns it."""
    reading = ObjectReading(net, libvirt.VIR_NETWORK_XML_INACTIVE)
    model = nx.describe(nx.parse(reading.live_xml))
    info = {'name': net.name(), 'uuid': reading.uuid, 'state': reading.state, 'active': reading.active,
            'persistent': reading.persistent, 'autostart': reading.autostart}
    info.update(model)
    info['addresses'] = ['%s/%s' % (model[family]['address'], model[family]['prefix'])
                         for family in nx.FAMILIES if model[family]]
    info['dhcp_hosts'] = [dict(host, family=family) for family in nx.FAMILIES for host in plan.hosts_of(model[family])]
    info['leases'] = []
    if reading.active:
        try:
            info['leases'] = leases(net)
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_SUPPORT'):
                raise
            info['leases'] = None
            result.warn("libvirt at %s cannot list the DHCP leases of network '%s': %s"
                        % (uri, net.name(), error_text(exc)))
    return info


def leases(net):
    found = []
    for lease in net.DHCPLeases():
        expiry = int(lease.get('expirytime') or 0)
        found.append({
            'mac': (lease.get('mac') or '').lower() or None,
            'ip': lease.get('ipaddr'),
            'prefix': lease.get('prefix'),
            'hostname': lease.get('hostname'),
            'client_id': lease.get('clientid'),
            'family': 'ipv6' if lease.get('type') == libvirt.VIR_IP_ADDR_TYPE_IPV6 else 'ipv4',
            'expiry_time': expiry,
            'expiry': datetime.datetime.fromtimestamp(expiry, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        })
    return sorted(found, key=lambda lease: (lease['family'], lease['ip'] or ''))


def network_facts(conn, params, result):
    """What libvirt_network_info returns: the networks asked for (all by default) and the names not found."""
    names = params['networks']
    found = []
    for net in sorted(conn.listAllNetworks(0), key=lambda item: item.name()):
        if names and net.name() not in names:
            continue
        try:
            found.append(describe_network(net, result, params['uri']))
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_NO_NETWORK'):
                raise  # a network removed since it was listed is left out
    missing = sorted(set(names or ()) - set(info['name'] for info in found))
    return {'networks': found, 'missing': missing}
