# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: libvirt
short_description: Domains of one or more libvirt hypervisors as inventory hosts
version_added: 1.1.0
description:
  - Lists the domains (VMs) of every hypervisor in O(uris) as hosts, running or not, with their state, size,
    tags, metadata, interfaces and addresses as host variables (named with O(vars_prefix)), and C(ansible_host)
    set to the domain's first usable address.
  - Groups hosts by state (C(libvirt_running), C(libvirt_shutoff), ...), by hypervisor
    (C(libvirt_hypervisor_<host name of the hypervisor>)) and by tag (C(tag_<tag>)); names are made valid
    Ansible group names (every character other than letters, digits and C(_) becomes C(_)). O(default_groups=false)
    leaves them out. O(compose), O(groups) and O(keyed_groups) add your own.
  - Tags and metadata are the ones M(virtops.hypervisor.libvirt_domain) writes (its C(tags) and C(metadata)
    options, kept in the domain's C(<metadata>) under the namespace C(urn:virtops:hypervisor:domain:1)).
  - The inventory source is a YAML file whose name ends in C(libvirt.yml) or C(libvirt.yaml) (such as
    C(inventory/kvm.libvirt.yml)) and whose O(plugin) key is C(virtops.hypervisor.libvirt).
  - Every hypervisor is read over one connection, closed afterwards; up to eight hypervisors are read at the same
    time, so a slow one does not hold up the others. A hypervisor that cannot be reached (the
    daemon is down, the URI is wrong, authentication fails) is a warning naming the URI and the error, and the
    domains of the others are still listed; with O(fail_on_unreachable=true) it fails the inventory instead.
  - Domains are named by O(hostname_format), the domain name by default. When a second domain gets a name
    already taken (the same domain name on two hypervisors) it is not merged into the first but listed as
    C(<name>.<hypervisor host>) (or C(<name>.<uuid>) when that is taken too) with a warning. The same domain
    reached through two URIs of one hypervisor (same UUID, same host) is listed once, with a warning.
author:
  - virtops maintainers (@virtops)
requirements:
  - libvirt-python (C(python3-libvirt) on Debian, Ubuntu, EL and Fedora) on the controller.
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks the file as a source for this plugin.
    type: str
    required: true
    choices: [virtops.hypervisor.libvirt]
  uris:
    description:
      - libvirt connection URIs of the hypervisors, such as C(qemu:///system) or C(qemu+ssh://root@kvm1/system).
      - The connections are opened read-write, which the V(agent) address source needs (root, or a member of the
        group of libvirt's socket).
      - Remote URIs connect without a terminal to ask for a password or a host key. Use keys (an SSH agent or
        C(?keyfile=)), and C(?no_tty=1) so that a missing key fails at once instead of waiting.
      - In the environment variable, URIs are separated by commas.
    type: list
    elements: str
    default: [qemu:///system]
    env:
      - name: VIRTOPS_LIBVIRT_URIS
  address_sources:
    description:
      - Where the addresses of running domains come from, in order of preference for C(ansible_host).
      - V(lease) - the DHCP leases of libvirt's own networks.
      - V(agent) - the QEMU guest agent, asked only while its channel is connected.
      - V(arp) - the hypervisor's ARP table (IPv4 only).
      - Each source costs one call per running domain; V([]) reads no addresses.
    type: list
    elements: str
    choices: [lease, agent, arp]
    default: [lease, agent, arp]
  address_family:
    description: The address family of C(ansible_host) (the interface variables list every address).
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  states:
    description:
      - Only domains in these states. By default every domain is listed, shut-off ones too, so that the state
        groups and variables describe the whole hypervisor.
    type: list
    elements: str
    choices: [running, paused, shutoff, shutdown, crashed, pmsuspended, nostate]
    default: []
  filters:
    description:
      - Jinja2 conditionals on the host variables of this plugin (such as V('web' in libvirt_tags)); a domain is
        listed only when all of them are true. They are evaluated before O(compose).
      - A conditional that cannot be evaluated for a domain (an undefined variable) leaves the domain out, or
        fails the inventory with O(strict=true).
    type: list
    elements: str
    default: []
  vars_prefix:
    description:
      - The prefix of the host variables this plugin sets (C(libvirt_state), C(libvirt_tags), ...), made of letters,
        digits and underscores, not starting with a digit.
    type: str
    default: libvirt_
  hostname_format:
    description:
      - The inventory host name of a domain, from the fields C({name}) (the domain name), C({uuid}) and
        C({hypervisor_host}) (the host name the hypervisor reports).
    type: str
    default: '{name}'
  default_groups:
    description: Add the state, hypervisor and tag groups described above.
    type: bool
    default: true
  fail_on_unreachable:
    description:
      - Fail the inventory when a hypervisor cannot be reached, instead of a warning and the other hypervisors'
        domains. O(strict) does not change how unreachable hypervisors are handled.
    type: bool
    default: false
notes:
  - "Host variables, with the default O(vars_prefix): C(libvirt_name), C(libvirt_uuid), C(libvirt_state)
    (running, paused, shutoff, shutdown, crashed, pmsuspended, nostate), C(libvirt_vcpus), C(libvirt_memory_mib),
    C(libvirt_autostart), C(libvirt_persistent), C(libvirt_hypervisor) (the URI), C(libvirt_hypervisor_host),
    C(libvirt_tags) (sorted list), C(libvirt_metadata) (dict of strings), C(libvirt_macs), C(libvirt_interfaces)
    (list of dicts with C(mac), C(name), C(network), C(bridge) and C(addresses), each with C(address),
    C(prefix), C(family) and C(source)), C(libvirt_guest_agent) (connected, disconnected or absent) and
    C(libvirt_address) (the address C(ansible_host) is set to, or null)."
  - C(ansible_host) is set only when an address was found; a O(compose) entry for C(ansible_host) replaces it.
  - With O(cache=true), a listing in which a hypervisor could not be reached is not stored, so that the next run
    asks every hypervisor again. The cache holds what the hypervisors answered for the O(uris) and
    O(address_sources) given; the other options apply to it on every run.
seealso:
  - module: virtops.hypervisor.libvirt_domain
  - module: virtops.hypervisor.libvirt_domain_info
"""

EXAMPLES = r"""
# inventory/kvm.libvirt.yml: every domain of the local hypervisor
plugin: virtops.hypervisor.libvirt

---
# inventory/fleet.libvirt.yml: two remote hypervisors, running domains tagged web, cached for 10 minutes
plugin: virtops.hypervisor.libvirt
uris:
  - qemu+ssh://root@kvm1.example.com/system?no_tty=1
  - qemu+ssh://root@kvm2.example.com/system?no_tty=1
states: [running]
filters:
  - "'web' in libvirt_tags"
hostname_format: '{name}.{hypervisor_host}'
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/virtops-inventory
cache_timeout: 600

---
# inventory/lab.libvirt.yml: addresses from the guest agent first, groups from metadata, a user per role
plugin: virtops.hypervisor.libvirt
address_sources: [agent, lease]
keyed_groups:
  - key: libvirt_metadata.role | default('none')
    prefix: role
compose:
  ansible_user: "'debian' if libvirt_metadata.image | default('') == 'debian-12' else 'root'"
groups:
  needs_agent: libvirt_guest_agent != 'connected' and libvirt_state == 'running'
strict: true
"""

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.group import to_safe_group_name
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.vars import combine_vars
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_addresses as addresses
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_metadata as domain_metadata
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    LIBVIRT_IMPORT_ERROR, STATE_NAMES, error_text, is_error, libvirt)

HOSTNAME_FIELDS = ('name', 'uuid', 'hypervisor_host')
MAX_PARALLEL_READS = 8
VARS_PREFIX_PATTERN = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)?$')


def read_hypervisor(uri, sources):
    """Everything the inventory needs from one hypervisor, over one connection:
    {'uri', 'host', 'domains': [read_domain(...)]}. libvirt errors go to the caller."""
    conn = libvirt.open(uri)
    try:
        domains = []
        for dom in conn.listAllDomains(0):
            try:
                domains.append(read_domain(dom, sources))
            except libvirt.libvirtError as exc:
                if not is_error(exc, 'VIR_ERR_NO_DOMAIN'):
                    raise  # else: undefined since it was listed
        return {'uri': uri, 'host': hypervisor_host(conn, uri), 'domains': domains}
    finally:
        conn.close()


def hypervisor_host(conn, uri):
    """The host name the hypervisor reports; the URI's host (or localhost) for a driver that reports none."""
    try:
        return conn.getHostname()
    except libvirt.libvirtError:
        return urlparse(uri).hostname or 'localhost'


def read_hypervisors(uris, sources):
    """read_hypervisor of every URI, at the same time (each waits on its daemon, or on SSH for a remote one),
    in the order of uris; a hypervisor that cannot be read is {'uri', 'error'}."""
    def read(uri):
        try:
            return read_hypervisor(uri, sources)
        except libvirt.libvirtError as exc:
            return {'uri': uri, 'error': error_text(exc)}
    with ThreadPoolExecutor(max_workers=min(len(uris), MAX_PARALLEL_READS)) as pool:
        return list(pool.map(read, uris))


def read_domain(dom, sources):
    """One domain as plain data (what the cache stores), from one read of its live XML."""
    root = ET.fromstring(dom.XMLDesc(0))
    summary = dx.summarize(root)
    persistent = bool(dom.isPersistent())
    described = domain_metadata.describe(root)
    interfaces = addresses.interface_addresses(dom, sources, root=root)
    return {
        'name': dom.name(),
        'uuid': dom.UUIDString(),
        'state': STATE_NAMES.get(dom.state()[0], 'nostate'),
        'vcpus': summary['vcpus'],
        'memory_mib': summary['memory_mib'],
        'autostart': bool(dom.autostart()) if persistent else False,
        'persistent': persistent,
        'tags': described['tags'],
        'metadata': described['metadata'],
        'macs': [interface['mac'] for interface in interfaces if interface['mac']],
        'interfaces': interfaces,
        'guest_agent': addresses.agent_state_of(root),
    }


def host_vars(hypervisor, domain, preference, family):
    """The host variables of a domain, without prefix."""
    found = dict(domain)
    found.update({
        'hypervisor': hypervisor['uri'],
        'hypervisor_host': hypervisor['host'],
        'address': addresses.primary_address(domain['interfaces'], preference=preference, family=family),
    })
    return found


def default_groups(variables):
    """The state, hypervisor and tag groups of a host (unprefixed variables), as valid group names."""
    names = ['libvirt_%s' % variables['state'], 'libvirt_hypervisor_%s' % variables['hypervisor_host']]
    names.extend('tag_%s' % tag for tag in variables['tags'])
    return [to_safe_group_name(name, force=True, silent=True) for name in names]


class HostNames(object):
    """Inventory host names, unique across hypervisors: a name already taken is never reused."""

    def __init__(self, hostname_format):
        self.hostname_format = hostname_format
        self.taken = {}  # host name -> (uuid, hypervisor host, uri)

    def claim(self, domain, hypervisor):
        """(host name, warning or None); the host name is None for a domain listed already."""
        fields = {'name': domain['name'], 'uuid': domain['uuid'], 'hypervisor_host': hypervisor['host']}
        wanted = self.hostname_format.format(**fields)
        owner = self.taken.get(wanted)
        if owner is None:
            return self._take(wanted, domain, hypervisor), None
        if owner[:2] == (domain['uuid'], hypervisor['host']):
            return None, ('libvirt inventory: domain %s (%s) of %s is the one listed already from %s: listed once'
                          % (domain['name'], domain['uuid'], hypervisor['uri'], owner[2]))
        name = '%s.%s' % (wanted, hypervisor['host'])
        if name in self.taken:
            name = '%s.%s' % (wanted, domain['uuid'])
        return self._take(name, domain, hypervisor), (
            'libvirt inventory: host name %s of domain %s on %s is taken by a domain of %s: listed as %s '
            "(hostname_format: '{name}.{hypervisor_host}' names every domain with its hypervisor)"
            % (wanted, domain['name'], hypervisor['uri'], owner[2], name))

    def _take(self, name, domain, hypervisor):
        self.taken[name] = (domain['uuid'], hypervisor['host'], hypervisor['uri'])
        return name


def check_hostname_format(hostname_format):
    """Raise AnsibleParserError naming the option when the format has other fields than HOSTNAME_FIELDS."""
    try:
        hostname_format.format(**dict((field, field) for field in HOSTNAME_FIELDS))
    except (KeyError, IndexError, ValueError) as exc:
        raise AnsibleParserError('hostname_format %r: %s is not a field; use {name}, {uuid} and {hypervisor_host}'
                                 % (hostname_format, to_native(exc)))


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'virtops.hypervisor.libvirt'

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(('libvirt.yml', 'libvirt.yaml'))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        self._check_options()
        if libvirt is None:
            raise AnsibleError('the virtops.hypervisor.libvirt inventory needs libvirt-python on the controller '
                               '(python3-libvirt on Debian, Ubuntu, EL and Fedora; pip install libvirt-python in a '
                               'virtualenv): %s' % LIBVIRT_IMPORT_ERROR.strip().splitlines()[-1])
        self._populate(self._hypervisors(path, cache))

    def _check_options(self):
        check_hostname_format(self.get_option('hostname_format'))
        if not VARS_PREFIX_PATTERN.match(self.get_option('vars_prefix')):
            raise AnsibleParserError('vars_prefix %r: use letters, digits and underscores, not starting with a digit'
                                     % self.get_option('vars_prefix'))
        if not self.get_option('uris'):
            raise AnsibleParserError('uris is empty: give the libvirt URI of at least one hypervisor')

    def _hypervisors(self, path, cache):
        """The readings of every hypervisor, from the inventory cache when it is on and holds them."""
        use_cache = self.get_option('cache')
        # What is read depends on these two options: a listing of other URIs or sources is never served.
        asked = json.dumps([self.get_option('uris'), self.get_option('address_sources')])
        key = '%s_%s' % (self.get_cache_key(path), hashlib.sha256(asked.encode()).hexdigest()[:16])
        if use_cache and cache:
            try:
                return self._cache[key]
            except KeyError:
                pass
        hypervisors = read_hypervisors(self.get_option('uris'), self.get_option('address_sources'))
        for hypervisor in hypervisors:
            if 'error' in hypervisor:
                self._unreachable(hypervisor)
        if use_cache and not any('error' in hypervisor for hypervisor in hypervisors):
            self._cache[key] = hypervisors
        return hypervisors

    def _unreachable(self, hypervisor):
        message = 'libvirt inventory: cannot read hypervisor %s: %s' % (hypervisor['uri'], hypervisor['error'])
        if self.get_option('fail_on_unreachable'):
            raise AnsibleError(message)
        self.display.warning(message + '; its domains are not listed')

    def _populate(self, hypervisors):
        names = HostNames(self.get_option('hostname_format'))
        states = self.get_option('states')
        for hypervisor in hypervisors:
            if 'error' in hypervisor:
                continue
            for domain in sorted(hypervisor['domains'], key=lambda item: item['name']):
                if states and domain['state'] not in states:
                    continue
                variables = host_vars(hypervisor, domain, self.get_option('address_sources'),
                                      self.get_option('address_family'))
                prefixed = dict((self.get_option('vars_prefix') + key, value) for key, value in variables.items())
                if not self._passes_filters(prefixed, domain['name']):
                    continue
                hostname, warning = names.claim(domain, hypervisor)
                if warning:
                    self.display.warning(warning)
                if hostname is not None:
                    self._add_host(hostname, variables, prefixed)

    def _add_host(self, hostname, variables, prefixed):
        self.inventory.add_host(hostname)
        for key, value in prefixed.items():
            self.inventory.set_variable(hostname, key, value)
        if variables['address']:
            self.inventory.set_variable(hostname, 'ansible_host', variables['address'])
        if self.get_option('default_groups'):
            for group in default_groups(variables):
                self.inventory.add_child(self.inventory.add_group(group), hostname)
        strict = self.get_option('strict')
        all_vars = self.inventory.get_host(hostname).get_vars()
        self._set_composite_vars(self.get_option('compose'), all_vars, hostname, strict=strict)
        self._add_host_to_composed_groups(self.get_option('groups'), all_vars, hostname, strict=strict)
        self._add_host_to_keyed_groups(self.get_option('keyed_groups'), all_vars, hostname, strict=strict)

    def _passes_filters(self, variables, name):
        for conditional in self.get_option('filters'):
            try:
                if not self._is_true(conditional, variables):
                    return False
            except Exception as exc:  # pylint: disable=broad-exception-caught  # any template error, as constructed
                if self.get_option('strict'):
                    raise AnsibleError('libvirt inventory: filter %r on domain %s: %s'
                                       % (conditional, name, to_native(exc)))
                return False
        return True

    def _is_true(self, conditional, variables):
        if self.get_option('use_extra_vars'):
            variables = combine_vars(variables, self._vars)
        self.templar.available_variables = variables
        if hasattr(self.templar, 'evaluate_conditional'):  # ansible-core 2.19 and later
            return self.templar.evaluate_conditional(conditional)
        return boolean(self.templar.template('{%% if %s %%} True {%% else %%} False {%% endif %%}' % conditional))
