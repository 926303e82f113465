# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_volume's options: the argument spec, and the items validated into VolumeSpecs (pure, no libvirt).

Every item of ``volumes`` takes the top-level value of an option it leaves out, so ``pool`` (or
``state``, ``format``, ``permissions``) can be given once for the whole batch.
"""

from __future__ import annotations

import grp
import os
import pwd
import re

from ansible.module_utils.common.text.converters import to_text
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._download import (
    DECOMPRESS, URL_OPTIONS, URL_SCHEMES, parse_checksum)
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import URI_OPTION
from ansible_collections.virtops.hypervisor.plugins.module_utils._qemu_img import parse_size

FORMATS = ('qcow2', 'raw')
MODE_PATTERN = re.compile(r'^0?[0-7]{3}$')
SOURCES = ('src', 'url', 'clone_from', 'backing')


def where(label):
    """Message prefix naming the input: 'volumes[3].capacity: ', 'capacity: '."""
    return '%s: ' % label if label else ''


def join(label, key):
    return '%s.%s' % (label, key) if label else key


def about(pool, name):
    return "volume '%s' in pool '%s'" % (name, pool)


class VolumeSpec(object):
    """One volume as asked, validated: sizes in bytes, paths absolute, owner and group as numbers."""

    def __init__(self, item, label):
        self.label = label
        self.name = item.get('name')
        self.pool = item.get('pool')
        if not self.name or not self.pool:
            raise ModuleFailure('%sgive pool and name of the volume' % where(label))
        if '/' in self.name:
            raise ModuleFailure("%s'%s' contains '/': a volume name is a file name in its pool"
                                % (where(join(label, 'name')), self.name), about=self.about)
        self.state = item.get('state') or 'present'
        self.allow_shrink = bool(item.get('allow_shrink'))
        self.format = item.get('format')
        self.capacity = self._size(item.get('capacity'), 'capacity')
        self.allocation = 0 if item.get('allocation') in (0, '0') else self._size(item.get('allocation'), 'allocation')
        given = [key for key in SOURCES if item.get(key)]
        if len(given) > 1:
            raise ModuleFailure('%s%s are mutually exclusive: a volume is imported, cloned or an overlay, not more'
                                % (where(label), ' and '.join(given)), about=self.about)
        self.src = self._src(item.get('src'))
        self.url, self.checksum, self.decompress = self._url(item)
        if (self.src or self.url) and self.allocation is not None:
            raise ModuleFailure('%sallocation does not apply to an import: the volume takes what the file takes (its '
                                'holes stay holes)' % where(join(label, 'allocation')), about=self.about)
        self.clone_from = self._volume_ref(item.get('clone_from'), 'clone_from')
        self.backing = self._backing(item.get('backing'))
        self.permissions = self._permissions(item.get('permissions'))
        if self.format and self.format not in FORMATS:
            raise ModuleFailure("%s'%s' is not one of %s" % (where(join(label, 'format')), self.format, ', '.join(FORMATS)),
                                about=self.about)
        if self.backing and self.format not in (None, 'qcow2'):
            raise ModuleFailure('%sa volume with a backing volume is a qcow2 overlay, not %s'
                                % (where(join(label, 'format')), self.format), about=self.about)

    @property
    def about(self):
        return about(self.pool, self.name)

    def _size(self, value, key):
        try:
            return parse_size(value, join(self.label, key))
        except ModuleFailure as failure:
            raise ModuleFailure(failure.msg, about=self.about)

    def _src(self, value):
        if not value:
            return None
        if not os.path.isabs(value):
            raise ModuleFailure("%s'%s' must be an absolute path on the target"
                                % (where(join(self.label, 'src')), value), about=self.about)
        return os.path.normpath(value)

    def _url(self, item):
        """(url, Checksum, decompress) of an image to download, or (None, None, None). A checksum is required:
        checksum: none says that the URL alone is trusted."""
        url, checksum = item.get('url'), item.get('checksum')
        if not url:
            if checksum and not self.label:
                raise ModuleFailure('%sgoes with url' % where('checksum'), about=self.about)
            return None, None, None
        if '://' not in url or url.split('://', 1)[0].lower() not in URL_SCHEMES:
            schemes = ', '.join(scheme + '://' for scheme in URL_SCHEMES)
            raise ModuleFailure("%s'%s' is not a URL (%s)" % (where(join(self.label, 'url')), url, schemes),
                                about=self.about)
        if not checksum:
            raise ModuleFailure('%sis required with url: give sha256:<hex> (or sha512:<hex>), the URL of a checksum '
                                'file such as SHA256SUMS, or none to trust the URL without one'
                                % where(join(self.label, 'checksum')), about=self.about)
        try:
            parsed = parse_checksum(checksum, join(self.label, 'checksum'))
        except ModuleFailure as failure:
            raise ModuleFailure(failure.msg, about=self.about)
        decompress = item.get('decompress') or 'auto'
        if decompress not in DECOMPRESS:
            raise ModuleFailure("%s'%s' is not one of %s"
                                % (where(join(self.label, 'decompress')), decompress, ', '.join(DECOMPRESS)),
                                about=self.about)
        return url, parsed, decompress

    def _volume_ref(self, value, key):
        """{volume, pool} of another volume; pool defaults to this volume's pool."""
        if not value:
            return None
        label = join(self.label, key)
        if not value.get('volume'):
            raise ModuleFailure('%sgive the volume (and its pool, default %s)' % (where(label), self.pool),
                                about=self.about)
        ref = {'volume': value['volume'], 'pool': value.get('pool') or self.pool}
        if (ref['pool'], ref['volume']) == (self.pool, self.name):
            raise ModuleFailure('%sis the volume itself' % where(label), about=self.about)
        return ref

    def _backing(self, value):
        if not value:
            return None
        label = join(self.label, 'backing')
        if value.get('path') and value.get('volume'):
            raise ModuleFailure('%sgive volume (and pool) or path (and format), not both' % where(label),
                                about=self.about)
        if value.get('path'):
            if not os.path.isabs(value['path']):
                raise ModuleFailure("%spath '%s' must be absolute" % (where(label), value['path']), about=self.about)
            if value.get('pool'):
                raise ModuleFailure('%spool goes with volume, not with path' % where(label), about=self.about)
            return {'path': os.path.normpath(value['path']), 'format': value.get('format')}
        if value.get('format'):
            raise ModuleFailure('%sformat goes with path; a volume has its own' % where(label), about=self.about)
        return self._volume_ref(value, 'backing')

    def _permissions(self, value):
        if not value:
            return None
        label = join(self.label, 'permissions')
        wanted = {}
        mode = value.get('mode')
        if mode is not None:
            # An unquoted YAML 0640 arrives as the number 416, as for ansible.builtin.file.
            text = '%o' % mode if isinstance(mode, int) and 0 <= mode <= 0o777 else to_text(mode)
            if not MODE_PATTERN.match(text):
                raise ModuleFailure("%s'%s' is not an octal mode such as '0640'" % (where(join(label, 'mode')), mode),
                                    about=self.about)
            wanted['mode'] = '%04o' % int(text, 8)
        for key, lookup in (('owner', lambda name: pwd.getpwnam(name).pw_uid),
                            ('group', lambda name: grp.getgrnam(name).gr_gid)):
            given = value.get(key)
            if given is None:
                continue
            text = to_text(given)
            if text.isdigit():
                wanted[key] = int(text)
                continue
            try:
                wanted[key] = lookup(text)
            except KeyError:
                raise ModuleFailure("%s'%s' does not exist on the target: create it first, or give a number"
                                    % (where(join(label, key)), given), about=self.about)
        return wanted or None


