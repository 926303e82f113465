# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage pool XML, pure (no libvirt): describe a definition as a dict, compare, build the one to define.

A pool is compared through :func:`describe` on both sides, and only on the settings that were asked
for: libvirt fills in what was left out (the source format, the permissions it reads from the target
directory, capacity figures), and those fill-ins are not differences.
"""

from __future__ import annotations

import copy
import posixpath
import xml.etree.ElementTree as ET

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure

# What libvirt stores when the definition leaves it out (libvirt 9: storage_conf.c defaults).
DEFAULT_FORMATS = {'fs': 'auto', 'netfs': 'auto', 'logical': 'lvm2'}
SOURCE_KEYS = ('devices', 'host', 'dir', 'format', 'name')
PERMISSION_KEYS = ('mode', 'owner', 'group')


class PoolXMLError(ModuleFailure):
    """A pool definition that cannot be used; the message names the input."""


def parse(text, label='xml'):
    """The <pool> root of text, or a PoolXMLError naming label."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise PoolXMLError('%s: not well-formed XML (%s)' % (label, exc))
    if root.tag != 'pool':
        raise PoolXMLError('%s: the root element is <%s>, not <pool>' % (label, root.tag))
    if not root.get('type'):
        raise PoolXMLError("%s: <pool> has no type attribute (such as type='dir')" % label)
    if not (root.findtext('name') or '').strip():
        raise PoolXMLError('%s: <pool> has no <name>' % label)
    return root


def _text(root, path):
    value = root.findtext(path)
    return value.strip() if value is not None and value.strip() else None


def describe(root):
    """The settings of a pool definition that the module compares, with libvirt's defaults filled in.

    ``source`` keeps ``other``: the canonical XML of source elements the structured options do not cover
    (adapter, auth, initiator ...), so a full ``xml`` is compared on them too.
    """
    pool_type = root.get('type')
    source = {}
    source_elem = root.find('source')
    other = []
    for child in list(source_elem) if source_elem is not None else []:
        if child.tag == 'device':
            source.setdefault('devices', []).append(child.get('path'))
        elif child.tag == 'host' and 'host' not in source:
            source['host'] = child.get('name')
            if set(child.attrib) - {'name'}:  # a port: compared as written
                other.append(canonical(child))
        elif child.tag == 'dir':
            source['dir'] = child.get('path')
        elif child.tag == 'format':
            source['format'] = child.get('type')
        elif child.tag == 'name':
            source['name'] = (child.text or '').strip()
        else:
            other.append(canonical(child))
    if 'format' not in source and pool_type in DEFAULT_FORMATS:
        source['format'] = DEFAULT_FORMATS[pool_type]
    if other:
        source['other'] = sorted(other)
    permissions = {}
    for key in PERMISSION_KEYS:
        value = _text(root, 'target/permissions/%s' % key)
        if value is not None:
            permissions[key] = normal_mode(value) if key == 'mode' else value
    target = _text(root, 'target/path')
    if target is not None and target.startswith('/'):
        target = posixpath.normpath(target)  # libvirt stores the path sanitized: no trailing or double slashes
    return {'name': _text(root, 'name'), 'uuid': _text(root, 'uuid'), 'type': pool_type,
            'target': target, 'permissions': permissions, 'source': source}


def canonical(elem):
    """An element as text that does not depend on attribute order or indentation."""
    elem = copy.deepcopy(elem)
    for node in elem.iter():
        node.attrib = dict(sorted(node.attrib.items()))
        node.text = (node.text or '').strip() or None
        node.tail = None
    return ET.tostring(elem, encoding='unicode')


def normal_mode(value):
    """'755', '0755' and '00755' are the same mode: libvirt writes four octal digits."""
    return '%04o' % int(value, 8)


def wanted_of(root):
    """What a full xml asks for: its described settings, without what it leaves out."""
    asked = describe(root)
    given_format = root.find('source/format') is not None
    if not given_format:
        asked['source'].pop('format', None)
    return prune(asked)


