# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_pool's options: the argument spec, and the items validated into PoolSpecs (no libvirt)."""

from __future__ import annotations

import grp
import os
import pwd
import re

from ansible_collections.virtops.hypervisor.plugins.module_utils import _pool_xml as px
from ansible_collections.virtops.hypervisor.plugins.module_utils._batch import build_batch
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION

STATES = ('present', 'active', 'inactive', 'absent')
POOL_TYPES = ('dir', 'fs', 'logical', 'netfs')
STRUCTURED_OPTIONS = ('type', 'target', 'source', 'permissions')
ITEM_DEFAULTS = {'state': 'active', 'autostart': None, 'delete': False, 'force': False, 'apply': 'next_start'}
# The source formats libvirt accepts per type (storage_conf.c).
FORMATS = {
    'fs': ('auto', 'ext2', 'ext3', 'ext4', 'ufs', 'iso9660', 'udf', 'gfs', 'gfs2', 'vfat', 'hfs+', 'xfs', 'ocfs2',
           'vmfs'),
    'netfs': ('auto', 'nfs', 'glusterfs', 'cifs'),
    'logical': ('auto', 'lvm2'),
}
# Which source settings each type uses: anything else given is refused rather than silently ignored.
SOURCE_USED = {'dir': (), 'fs': ('devices', 'format'), 'logical': ('devices', 'name', 'format'),
               'netfs': ('host', 'dir', 'format')}
MODE_PATTERN = re.compile(r'^0?[0-7]{3,4}$')


def where(label):
    """Message prefix naming the input: 'pools[2].' style labels, nothing for a single pool."""
    return '%s: ' % label if label else ''


def _join(label, key):
    return '%s.%s' % (label, key) if label else key


