# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt storage volumes, pure: describe (volume XML -> dict), who uses a volume, and the plan.

:func:`plan_volume` compares a volume as libvirt describes it with a :class:`VolumeSpec` and the facts
the manager read (the source image, the stored fingerprint, the backing or clone origin, the users)
and returns the actions, the differences and the volume it predicts. It raises ModuleFailure for what
cannot be done, so check mode refuses exactly what a real run refuses, before anything changes.

Capacities are compared as libvirt makes them: it creates and resizes qcow2 volumes through qemu-img in
whole KiB (``%lluK``, rounded up), raw volumes in bytes.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._image_files import fingerprint_differences
from ansible_collections.virtops.hypervisor.plugins.module_utils._qemu_img import human_size
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_options import where

FINGERPRINT_VERSION = 1
KIB = 1024


class Plan(object):
    """What one item needs: actions as (name, reason), differences as lines, the volume afterwards."""

    def __init__(self, actions, differences, after):
        self.actions = actions
        self.differences = differences
        self.after = after


# --- describe ----------------------------------------------------------------------------------

def describe(xml, pool):
    """A volume's XML (virStorageVolGetXMLDesc) as the modules return it."""
    root = ET.fromstring(xml)
    target = root.find('target')
    backing = root.find('backingStore')
    backing_path = backing.findtext('path') if backing is not None else None
    return {
        'name': root.findtext('name'),
        'pool': pool,
        'key': root.findtext('key'),
        'type': root.get('type'),
        'path': target.findtext('path') if target is not None else None,
        'format': _format_of(target),
        'capacity': _bytes(root.find('capacity')),
        'allocation': _bytes(root.find('allocation')),
        'backing': {'path': backing_path, 'format': _format_of(backing)} if backing_path else None,
        'permissions': _permissions(target.find('permissions') if target is not None else None),
    }


def _format_of(elem):
    found = elem.find('format') if elem is not None else None
    return found.get('type') if found is not None else None


_UNITS = {'b': 1, 'bytes': 1, 'k': KIB, 'kib': KIB, 'm': KIB ** 2, 'mib': KIB ** 2, 'g': KIB ** 3, 'gib': KIB ** 3,
          't': KIB ** 4, 'tib': KIB ** 4, 'kb': 1000, 'mb': 1000 ** 2, 'gb': 1000 ** 3, 'tb': 1000 ** 4}


def _bytes(elem):
    if elem is None or not (elem.text or '').strip():
        return None
    return int(elem.text.strip()) * _UNITS.get((elem.get('unit') or 'bytes').lower(), 1)


def _permissions(elem):
    if elem is None:
        return {}
    found = {}
    if elem.findtext('mode'):
        found['mode'] = '%04o' % int(elem.findtext('mode'), 8)
    for key in ('owner', 'group'):
        text = elem.findtext(key)
        if text and text.strip().lstrip('-').isdigit() and int(text) >= 0:
            found[key] = int(text)
    return found


