# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain's cloud_init: the domain's NoCloud seed, where it is kept, and the CD-ROM it is on.

* ``SeedSpec`` (pure): the options validated into the seed files and the image bytes. Unless meta_data
  names them, ``instance-id`` is the domain name and a hash of the other seed content (so a guest
  restarted on changed data runs cloud-init's per-instance modules again) and ``local-hostname`` is the
  domain name.
* ``locate``: a raw volume ``<domain>-cidata.iso`` in ``cloud_init.pool``, else in the pool of the
  domain's first disk, else (a file no pool holds, local connections) a file of that name beside it.
* ``SeedStore``: reads the stored seed's bytes and writes the image (virStorageVolUpload, or an atomic
  file write). The seed is rebuilt only when its bytes differ.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import json
import os
import tempfile
import xml.etree.ElementTree as ET

from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.virtops.hypervisor.plugins.module_utils import _cloud_init_seed as seed
from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    LibvirtFailure, error_text, is_error, libvirt)
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_read import lookup_volume

SEED_SUFFIX = '-cidata.iso'
SECRET_FILES = ('user-data', 'vendor-data')  # shown as sha256 only: they hold passwords and keys
SHOWN_ORDER = ('meta-data', 'network-config', 'user-data', 'vendor-data')
FILE_MODE = 0o644
# More than any seed holds (a few KiB of data), less than a volume a pool rounded up could be worth reading.
READ_LIMIT = 4 * 1024 * 1024

OPTIONS = {
    'user_data': {'type': 'raw', 'no_log': True},
    'meta_data': {'type': 'dict'},
    'network_config': {'type': 'raw'},
    'vendor_data': {'type': 'raw', 'no_log': True},
    'pool': {'type': 'str'},
}

Location = collections.namedtuple('Location', 'kind pool name path')


class CloudInitError(dx.DomainXMLError):
    """cloud_init cannot be used as given; the message names the option."""


def narrow_no_log(module):
    """Hide user and vendor data as whole documents, not string by string.

    Ansible's no_log on a dict option makes each string in it a secret, masked wherever it occurs in the
    result: user data with a user 'ops' turns 'virtops' into 'virt********' in every path and name. Once the
    seeds are built, the data's own strings are no longer secrets; the rendered documents are, and the
    parameters (returned as the invocation) hold their sha256 instead.
    """
    try:
        from ansible.module_utils.common.parameters import _list_no_log_values
    except ImportError:  # not in this ansible-core: keep its wider masking
        return
    original = copy.deepcopy(module.params)
    documents = []
    for holder in _cloud_init_params(module.params):
        for key in ('user_data', 'vendor_data'):
            if holder.get(key) is not None:
                documents.append(seed.document(holder[key], cloud_config=True))
                holder[key] = None
    if not documents:
        return
    only_in_data = (_list_no_log_values(module.argument_spec, original)
                    - _list_no_log_values(module.argument_spec, module.params))
    module.no_log_values.difference_update(only_in_data)
    module.no_log_values.update(data.decode('utf-8', 'replace') for data in documents if data.strip())
    for holder, original_holder in zip(_cloud_init_params(module.params), _cloud_init_params(original)):
        for key in ('user_data', 'vendor_data'):
            if original_holder.get(key) is not None:
                holder[key] = seed.digest(seed.document(original_holder[key], cloud_config=True))


def _cloud_init_params(params):
    found = [params['cloud_init']] if params.get('cloud_init') else []
    found.extend(item['cloud_init'] for item in params.get('domains') or () if item.get('cloud_init'))
    return found


def seed_name(domain):
    return domain + SEED_SUFFIX


def is_seed_of(domain, disk_elem):
    """Is this <disk> the domain's seed (a CD-ROM whose source is named <domain>-cidata.iso)?"""
    source = dx.disk_source(disk_elem)
    return (disk_elem.get('device') == 'cdrom' and source is not None
            and os.path.basename(source[1]) == seed_name(domain))


def _label(label, key):
    return '%s.%s' % (label, key) if label else key


class SeedSpec(object):
    """The seed a domain's cloud_init option asks for."""

    def __init__(self, options, domain, label):
        self.label = _label(label, 'cloud_init')
        self.pool = options.get('pool')
        user_data = self._document(options.get('user_data'), 'user_data', (dict, str), {})
        vendor_data = self._document(options.get('vendor_data'), 'vendor_data', (dict, str), None)
        network_config = self._document(options.get('network_config'), 'network_config', (dict, str), None)
        self._check_network_version(network_config)
        meta_data = self._document(options.get('meta_data'), 'meta_data', (dict,), {})
        meta_data = dict(meta_data)
        meta_data.setdefault('local-hostname', domain)
        if 'instance-id' not in meta_data:
            unnamed = seed.seed_files(meta_data, user_data, network_config, vendor_data)
            content = hashlib.sha256(json.dumps(sorted((name, data.hex()) for name, data in unnamed.items()))
                                     .encode()).hexdigest()
            meta_data['instance-id'] = '%s-%s' % (domain, content[:12])
        self.instance_id = str(meta_data['instance-id'])
        self.image, self.files = seed.build_seed(meta_data, user_data, network_config, vendor_data)

    def _document(self, value, key, types, default):
        if value is None:
            return default
        if not isinstance(value, types):
            kinds = ' or '.join('a dict' if kind is dict else 'a string' for kind in types)
            raise CloudInitError('%s.%s: must be %s, not %s' % (self.label, key, kinds, type(value).__name__))
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise CloudInitError('%s.%s: cannot be written to the seed: %s' % (self.label, key, exc))
        if isinstance(value, dict) and any(not isinstance(name, str) for name in value):
            raise CloudInitError('%s.%s: keys must be strings' % (self.label, key))
        return value

    def _check_network_version(self, network_config):
        if not isinstance(network_config, dict):
            return
        config = network_config.get('network', network_config)
        version = config.get('version') if isinstance(config, dict) else None
        if version not in (1, 2):
            raise CloudInitError('%s.network_config.version: must be 1 or 2 (cloud-init network config), not %s'
                                 % (self.label, json.dumps(version)))

    def digest(self):
        return seed.digest(self.image)