class PoolSpec(object):
    """One pool as asked: its name, the settings (from full XML or the structured options) and states."""

    def __init__(self, item, label):
        def asked(key):
            return item.get(key) if item.get(key) is not None else ITEM_DEFAULTS[key]
        self.label = label
        self.state = asked('state')
        self.autostart = asked('autostart')
        self.delete = asked('delete')
        self.force = asked('force')
        self.apply = asked('apply')
        self.xml = None
        given = sorted(key for key in STRUCTURED_OPTIONS if item.get(key) is not None)
        if item.get('xml'):
            if given:
                raise px.PoolXMLError('%sxml and the structured options (%s) are mutually exclusive; put the '
                                      'settings into the XML' % (where(label), ', '.join(given)))
            self.xml = px.parse(item['xml'], _join(label, 'xml'))
            self.name = self.xml.findtext('name').strip()
            if item.get('name') and item['name'] != self.name:
                raise px.PoolXMLError("%sname '%s' differs from the <name> '%s' in its xml"
                                      % (where(label), item['name'], self.name))
            self.type = self.xml.get('type')
            self.wanted = px.wanted_of(self.xml)
        elif item.get('name'):
            self.name = item['name']
            self.type = item.get('type')
            self.wanted = self._structured(item)
        else:
            raise px.PoolXMLError('%sgive name (and type, target, source) or xml' % where(label))
        if '/' in self.name:
            raise px.PoolXMLError("%sname '%s' contains '/', which libvirt refuses in a pool name"
                                  % (where(label), self.name), about="pool '%s'" % self.name)
        self.has_definition = self.xml is not None or bool(given)
        self.about = "pool '%s'" % self.name
        if self.delete and self.state != 'absent':
            raise px.PoolXMLError('%sdelete: true goes with state: absent only' % where(label))

    def _structured(self, item):
        wanted = {}
        if item.get('type'):
            wanted['type'] = item['type']
        if item.get('target') is not None:
            if not os.path.isabs(item['target']):
                raise px.PoolXMLError("%starget '%s' must be an absolute path"
                                      % (where(_join(self.label, 'target')), item['target']))
            wanted['target'] = os.path.normpath(item['target'])
        if item.get('permissions'):
            wanted['permissions'] = self._permissions(item['permissions'])
        if item.get('source'):
            wanted['source'] = self._source(item['source'])
        return px.prune(wanted)

    def _permissions(self, given):
        label = _join(self.label, 'permissions')
        if self.type == 'logical':
            raise px.PoolXMLError('%slogical pools have no target directory: permissions do not apply'
                                  % where(label))
        found = {}
        if given.get('mode') is not None:
            if not isinstance(given['mode'], str):
                raise px.PoolXMLError("%sgive the mode as a quoted string such as '0755' (YAML reads an unquoted 0755 "
                                      "as the number 493)" % where(_join(label, 'mode')))
            if not MODE_PATTERN.match(given['mode']):
                raise px.PoolXMLError("%s'%s' is not an octal mode such as '0755' (quote it in YAML)"
                                      % (where(_join(label, 'mode')), given['mode']))
            found['mode'] = px.normal_mode(given['mode'])
        for key, lookup, kind in (('owner', pwd.getpwnam, 'user'), ('group', grp.getgrnam, 'group')):
            value = given.get(key)
            if value is None:
                continue
            if value.isdigit():
                found[key] = str(int(value))
                continue
            try:
                found[key] = str(lookup(value)[2])
            except KeyError:
                raise px.PoolXMLError("%sthere is no %s '%s' on the host (give a name that exists or a number)"
                                      % (where(_join(label, key)), kind, value))
        return found

    def _source(self, given):
        label = _join(self.label, 'source')
        found = dict((key, value) for key, value in given.items() if value not in (None, []))
        if self.type in SOURCE_USED:
            unused = sorted(set(found) - set(SOURCE_USED[self.type]))
            if unused:
                raise px.PoolXMLError('%s%s does not apply to a %s pool (it uses %s)'
                                      % (where(label), ', '.join(unused), self.type,
                                         ', '.join(SOURCE_USED[self.type]) or 'no source'))
        for index, device in enumerate(found.get('devices') or []):
            if not os.path.isabs(device):
                raise px.PoolXMLError("%s'%s' must be an absolute device path"
                                      % (where('%s.devices[%d]' % (label, index)), device))
        if self.type == 'fs' and len(found.get('devices') or []) > 1:
            raise px.PoolXMLError('%san fs pool has one device, not %d'
                                  % (where(_join(label, 'devices')), len(found['devices'])))
        if found.get('format') and self.type in FORMATS and found['format'] not in FORMATS[self.type]:
            raise px.PoolXMLError("%s'%s' is not a %s pool format (one of %s)"
                                  % (where(_join(label, 'format')), found['format'], self.type,
                                     ', '.join(FORMATS[self.type])))
        if found.get('dir') and not found['dir'].startswith('/'):
            raise px.PoolXMLError("%s'%s' must be an absolute path on the server"
                                  % (where(_join(label, 'dir')), found['dir']))
        return found

    def check_new(self):
        """What a pool that does not exist yet needs to be defined; raises PoolXMLError naming the input."""
        if not self.has_definition:
            raise px.PoolXMLError("%spool '%s' does not exist: give type, target and source (or xml) to define it"
                                  % (where(self.label), self.name), about=self.about)
        if self.xml is not None:
            return
        if not self.type:
            raise px.PoolXMLError("%stype is needed to define pool '%s'" % (where(self.label), self.name),
                                  about=self.about)
        source = self.wanted.get('source') or {}
        needs = {'dir': ['target'], 'fs': ['target', 'source.devices'],
                 'netfs': ['target', 'source.host', 'source.dir'], 'logical': []}.get(self.type, ['target'])
        missing = [key for key in needs
                   if not (source.get(key[7:]) if key.startswith('source.') else self.wanted.get(key))]
        if missing:
            raise px.PoolXMLError("%sa %s pool needs %s" % (where(self.label), self.type, ' and '.join(missing)),
                                  about=self.about)


def build_specs(params):
    """Validate the module parameters into PoolSpecs; raises PoolXMLError naming the input."""
    return build_batch(params, 'pools', ITEM_DEFAULTS, PoolSpec, 'pool', px.PoolXMLError)


POOL_OPTIONS = {
    'name': {'type': 'str'},
    'xml': {'type': 'str'},
    'type': {'type': 'str', 'choices': list(POOL_TYPES)},
    'target': {'type': 'path'},
    'source': {'type': 'dict', 'options': {
        'devices': {'type': 'list', 'elements': 'path'},
        'host': {'type': 'str'},
        'dir': {'type': 'str'},
        'format': {'type': 'str'},
        'name': {'type': 'str'},
    }},
    'permissions': {'type': 'dict', 'options': {
        'owner': {'type': 'str'},
        'group': {'type': 'str'},
        'mode': {'type': 'raw'},
    }},
    'autostart': {'type': 'bool'},
    'state': {'type': 'str', 'choices': list(STATES)},
    'delete': {'type': 'bool'},
    'force': {'type': 'bool'},
    'apply': {'type': 'str', 'choices': ['next_start', 'restart']},
}
MODULE_OPTIONS = dict(POOL_OPTIONS, uri=dict(URI_OPTION), pools={
    'type': 'list', 'elements': 'dict', 'options': POOL_OPTIONS})