def created_capacity(size, fmt):
    """The capacity libvirt gives a volume of fmt asked to have size bytes (qcow2: whole KiB, rounded up)."""
    if size is None:
        return None
    return -(-size // KIB) * KIB if fmt == 'qcow2' else size


# --- users -------------------------------------------------------------------------------------

def disk_uses(disk, volume):
    """Whether a domain's <disk> element refers to the volume (by path, or by pool and volume name)."""
    source = disk.find('source')
    if source is None:
        return False
    if (source.get('pool'), source.get('volume')) == (volume['pool'], volume['name']):
        return True
    path = source.get('file') or source.get('dev')
    return bool(path and volume['path'] and os.path.normpath(path) == os.path.normpath(volume['path']))


def domains_using(domain_xmls, volume):
    """Names of the domains with a disk on the volume, from (name, [xml, ...]) pairs (inactive and live XML)."""
    found = []
    for name, xmls in domain_xmls:
        for xml in xmls:
            if any(disk_uses(disk, volume) for disk in ET.fromstring(xml).findall('devices/disk')):
                found.append(name)
                break
    return sorted(found)


def volumes_backed_by(volumes, volume):
    """'pool/name' of the volumes whose backing file is the volume."""
    return sorted('%s/%s' % (other['pool'], other['name']) for other in volumes
                  if other['backing'] and volume['path']
                  and os.path.normpath(other['backing']['path']) == os.path.normpath(volume['path']))


def in_use_text(users):
    """"in use by domain 'web1' and overlay volume pool/x", or '' when nothing uses the volume."""
    parts = []
    for key, kind, show in (('domains', 'domain', "'%s'"), ('volumes', 'overlay volume', '%s')):
        names = users.get(key) or []
        if names:
            parts.append('%s%s %s' % (kind, 's' if len(names) > 1 else '', ', '.join(show % name for name in names)))
    return 'in use by %s' % ' and '.join(parts) if parts else ''


# --- the source fingerprint --------------------------------------------------------------------

def import_recipe(spec, source):
    return {'src': spec.src, 'format': source['format']}


def import_record(spec, source):
    """What is stored with an imported volume (the xattr user.virtops.libvirt_volume)."""
    if spec.url:
        return url_record(spec.url, source['checksum'], source['virtual_size'])
    return {'version': FINGERPRINT_VERSION, 'recipe': import_recipe(spec, source), 'source': source['fingerprint'],
            'virtual_size': source['virtual_size']}


def url_record(url, checksum, virtual_size):
    """The record of a volume downloaded from url: the checksum is the one verified ('none' when not asked)."""
    return {'version': FINGERPRINT_VERSION, 'recipe': {'url': url, 'checksum': checksum}, 'virtual_size': virtual_size}


def recorded_url(stored):
    """(url, checksum) of a volume's record; (None, None) when it was not downloaded by this module."""
    recipe = stored.get('recipe') if isinstance(stored, dict) else None
    if not isinstance(recipe, dict) or stored.get('version') != FINGERPRINT_VERSION:
        return None, None
    return recipe.get('url'), recipe.get('checksum')


def download_reasons(spec, stored, checksum):
    """Why an existing volume must be downloaded again from spec.url; empty when its record has the same
    checksum (another URL with the same checksum serves the same image). checksum: none compares the URL."""
    url, recorded = recorded_url(stored)
    if url is None:
        return ['no record of a download (the volume was made another way)']
    if checksum == 'none' or recorded == 'none':
        return [] if (url, recorded) == (spec.url, checksum) else ['downloaded from %s with checksum %s, asked for %s '
                                                                   'with checksum %s' % (url, recorded, spec.url, checksum)]
    if recorded != checksum:
        return ['downloaded with checksum %s, the checksum is now %s' % (recorded, checksum)]
    return []


def source_shown(fingerprint):
    """The source as the diff shows it: path, size and mtime of the file (the stored record, or now)."""
    if not fingerprint:
        return None
    first = fingerprint[0]
    return {'path': first.get('path'), 'size': first.get('size'), 'mtime_ns': first.get('mtime_ns')}


def reimport_reasons(spec, actual, source, stored):
    """Why an existing volume must be imported again from src; empty when its record matches the source.

    The volume's capacity is converged on its own (a later resize is no reason to import again), so the
    record's virtual size is compared with itself.
    """
    recorded_size = stored.get('virtual_size') if isinstance(stored, dict) else None
    reasons = fingerprint_differences(stored, import_recipe(spec, source), source['fingerprint'], recorded_size)
    if actual['format'] != source['format'] and not reasons:
        reasons.append('the volume is %s, src is %s' % (actual['format'], source['format']))
    return reasons


# --- plan --------------------------------------------------------------------------------------

def plan_volume(spec, actual, facts):
    """The Plan for spec against actual (a describe() dict or None), given facts:

    ``source`` (src: format, virtual_size, backing_file, fingerprint), ``stored`` (the record of an
    imported volume), ``origin`` (clone_from: the volume described), ``backing`` (path, format,
    capacity) and ``users`` (domains, volumes) -- each present when the spec needs it.
    """
    if spec.state == 'absent':
        return _plan_absent(spec, actual, facts)
    if actual is None:
        return _plan_new(spec, facts)
    return _plan_existing(spec, actual, facts)


def summary(volume, spec):
    """What diff mode shows of a volume: format, capacity, backing, the permissions asked for, src."""
    if volume is None:
        return {'exists': False}
    shown = {'exists': True, 'format': volume['format'], 'capacity': volume['capacity'],
             'backing': volume['backing']}
    if spec.permissions:
        have = volume.get('permissions') or {}
        shown['permissions'] = dict((key, have.get(key)) for key in sorted(spec.permissions))
    if spec.src:
        shown['src'] = volume.get('src')
    if spec.url:
        shown.update(url=volume.get('url'), checksum=volume.get('checksum'))
    return shown


def _refuse(spec, message):
    raise ModuleFailure('%s%s: %s' % (where(spec.label), spec.about, message), about=spec.about)


def _plan_absent(spec, actual, facts):
    if actual is None:
        return Plan([], [], None)
    if in_use_text(facts['users']):
        _refuse(spec, 'not deleted, it is %s. Detach it (or delete the overlays) first.' % in_use_text(facts['users']))
    return Plan([('delete', 'state: absent')], ['volume: present -> absent'], None)


def _plan_new(spec, facts):
    downloads = []
    if spec.src:
        source = _importable(spec, facts['source'])
        fmt, base, first = source['format'], source['virtual_size'], ('import', 'imported from %s' % spec.src)
    elif spec.url:
        source = _importable(spec, facts['source'])
        fmt, base, first = source['format'], source['virtual_size'], ('import', 'downloaded from %s' % spec.url)
        downloads = _download_action(source)
    elif spec.clone_from:
        origin = facts['origin']
        fmt, base = spec.format or origin['format'], origin['capacity']
        first = ('clone', 'cloned from %s/%s' % (spec.clone_from['pool'], spec.clone_from['volume']))
    else:
        backing = facts.get('backing')
        fmt = 'qcow2' if backing else spec.format or 'qcow2'
        base = backing['capacity'] if backing else None
        if spec.capacity is None and base is None:
            _refuse(spec, 'capacity is needed to create the volume (or give src, clone_from or a backing volume)')
        capacity = created_capacity(spec.capacity, fmt) or base
        after = _new_volume(spec, facts, fmt, capacity)
        return Plan([('create', '%s, %s' % (fmt, human_size(capacity)))],
                    ['volume: absent -> present (%s, %s)' % (fmt, human_size(capacity))], after)
    wanted = created_capacity(spec.capacity, fmt) or base
    actions = downloads + [first]
    if base is not None and wanted < base:
        how = first[1].split()[0]
        _refuse(spec, 'capacity %s is smaller than its source (%s): a volume cannot be shrunk as it is %s; leave '
                      'capacity out or make it at least %s' % (human_size(wanted), human_size(base), how, human_size(base)))
    if wanted is not None and (base is None or wanted > base):
        actions.append(('resize', '%s -> %s' % (human_size(base), human_size(wanted))))
    after = _new_volume(spec, facts, fmt, wanted)
    return Plan(actions, ['volume: absent -> present (%s)' % first[1]], after)


def _download_action(source):
    """[('download', ...)] for the item that downloads the image in this call (none when it was in the cache)."""
    return [('download', '%s (%s)' % (source['url'], source['checksum']))] if source.get('download') else []


def _source_text(spec):
    return 'src %s' % spec.src if spec.src else 'url %s' % spec.url


def _importable(spec, source):
    """The source, unless it cannot be imported as asked (an image not downloaded yet, in check mode, has the
    format asked for and no backing file: what a real run finds is refused then, before any change)."""
    if spec.format and source['format'] and spec.format != source['format']:
        _refuse(spec, "%s is %s, format asks for %s: the volume is imported as it is. Convert the image first "
                      "(virtops.hypervisor.qemu_image) or leave format out"
                % (_source_text(spec), source['format'], spec.format))
    if source.get('backing_file'):
        _refuse(spec, '%s has a backing file (%s), which would not be in the pool: import a flattened copy '
                      '(virtops.hypervisor.qemu_image with src), or import the backing image as a volume and use '
                      'backing' % (_source_text(spec), source['backing_file']))
    return source


def _new_volume(spec, facts, fmt, capacity):
    backing = facts.get('backing')
    source = facts.get('source')
    return {'name': spec.name, 'pool': spec.pool, 'format': fmt, 'capacity': capacity,
            'backing': {'path': backing['path'], 'format': backing['format']} if backing else None,
            'permissions': dict(spec.permissions or {}),
            'src': source_shown(source['fingerprint']) if spec.src else None,
            'url': spec.url, 'checksum': source['checksum'] if spec.url else None}


def _plan_existing(spec, actual, facts):
    actions, differences = [], []
    url, checksum = recorded_url(facts.get('stored'))
    after = dict(actual, permissions=dict(actual['permissions']), src=source_shown(_stored_source(facts)),
                 url=url, checksum=checksum)
    if spec.format and actual['format'] != spec.format:
        _refuse(spec, 'it is %s, format asks for %s: libvirt does not convert a volume in place. Delete it (state: '
                      'absent) and create it again, or convert a copy with virtops.hypervisor.qemu_image'
                % (actual['format'], spec.format))
    if spec.backing:
        _check_backing(spec, actual, facts['backing'])
    base = actual['capacity']
    reimported = False
    if spec.src:
        source = facts['source']
        reasons = reimport_reasons(spec, actual, source, facts.get('stored'))
        if reasons:
            _importable(spec, source)
            if in_use_text(facts['users']):
                _refuse(spec, 'not imported again from %s (%s), it is %s. Detach it first.'
                        % (spec.src, '; '.join(reasons), in_use_text(facts['users'])))
            actions.append(('reimport', '; '.join(reasons)))
            differences.extend('src: %s' % reason for reason in reasons)
            base, reimported = source['virtual_size'], True
            after.update(format=source['format'], capacity=base, src=source_shown(source['fingerprint']),
                         permissions=dict(spec.permissions or {}))
    if spec.url:
        base, reimported = _plan_download(spec, actual, facts, actions, differences, after)
    wanted = created_capacity(spec.capacity, after['format'])
    if wanted is not None and wanted != base:
        if base is not None:  # None: an image to download, its size known once it is here
            _check_resize(spec, actual, facts, base, wanted, reimported)
        actions.append(('resize', '%s -> %s' % (human_size(base), human_size(wanted))))
        differences.append('capacity: %s -> %s' % (human_size(base), human_size(wanted)))
        after['capacity'] = wanted
    if spec.permissions and not reimported:
        changed = [key for key in sorted(spec.permissions) if actual['permissions'].get(key) != spec.permissions[key]]
        if changed:
            actions.append(('permissions', ', '.join(changed)))
            differences.extend('permissions.%s: %s -> %s' % (key, actual['permissions'].get(key), spec.permissions[key])
                               for key in changed)
            after['permissions'].update(spec.permissions)
    return Plan(actions, differences, after)


def _plan_download(spec, actual, facts, actions, differences, after):
    """Download again when the checksum changed (refused while the volume is in use); only rewrite the record when
    another URL serves the same checksum. Returns (capacity before resizing, whether it is imported again)."""
    source = facts['source']
    reasons = download_reasons(spec, facts.get('stored'), source['checksum'])
    if not reasons:
        if after['url'] != spec.url:
            actions.append(('record', 'url %s -> %s (same checksum, not downloaded again)' % (after['url'], spec.url)))
            differences.append('url: %s -> %s' % (after['url'], spec.url))
            after['url'] = spec.url
        return actual['capacity'], False
    _importable(spec, source)
    if in_use_text(facts['users']):
        _refuse(spec, 'not downloaded and imported again from %s (%s), it is %s. Detach it first.'
                % (spec.url, '; '.join(reasons), in_use_text(facts['users'])))
    actions.extend(_download_action(source) + [('reimport', '; '.join(reasons))])
    differences.extend('url: %s' % reason for reason in reasons)
    after.update(format=source['format'], capacity=source['virtual_size'], url=spec.url, checksum=source['checksum'],
                 permissions=dict(spec.permissions or {}))
    return source['virtual_size'], True


def _stored_source(facts):
    stored = facts.get('stored')
    return stored.get('source') if isinstance(stored, dict) else None


def _check_backing(spec, actual, backing):
    have = actual['backing']['path'] if actual['backing'] else None
    if have is None or os.path.normpath(have) != os.path.normpath(backing['path']):
        _refuse(spec, 'it is backed by %s, backing asks for %s: the backing file of a volume is not changed in '
                      'place. Delete it (state: absent) and create it again' % (have or 'nothing', backing['path']))


def _check_resize(spec, actual, facts, base, wanted, reimported):
    if wanted > base:
        return
    if reimported:
        _refuse(spec, 'capacity %s is smaller than %s (%s): an import cannot be shrunk'
                % (human_size(wanted), _source_text(spec), human_size(base)))
    if not spec.allow_shrink:
        _refuse(spec, 'capacity %s is smaller than its capacity %s: shrinking loses the data at its end; set '
                      'allow_shrink: true if that is meant' % (human_size(wanted), human_size(base)))
    if in_use_text(facts['users']):
        _refuse(spec, 'not shrunk, it is %s. Detach it first.' % in_use_text(facts['users']))
    if actual['allocation'] is not None and wanted < actual['allocation']:
        _refuse(spec, 'capacity %s is below the space it already takes (%s): libvirt does not shrink a volume below '
                      'its allocation' % (human_size(wanted), human_size(actual['allocation'])))