def shown(files):
    """The seed as diff mode shows it: meta-data and network-config as written, the others as hashes."""
    if files is None:
        return ''
    parts = []
    for name in SHOWN_ORDER + tuple(sorted(set(files) - set(SHOWN_ORDER))):
        if name not in files:
            continue
        text = seed.digest(files[name]) + '\n' if name in SECRET_FILES else files[name].decode('utf-8', 'replace')
        parts.append('# %s\n%s%s' % (name, text, '' if text.endswith('\n') else '\n'))
    return ''.join(parts)


def shown_image(image):
    """A stored seed as diff mode shows it: its files, or its hash when it is no ISO image this can read."""
    if image is None:
        return ''
    files = seed.read_iso(image)
    return shown(files) if files is not None else seed.digest(image) + '\n'


def first_disk_source(root):
    for disk in root.iter('disk'):
        if disk.get('device', 'disk') == 'disk':
            return dx.disk_source(disk)
    return None


def locate(conn, uri, spec, label, domain, root):
    """Where the seed of domain goes, given the definition root it will be attached to."""
    name = seed_name(domain)
    about = "domain '%s'" % domain
    if spec.pool:
        _active_pool(conn, spec.pool, spec.label, about, name)
        return Location('volume', spec.pool, name, None)
    source = first_disk_source(root)
    if source is None:
        raise LibvirtFailure('%s: the domain has no disk to put the seed beside; give cloud_init.pool'
                             % spec.label, about=about)
    kind, value = source
    if kind == 'volume':
        pool = value.split('/', 1)[0]
        _active_pool(conn, pool, spec.label, about, name)
        return Location('volume', pool, name, None)
    try:
        pool = conn.storageVolLookupByPath(value).storagePoolLookupByVolume().name()
        return Location('volume', pool, name, None)
    except libvirt.libvirtError as exc:
        if not is_error(exc, 'VIR_ERR_NO_STORAGE_VOL'):
            raise LibvirtFailure('%s: cannot find the pool of the first disk %s: %s'
                                 % (spec.label, value, error_text(exc)), about=about)
    if kind == 'block' or urlparse(uri).netloc:
        raise LibvirtFailure('%s: the first disk %s is in no storage pool%s; give cloud_init.pool'
                             % (spec.label, value, ' of this remote connection' if kind != 'block' else ''),
                             about=about)
    return Location('file', None, name, os.path.join(os.path.dirname(value), name))


class PoolUnavailable(LibvirtFailure):
    """The seed's pool does not exist or is not active (check mode plans the seed in it all the same)."""

    def __init__(self, msg, about, location):
        super(PoolUnavailable, self).__init__(msg, about=about)
        self.location = location


def _active_pool(conn, name, label, about, seed):
    try:
        pool = conn.storagePoolLookupByName(name)
        active = pool.isActive()
    except libvirt.libvirtError as exc:
        if is_error(exc, 'VIR_ERR_NO_STORAGE_POOL'):
            raise PoolUnavailable("%s: storage pool '%s' for the seed: %s" % (label, name, error_text(exc)), about,
                                  Location('volume', name, seed, None))
        raise LibvirtFailure("%s: storage pool '%s' for the seed: %s" % (label, name, error_text(exc)), about=about)
    if not active:
        raise PoolUnavailable("%s: storage pool '%s' for the seed is not active; start it first" % (label, name),
                              about, Location('volume', name, seed, None))
    return pool


def seed_disk(location, bus):
    """The seed's CD-ROM in the structured options' disk form."""
    disk = {'device': 'cdrom', 'bus': bus, 'format': 'raw', 'readonly': True}
    if location.kind == 'volume':
        disk['volume'] = {'pool': location.pool, 'name': location.name}
    else:
        disk['path'] = location.path
    return disk