def build_specs(params):
    """Validate the module parameters into VolumeSpecs: (specs, batch); raises ModuleFailure naming the input."""
    if params.get('volumes') is None:
        return [VolumeSpec(params, '')], False
    specs = []
    for index, item in enumerate(params['volumes']):
        merged = dict((key, params.get(key) if item.get(key) is None else item[key]) for key in VOLUME_OPTIONS)
        specs.append(VolumeSpec(merged, 'volumes[%d]' % index))
    seen = {}
    for spec in specs:
        key = (spec.pool, spec.name)
        if key in seen:
            raise ModuleFailure("%s appears twice: %s and %s" % (spec.about, seen[key], spec.label), about=spec.about)
        seen[key] = spec.label
    return specs, True


VOLUME_REF = {'volume': {'type': 'str'}, 'pool': {'type': 'str'}}
VOLUME_OPTIONS = {
    'pool': {'type': 'str'},
    'name': {'type': 'str'},
    'state': {'type': 'str', 'choices': ['present', 'absent']},
    'capacity': {'type': 'raw'},
    'format': {'type': 'str', 'choices': list(FORMATS)},
    'allocation': {'type': 'raw'},
    'backing': {'type': 'dict', 'options': dict(VOLUME_REF, path={'type': 'path'}, format={'type': 'str'})},
    'src': {'type': 'path'},
    'url': {'type': 'str'},
    'checksum': {'type': 'str'},
    'decompress': {'type': 'str', 'choices': list(DECOMPRESS)},
    'clone_from': {'type': 'dict', 'options': dict(VOLUME_REF)},
    'permissions': {'type': 'dict', 'options': {
        'mode': {'type': 'raw'}, 'owner': {'type': 'str'}, 'group': {'type': 'str'}}},
    'allow_shrink': {'type': 'bool'},
}
# The URL options (url_headers, url_timeout, validate_certs ...) are top-level only: one set for the call.
MODULE_OPTIONS = dict(
    VOLUME_OPTIONS, uri=dict(URI_OPTION),
    state={'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
    allow_shrink={'type': 'bool', 'default': False},
    volumes={'type': 'list', 'elements': 'dict', 'options': VOLUME_OPTIONS},
    **URL_OPTIONS)
