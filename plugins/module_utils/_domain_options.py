# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain's options: the argument spec, and the items validated into DomainSpecs (pure, no libvirt)."""

from __future__ import annotations

import os
import re

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._batch import build_batch
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_cloud_init import (
    OPTIONS as CLOUD_INIT_OPTIONS, SeedSpec)
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_wait import (
    WAIT_DEFAULTS, WAIT_OPTIONS, wait_settings)
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION

STATES = ('present', 'running', 'paused', 'shutdown', 'destroyed', 'saved', 'absent')
STRUCTURED_OPTIONS = ('domain_type', 'memory', 'vcpus', 'cpu', 'machine', 'firmware', 'boot', 'disks', 'interfaces',
                      'serial_console', 'serial_log', 'graphics', 'guest_agent')
ITEM_DEFAULTS = {'state': 'present', 'shutdown_timeout': 120, 'force': False, 'apply': 'next_boot',
                 'remove_storage': False, 'autostart': None}
ITEM_DEFAULTS.update(WAIT_DEFAULTS)
MAC_PATTERN = re.compile(r'^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$')


def where(label):
    """Message prefix naming the input: 'domains[3]: ' in a batch, nothing for a single domain."""
    return '%s: ' % label if label else ''


def _join(label, key):
    return '%s.%s' % (label, key) if label else key