def attached_seed(domain, root):
    """The seed CD-ROM attached in root, in the disk form of the options (its target kept), or None."""
    for elem in root.iter('disk') if root is not None else ():
        if is_seed_of(domain, elem):
            kind, value = dx.disk_source(elem)
            target = elem.find('target')
            disk = {'device': 'cdrom', 'bus': target.get('bus'), 'target': target.get('dev'), 'format': 'raw',
                    'readonly': True}
            if kind == 'volume':
                pool, name = value.split('/', 1)
                disk['volume'] = {'pool': pool, 'name': name}
            else:
                disk['path'] = value
            return disk
    return None


def cdrom_bus(root, existing_bus=None):
    """SATA on q35 and other machines, IDE on the i440fx 'pc' machines (and libvirt's default for x86)."""
    if existing_bus in ('sata', 'ide', 'scsi'):
        return existing_bus
    os_type = root.find('os/type')
    machine = (os_type.get('machine') if os_type is not None else None) or ''
    arch = (os_type.get('arch') if os_type is not None else None) or ''
    if 'q35' in machine:
        return 'sata'
    if machine.startswith('pc') or (not machine and arch in ('x86_64', 'i686', '')):
        return 'ide'
    return 'sata'


def describe_location(location):
    if location.kind == 'volume':
        return {'storage': 'volume', 'pool': location.pool, 'volume': location.name, 'path': None}
    return {'storage': 'file', 'pool': None, 'volume': None, 'path': location.path}


class SeedStore(object):
    """Read and write seeds through a connection."""

    def __init__(self, conn):
        self.conn = conn

    def read(self, location, label, about):
        """The stored seed's bytes (its first READ_LIMIT bytes), or None when there is none."""
        if location.kind == 'file':
            try:
                with open(location.path, 'rb') as stored:
                    return stored.read(READ_LIMIT)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise LibvirtFailure('%s: cannot read the seed %s: %s' % (label, location.path, exc), about=about)
        try:
            vol = self._volume(location)
            return None if vol is None else _download(self.conn, vol, min(vol.info()[1], READ_LIMIT))
        except libvirt.libvirtError as exc:
            raise LibvirtFailure("%s: cannot read the seed volume '%s' in pool '%s': %s"
                                 % (label, location.name, location.pool, error_text(exc)), about=about)

    def write(self, location, image, label, about):
        if location.kind == 'file':
            _write_file(location.path, image, label, about)
            return
        try:
            vol = self._volume(location)
            if vol is not None and vol.info()[1] < len(image):
                vol.delete(0)
                vol = None
            if vol is None:
                pool = self.conn.storagePoolLookupByName(location.pool)
                vol = pool.createXML(_volume_xml(location.name, len(image)), 0)
            capacity = vol.info()[1]
            _upload(self.conn, vol, image + bytes(capacity - len(image)))
        except libvirt.libvirtError as exc:
            raise LibvirtFailure("%s: cannot write the seed volume '%s' in pool '%s': %s"
                                 % (label, location.name, location.pool, error_text(exc)), about=about)

    def _volume(self, location):
        pool = self.conn.storagePoolLookupByName(location.pool)
        vol = lookup_volume(pool, location.name)
        if vol is None:
            pool.refresh(0)  # a seed file the pool has not listed yet would make creating the volume fail
            vol = lookup_volume(pool, location.name)
        return vol


def same_seed(stored, image):
    """A stored seed is the wanted one when it starts with the image's bytes and holds nothing after them
    but zeros (a pool may round a volume up: an LVM extent)."""
    return stored is not None and stored[:len(image)] == image and not stored[len(image):].strip(b'\x00')


def _volume_xml(name, size):
    volume = ET.Element('volume')
    ET.SubElement(volume, 'name').text = name
    ET.SubElement(volume, 'capacity', {'unit': 'bytes'}).text = str(size)
    ET.SubElement(volume, 'allocation', {'unit': 'bytes'}).text = str(size)
    target = ET.SubElement(volume, 'target')
    ET.SubElement(target, 'format', {'type': 'raw'})
    ET.SubElement(ET.SubElement(target, 'permissions'), 'mode').text = '0644'
    return ET.tostring(volume, encoding='unicode')


def _download(conn, vol, length):
    chunks = []
    stream = conn.newStream(0)
    vol.download(stream, 0, length, 0)
    try:
        stream.recvAll(lambda _stream, data, _opaque: chunks.append(data), None)
        stream.finish()
    except BaseException:
        stream.abort()
        raise
    return b''.join(chunks)


def _upload(conn, vol, data):
    view = memoryview(data)
    sent = [0]

    def chunk(_stream, nbytes, _opaque):
        piece = view[sent[0]:sent[0] + nbytes].tobytes()
        sent[0] += len(piece)
        return piece

    stream = conn.newStream(0)
    vol.upload(stream, 0, len(data), 0)
    try:
        stream.sendAll(chunk, None)
        stream.finish()
    except BaseException:
        stream.abort()
        raise


def _write_file(path, image, label, about):
    """Write the seed beside the disk atomically: a reader sees the old seed or the new one."""
    directory = os.path.dirname(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
        try:
            with os.fdopen(fd, 'wb') as out:
                out.write(image)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, FILE_MODE)
            os.rename(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise LibvirtFailure('%s: cannot write the seed %s: %s' % (label, path, exc), about=about)