def prune(settings, drop=('name', 'uuid')):
    """settings without the keys that were not asked for (None, empty) and without the pool's name and uuid."""
    found = {}
    for key, value in settings.items():
        if key in drop or value in (None, {}, []):
            continue
        found[key] = prune(value, ()) if isinstance(value, dict) else value
    return found


def differences(wanted, actual, prefix=''):
    """'what: actual -> wanted' for every asked setting that the actual description does not have."""
    found = []
    for key in sorted(wanted):
        want = wanted[key]
        have = actual.get(key) if actual else None
        label = '%s%s' % (prefix, key)
        if isinstance(want, dict):
            found.extend(differences(want, have or {}, label + '.'))
        elif key == 'other':  # libvirt may add source elements of its own: those asked must be there
            if not set(want) <= set(have or []):
                found.append('%s: %s -> %s' % (label, _shown(have), _shown(want)))
        elif _comparable(key, want) != _comparable(key, have):
            found.append('%s: %s -> %s' % (label, _shown(have), _shown(want)))
    return found


def _comparable(key, value):
    if key == 'devices' and value is not None:
        return sorted(value)
    return value


def _shown(value):
    if value is None:
        return '(none)'
    if isinstance(value, list):
        return '[%s]' % ', '.join(value)
    return str(value)


def skeleton(name, pool_type):
    root = ET.Element('pool', {'type': pool_type})
    ET.SubElement(root, 'name').text = name
    return root


def apply_settings(root, wanted):
    """Write the structured settings of wanted into the definition root (in place) and return it."""
    if wanted.get('target') or wanted.get('permissions'):
        target = _child(root, 'target')
        if wanted.get('target'):
            _child(target, 'path').text = wanted['target']
        if wanted.get('permissions'):
            permissions = _child(target, 'permissions')
            for key in PERMISSION_KEYS:
                if key in wanted['permissions']:
                    _child(permissions, key).text = wanted['permissions'][key]
    source_wanted = wanted.get('source') or {}
    if source_wanted:
        source = _child(root, 'source')
        _set_source(source, source_wanted)
    return root


def _set_source(source, wanted):
    if 'devices' in wanted:
        for device in source.findall('device'):
            source.remove(device)
        for index, path in enumerate(wanted['devices']):
            source.insert(index, ET.Element('device', {'path': path}))
    if 'host' in wanted:
        _child(source, 'host').attrib = {'name': wanted['host']}
    if 'dir' in wanted:
        _child(source, 'dir').attrib = {'path': wanted['dir']}
    if 'name' in wanted:
        _child(source, 'name').text = wanted['name']
    if 'format' in wanted:
        _child(source, 'format').attrib = {'type': wanted['format']}


def _child(parent, tag):
    found = parent.find(tag)
    return found if found is not None else ET.SubElement(parent, tag)


def with_uuid(root, uuid):
    """root with the <uuid> of the existing pool, so a redefinition keeps its identity."""
    elem = root.find('uuid')
    if elem is None:
        elem = ET.Element('uuid')
        root.insert(1, elem)
    elem.text = uuid
    return root


def to_text(root):
    return ET.tostring(root, encoding='unicode')


def summary_text(described, state, autostart, asked):
    """A pool as diff lines: run state, autostart, type and the settings that were asked for (libvirt fills in
    others, such as the permissions it reads at start, that a check run cannot know), one per line."""
    if described is None:
        return ''
    lines = ['state: %s' % state, 'autostart: %s' % ('true' if autostart else 'false'),
             'type: %s' % described['type']]
    if 'target' in asked:
        lines.append('target: %s' % described.get('target'))
    for group, keys in (('permissions', PERMISSION_KEYS), ('source', SOURCE_KEYS + ('other',))):
        for key in keys:
            if key in asked.get(group, {}):
                lines.append('%s.%s: %s' % (group, key, _shown(described[group].get(key))))
    return '\n'.join(lines) + '\n'