class DomainSpec(object):
    """One domain as asked: its name, the definition (full XML or structured options) and states."""

    def __init__(self, item, label):
        def asked(key):
            return item.get(key) if item.get(key) is not None else ITEM_DEFAULTS[key]
        self.label = label
        self.xml = None
        self.name = None
        self.options = {key: item.get(key) for key in STRUCTURED_OPTIONS}
        self.state = asked('state')
        self.autostart = asked('autostart')
        self.shutdown_timeout = asked('shutdown_timeout')
        self.force = asked('force')
        self.apply = asked('apply')
        self.remove_storage = asked('remove_storage')
        self.clone_from = dict(item['clone_from']) if item.get('clone_from') else None
        given = sorted(key for key, value in self.options.items() if value is not None)
        if item.get('xml') and self.clone_from:
            raise dx.DomainXMLError('%sxml and clone_from are mutually exclusive; a clone starts from the definition '
                                    'of its source (structured options apply on top of it)' % where(label))
        if item.get('xml'):
            if given:
                raise dx.DomainXMLError('%sxml and the structured options (%s) are mutually exclusive; '
                                        'put the settings into the XML' % (where(label), ', '.join(given)))
            self.xml = dx.parse(item['xml'], _join(label, 'xml'))
            self.name = self.xml.findtext('name').strip()
            if item.get('name') and item['name'] != self.name:
                raise dx.DomainXMLError("%sname '%s' differs from the <name> '%s' in its xml"
                                        % (where(label), item['name'], self.name))
        elif item.get('name'):
            self.name = item['name']
        else:
            raise dx.DomainXMLError('%sgive name (and structured options) or xml' % where(label))
        if '/' in self.name:
            raise dx.DomainXMLError("%sname '%s' contains '/', which libvirt refuses in a domain name"
                                    % (where(label), self.name), about="domain '%s'" % self.name)
        self.has_definition = self.xml is not None or bool(given) or self.clone_from is not None
        self.tags, self.metadata = _tags(item.get('tags'), label), _metadata(item.get('metadata'), label)
        self.cloud_init = SeedSpec(item['cloud_init'], self.name, label) if item.get('cloud_init') else None
        # tags, metadata and cloud_init change an existing definition; alone they cannot make a new one
        self.has_extras = self.tags is not None or self.metadata is not None or self.cloud_init is not None
        self._validate_options()
        self._validate_clone_from()
        self.wait_for, self.wait_timeout = wait_settings(item, label, self.state)
        if self.shutdown_timeout < 0:
            raise dx.DomainXMLError('%sshutdown_timeout must be 0 or more seconds' % where(label))

    def _validate_options(self):
        opts = self.options
        for kind in ('disks', 'interfaces'):  # validation fills in defaults: not into the module's params
            if opts[kind] is not None:
                opts[kind] = [dict(item) for item in opts[kind]]
        for key in ('memory', 'vcpus'):
            if opts[key] is not None and opts[key] < 1:
                raise dx.DomainXMLError('%s%s must be at least 1, not %s' % (where(self.label), key, opts[key]))
        if opts['serial_log'] and not os.path.isabs(opts['serial_log']):
            raise dx.DomainXMLError('%sserial_log must be an absolute path' % where(self.label))
        for index, disk in enumerate(opts['disks'] or []):
            self._validate_disk(_join(self.label, 'disks[%d]' % index), disk)
        for index, interface in enumerate(opts['interfaces'] or []):
            self._validate_interface(_join(self.label, 'interfaces[%d]' % index), interface)

    def _validate_clone_from(self):
        if self.clone_from is None:
            return
        label = _join(self.label, 'clone_from')
        if self.clone_from['name'] == self.name:
            raise dx.DomainXMLError("%sname '%s' is the domain itself; name the domain to clone"
                                    % (where(label), self.name))
        if self.options['disks'] is not None:
            raise dx.DomainXMLError('%sdisks cannot be given with clone_from: a clone gets copies of the disks of its '
                                    'source; change its disks in a later task, once the clone exists'
                                    % where(self.label))

    def _validate_disk(self, label, disk):
        if disk.get('path') and disk.get('volume'):
            raise dx.DomainXMLError('%spath and volume are mutually exclusive' % where(label))
        if disk.get('path') and not os.path.isabs(disk['path']):
            raise dx.DomainXMLError("%spath '%s' must be absolute" % (where(label), disk['path']))
        if disk['device'] == 'disk' and not (disk.get('path') or disk.get('volume')):
            raise dx.DomainXMLError('%sa disk needs path or volume (only a cdrom may be empty)' % where(label))
        if disk.get('volume') and not (disk['volume'].get('pool') and disk['volume'].get('name')):
            raise dx.DomainXMLError('%svolume needs pool and name' % where(label))
        if not disk.get('bus'):
            disk['bus'] = 'virtio' if disk['device'] == 'disk' else 'sata'
        if disk.get('target') and not disk['target'].startswith(dx.DISK_TARGET_PREFIX.get(disk['bus'], 'sd')):
            raise dx.DomainXMLError("%starget '%s' does not fit bus %s (use %sX)"
                                    % (where(label), disk['target'], disk['bus'], dx.DISK_TARGET_PREFIX.get(disk['bus'], 'sd')))
        if not disk.get('format') and disk.get('path'):
            disk['format'] = 'qcow2' if disk['path'].endswith('.qcow2') else 'raw'

    def _validate_interface(self, label, interface):
        if interface.get('network') and interface.get('bridge'):
            raise dx.DomainXMLError('%snetwork and bridge are mutually exclusive' % where(label))
        kind = interface.get('type') or ('network' if interface.get('network') else
                                         'bridge' if interface.get('bridge') else None)
        if kind is None:
            raise dx.DomainXMLError('%sgive network, bridge or type: user' % where(label))
        if kind in ('network', 'bridge') and not interface.get(kind):
            raise dx.DomainXMLError('%stype %s needs the %s option' % (where(label), kind, kind))
        if kind == 'user' and (interface.get('network') or interface.get('bridge')):
            raise dx.DomainXMLError('%stype user takes neither network nor bridge' % where(label))
        interface['type'] = kind
        if interface.get('mac') and not MAC_PATTERN.match(interface['mac']):
            raise dx.DomainXMLError("%smac '%s' is not a MAC address like 52:54:00:12:34:56"
                                    % (where(label), interface['mac']))


def _tags(tags, label):
    if tags is None:
        return None
    for index, tag in enumerate(tags):
        if not tag or tag != tag.strip():
            raise dx.DomainXMLError('%s[%d]: %r is not a tag: give a non-empty name without surrounding spaces'
                                    % (_join(label, 'tags'), index, tag))
    return sorted(set(tags))


def _metadata(metadata, label):
    """{name: str}; numbers become strings, other values are refused (metadata holds text)."""
    if metadata is None:
        return None
    found = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not key.strip():
            raise dx.DomainXMLError('%s: %r is not a metadata name' % (_join(label, 'metadata'), key))
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise dx.DomainXMLError('%s.%s: must be a string, not %s'
                                    % (_join(label, 'metadata'), key, type(value).__name__))
        found[key] = str(value).strip()
    return found


def build_specs(params):
    """Validate the module parameters into DomainSpecs; raises DomainXMLError naming the input."""
    return build_batch(params, 'domains', ITEM_DEFAULTS, DomainSpec, 'domain', dx.DomainXMLError)


DOMAIN_OPTIONS = {
    'name': {'type': 'str'},
    'xml': {'type': 'str'},
    'state': {'type': 'str', 'choices': list(STATES)},
    'autostart': {'type': 'bool'},
    'shutdown_timeout': {'type': 'int'},
    'force': {'type': 'bool'},
    'apply': {'type': 'str', 'choices': ['next_boot', 'restart']},
    'remove_storage': {'type': 'bool'},
    'domain_type': {'type': 'str'},
    'memory': {'type': 'int'},
    'vcpus': {'type': 'int'},
    'machine': {'type': 'str'},
    'firmware': {'type': 'str', 'choices': ['bios', 'efi']},
    'cpu': {'type': 'dict', 'options': {
        'mode': {'type': 'str', 'default': 'custom', 'choices': ['custom', 'host-model', 'host-passthrough', 'maximum']},
        'model': {'type': 'str'},
    }},
    'boot': {'type': 'dict', 'options': {
        'devices': {'type': 'list', 'elements': 'str', 'choices': ['hd', 'cdrom', 'network', 'fd']},
        'kernel': {'type': 'str'},
        'initrd': {'type': 'str'},
        'cmdline': {'type': 'str'},
    }},
    'disks': {'type': 'list', 'elements': 'dict', 'options': {
        'path': {'type': 'str'},
        'volume': {'type': 'dict', 'options': {
            'pool': {'type': 'str', 'required': True},
            'name': {'type': 'str', 'required': True},
        }},
        'device': {'type': 'str', 'default': 'disk', 'choices': ['disk', 'cdrom']},
        'bus': {'type': 'str', 'choices': ['virtio', 'sata', 'scsi', 'ide', 'usb']},
        'format': {'type': 'str'},
        'target': {'type': 'str'},
        'readonly': {'type': 'bool', 'default': False},
    }},
    'interfaces': {'type': 'list', 'elements': 'dict', 'options': {
        'type': {'type': 'str', 'choices': ['network', 'bridge', 'user']},
        'network': {'type': 'str'},
        'bridge': {'type': 'str'},
        'model': {'type': 'str', 'default': 'virtio'},
        'mac': {'type': 'str'},
    }},
    'serial_console': {'type': 'bool'},
    'serial_log': {'type': 'path'},
    'graphics': {'type': 'dict', 'options': {
        'type': {'type': 'str', 'required': True, 'choices': ['none', 'vnc', 'spice']},
        'listen': {'type': 'str'},
        'port': {'type': 'int'},
        'password': {'type': 'str', 'no_log': True},
    }},
    'guest_agent': {'type': 'bool'},
    'tags': {'type': 'list', 'elements': 'str'},
    'metadata': {'type': 'dict'},
    'cloud_init': {'type': 'dict', 'options': CLOUD_INIT_OPTIONS},
    'clone_from': {'type': 'dict', 'options': {
        'name': {'type': 'str', 'required': True},
        'linked': {'type': 'bool', 'default': False},
        'pool': {'type': 'str'},
    }},
}
DOMAIN_OPTIONS.update(WAIT_OPTIONS)
MODULE_OPTIONS = dict(DOMAIN_OPTIONS, uri=dict(URI_OPTION), domains={
    'type': 'list', 'elements': 'dict', 'options': DOMAIN_OPTIONS})
