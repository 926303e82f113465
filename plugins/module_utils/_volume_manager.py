# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_volume: plan every item (reading through _volume_read), then act; imports through _volume_import.

Every item is validated and planned before the first change (a refused item fails the whole batch
with nothing changed); later items see what earlier ones will do (an overlay on a base volume created
in the same batch). Then the items' actions run in order, each through ``Result.perform``.

``src`` is imported with virStorageVolUpload through a sparse stream: libvirt creates the volume and
owns the file (its owner, mode and label as the pool and the volume XML say), holes stay holes, and
no temporary file appears in the pool (a dir pool lists every file of its directory as a volume,
dot files too, so qemu_image's temporary files and fingerprint sidecars would show up as volumes).
The volume is created raw with the size of the file, the file is streamed in byte for byte, and a
pool refresh lets libvirt probe its format. The fingerprint of the source (as qemu_image records it:
size, mtime, inode, device, format, virtual size) is stored as the extended attribute
``user.virtops.libvirt_volume`` of the volume's file, so ``src`` needs a pool whose volumes are
files on the target the module runs on (dir, fs, netfs over a local URI).

``url`` downloads the image into a cache on the target first (_download: verified against the
checksum, decompressed, renamed into place) and imports the cached file the same way; the record
then holds the URL and the checksum verified. A real run downloads while planning, before the first
change of the call, so an image that cannot be imported as asked fails the batch with no volume
changed; check mode never downloads.
"""

from __future__ import annotations

import errno
import os
import time
import xml.etree.ElementTree as ET

from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._download import (
    ImageCache, cache_key, checksum_from_file, fetch_checksum_file)
from ansible_collections.virtops.hypervisor.plugins.module_utils._image_files import source_fingerprint
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    LibvirtFailure, error_text, libvirt, require_libvirt, retry_on_conflict, with_connection)
from ansible_collections.virtops.hypervisor.plugins.module_utils._qemu_img import ImageFailure, QemuImg
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume import (
    describe, domains_using, download_reasons, import_record, in_use_text, plan_volume, recorded_url, source_shown,
    summary, url_record, volumes_backed_by)
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_import import (
    read_record, records_unsupported, store_record, upload_file)
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_options import build_specs, join, where
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_read import (
    BUILD_WAIT, FILE_POOLS, Inventory, find_pool, lookup_volume, read_volume)

_STALE = object()


class _Building(Exception):
    """libvirt refused an action because another run is still creating the volume."""

    def __init__(self, msg):
        super(_Building, self).__init__(msg)
        self.msg = msg


def converge_module(module, result):
    """The body of libvirt_volume: validate every item, connect once, plan all items, act, report."""
    require_libvirt()
    specs, batch = build_specs(module.params)
    uri = module.params['uri']
    with_connection(uri, lambda conn: VolumeManager(conn, module, result).converge(specs, batch))


class _Item(object):
    def __init__(self, spec, result):
        self.spec = spec
        self.result = result
        self.pool = None
        self.vol = None
        self.actual = None
        self.facts = {}
        self.plan = None


class VolumeManager(object):
    """One libvirt_volume call over one connection."""

    def __init__(self, conn, module, result):
        self.conn = conn
        self.module = module
        self.result = result
        self.inventory = Inventory(conn)
        self.planned = {}  # (pool, name) -> the volume an earlier item leaves (None: deleted)
        self._qemu = None
        self._pools = {}
        self._checksum_files = {}  # checksum file URL -> its text: each file is fetched once a call
        self._downloads = {}  # (cache key, decompress) -> label of the item that downloads it in this call

    def converge(self, specs, batch):
        items = []
        for spec in specs:
            result = self.result.item('volumes', pool=spec.pool, name=spec.name) if batch else self.result
            result.set(pool=spec.pool, name=spec.name)
            item = _Item(spec, result)
            try:
                self._read(item)
                item.plan = plan_volume(spec, item.actual, item.facts)
            except ModuleFailure as failure:
                raise _naming_item(failure, spec)
            self.planned[(spec.pool, spec.name)] = self._predicted_after(item)
            items.append(item)
        for item in items:
            self._act(item)
            self._report(item)

    # --- reading -------------------------------------------------------------------------------

    def _pool(self, name):
        if name not in self._pools:
            try:
                pool = find_pool(self.conn, name)
            except LibvirtFailure as failure:
                self.result.plan_without(failure, 'plans its volumes as if it were empty', needed='creates or starts it')
                self._pools[name] = (None, {'type': None, 'path': None})
                return self._pools[name]
            root = ET.fromstring(pool.XMLDesc(0))
            self._pools[name] = (pool, {'type': root.get('type'), 'path': root.findtext('target/path')})
        return self._pools[name]

    def _read(self, item):
        spec = item.spec
        item.pool, pool_facts = self._pool(spec.pool)
        item.facts['pool'] = pool_facts
        if item.pool is None:
            self._read_for_missing_pool(item)
            return
        item.vol, item.actual = read_volume(item.pool, spec.name, spec.pool)
        if spec.state == 'absent' or item.actual is not None and (spec.src or spec.url or spec.capacity is not None):
            item.facts['users'] = self._users(item.actual) if item.actual is not None else {}
        if spec.state == 'absent':
            return
        if spec.src or spec.url:
            self._require_file_pool(spec, pool_facts)
            if item.actual is not None:
                item.facts['stored'] = read_record(item.actual['path'])
            item.facts['source'] = self._source(spec) if spec.src else self._url_source(item)
        if spec.clone_from and item.actual is None:
            item.facts['origin'] = self._other_volume(spec, spec.clone_from, 'clone_from')
        if spec.backing:
            item.facts['backing'] = self._backing(spec)

    def _read_for_missing_pool(self, item):
        """Check mode, the pool missing: the volume is to be made from its source."""
        spec = item.spec
        item.vol, item.actual = None, None
        if spec.state == 'absent':
            item.facts['users'] = {}
            return
        if spec.src:
            item.facts['source'] = self._source(spec)
        elif spec.url:
            item.facts['source'] = self._url_source(item)
        if spec.clone_from:
            item.facts['origin'] = self._other_volume(spec, spec.clone_from, 'clone_from')
        if spec.backing:
            item.facts['backing'] = self._backing(spec)

    def _users(self, volume):
        overlays = volumes_backed_by(self.inventory.volumes(), volume)
        overlays += ['%s/%s' % key for key, after in self.planned.items()
                     if after and after.get('backing') and after['backing']['path'] == volume['path']]
        return {'domains': domains_using(self.inventory.domain_xmls(), volume), 'volumes': sorted(set(overlays))}

    def _require_file_pool(self, spec, pool_facts):
        option = 'src' if spec.src else 'url'
        if pool_facts['type'] not in FILE_POOLS or not os.path.isdir(pool_facts['path'] or ''):
            raise ModuleFailure(
                "%s%s needs a pool whose volumes are files on this host (dir, fs or netfs, over a local URI): the "
                "fingerprint of the source is stored with the volume's file. Pool '%s' is %s at %s."
                % (where(spec.label), option, spec.pool, pool_facts['type'], pool_facts['path']), about=spec.about)
        unsupported = records_unsupported(pool_facts['path'])
        if unsupported:
            raise ModuleFailure(
                "%s%s needs user extended attributes on the file system of pool '%s' (%s: %s): the fingerprint of "
                "the source is stored in one" % (where(spec.label), option, spec.pool, pool_facts['path'], unsupported),
                about=spec.about)

    def _url_source(self, item):
        """The image at spec.url as far as this run knows it. The image is looked at only when the volume must be
        (re)made: a volume whose record has the checksum costs no request (a checksum file URL: one, for the file)
        and no read. A real run downloads a missing image here, before the first change of the call; check mode
        never downloads (format and size are then the ones asked for, or unknown)."""
        spec = item.spec
        checksum = self._checksum(spec)
        source = {'url': spec.url, 'checksum': checksum.text, 'path': None, 'download': False,
                  'format': spec.format, 'virtual_size': None, 'backing_file': None, 'size': None}
        if item.actual is not None and (not download_reasons(spec, item.facts.get('stored'), checksum.text)
                                        or in_use_text(item.facts['users'])):
            return source  # nothing to download; or the plan refuses to import a volume in use again
        cache = ImageCache(self.module, self.module.params['download_cache'])
        path = cache.lookup(spec.url, checksum, spec.decompress)
        entry = (cache_key(spec.url, checksum), spec.decompress)
        if path is None or entry in self._downloads:
            # the first item that needs the image lists its download; the others of the batch share it
            source['download'] = self._downloads.setdefault(entry, spec.label) == spec.label
        if path is None and not self.result.check_mode:
            path = cache.download(spec.url, checksum, spec.decompress, spec.label)
            item.result.mark_changed()
        if path is not None:
            source.update(self._image_facts(spec, path), path=path)
        return source

    def _checksum(self, spec):
        """spec.checksum with a checksum file resolved to the line for spec.url."""
        if spec.checksum.kind != 'file':
            return spec.checksum
        file_url = spec.checksum.url
        if file_url not in self._checksum_files:
            self._checksum_files[file_url] = fetch_checksum_file(self.module, file_url, spec.label)
        return spec.checksum.resolved(checksum_from_file(self._checksum_files[file_url], spec.checksum, spec.url,
                                                         spec.label))

    def _image_facts(self, spec, path):
        if self._qemu is None:
            self._qemu = QemuImg(self.module)
        try:
            info = self._qemu.info(path)
            size = os.stat(to_bytes(path, errors='surrogate_or_strict')).st_size
        except (ImageFailure, OSError) as exc:
            raise ModuleFailure('%scannot read the image downloaded from %s (%s): %s'
                                % (where(spec.label), spec.url, path, exc), about=spec.about)
        return {'format': info['format'], 'virtual_size': info['virtual_size'], 'backing_file': info['backing_file'],
                'size': size}

    def _source(self, spec):
        if self._qemu is None:
            self._qemu = QemuImg(self.module)
        try:
            info = self._qemu.info(spec.src)
            st = os.stat(to_bytes(spec.src, errors='surrogate_or_strict')) if info is not None else None
        except (ImageFailure, OSError) as exc:
            raise ModuleFailure('%scannot read src %s: %s' % (where(spec.label), spec.src, exc), about=spec.about)
        if info is None or not os.path.isfile(to_bytes(spec.src, errors='surrogate_or_strict')):
            raise ModuleFailure('%ssrc %s is not a file on the target: nothing to import %s from'
                                % (where(spec.label), spec.src, spec.about), about=spec.about)
        info['path'] = spec.src
        return {'format': info['format'], 'virtual_size': info['virtual_size'], 'backing_file': info['backing_file'],
                'size': st.st_size, 'fingerprint': source_fingerprint([info], [st])}

    def _other_volume(self, spec, ref, key):
        """The volume ref names ({volume, pool}), as it is or as an earlier item of the batch leaves it."""
        wanted = (ref['pool'], ref['volume'])
        if wanted in self.planned and self.planned[wanted] is not None:
            return self.planned[wanted]
        if wanted not in self.planned:
            pool = self._pool(ref['pool'])[0]
            found = read_volume(pool, ref['volume'], ref['pool'])[1] if pool is not None else None
            if found is not None:
                return found
        raise ModuleFailure("%svolume '%s' in pool '%s' does not exist"
                            % (where(join(spec.label, key)), ref['volume'], ref['pool']), about=spec.about)

    def _backing(self, spec):
        if spec.backing.get('volume'):
            other = self._other_volume(spec, spec.backing, 'backing')
            # .get: a volume planned in a pool that check mode could not look into has no path yet
            return {'path': other.get('path'), 'format': other.get('format'), 'capacity': other.get('capacity')}
        if self._qemu is None:
            self._qemu = QemuImg(self.module)
        info = self._qemu.info(spec.backing['path'], fmt=spec.backing.get('format'))
        if info is None:
            raise ModuleFailure('%sbacking path %s does not exist' % (where(spec.label), spec.backing['path']),
                                about=spec.about)
        return {'path': spec.backing['path'], 'format': spec.backing.get('format') or info['format'],
                'capacity': info['virtual_size']}

    def _predicted_after(self, item):
        after = item.plan.after
        if after is not None and not after.get('path'):
            pool = item.facts['pool']
            if pool['type'] in FILE_POOLS:
                after.update(path=os.path.join(pool['path'], item.spec.name), type='file')
                after['key'] = after['path']
        return after

    # --- acting --------------------------------------------------------------------------------

    def _act(self, item):
        """Carry out the item's plan. When an action fails because another run changed the volume since it was
        read (created, resized or deleted it), read it again, plan again and do what still differs; while another
        run is still creating it (libvirt refuses every action on it then), wait for that first."""
        done = []

        def attempt(seen):
            if seen != item.actual:
                item.facts = {}
                self._read(item)
                item.plan = plan_volume(item.spec, item.actual, item.facts)
            for action, reason in item.plan.actions:
                item.result.perform(action, getattr(self, '_do_' + action), item)
                done.append('%s: %s' % (action, reason))
        deadline = time.monotonic() + BUILD_WAIT
        seen = item.actual
        while True:
            try:
                retry_on_conflict(lambda: self._reading(item), attempt, seen=seen)
                break
            except _Building as building:
                if time.monotonic() > deadline:
                    raise LibvirtFailure(building.msg, about=item.spec.about)
                time.sleep(0.2)
                seen, item.actual = self._reading(item), _STALE
        for line in item.plan.differences:
            item.result.differ(line)
        if done:
            item.result.set(reasons=done)

    def _reading(self, item):
        return read_volume(item.pool, item.spec.name, item.spec.pool)[1]

    def _guarded(self, item, what, call, *args):
        try:
            return call(*args)
        except libvirt.libvirtError as exc:
            message = '%scannot %s %s: %s' % (where(item.spec.label), what, item.spec.about, error_text(exc))
            if 'still being allocated' in error_text(exc):
                raise _Building(message)
            raise LibvirtFailure(message, about=item.spec.about)

    def _do_create(self, item):
        item.vol = self._guarded(item, 'create', item.pool.createXML, self._volume_xml(item, item.plan.after), 0)

    def _do_clone(self, item):
        ref = item.spec.clone_from
        origin = lookup_volume(self._pool(ref['pool'])[0], ref['volume'])
        after = dict(item.plan.after, capacity=item.facts['origin']['capacity'])
        item.vol = self._guarded(item, 'clone', item.pool.createXMLFrom, self._volume_xml(item, after), origin, 0)

    def _do_download(self, item):
        """Nothing left to do: the image was downloaded into the cache while planning, before the first change."""

    def _do_record(self, item):
        stored = item.facts.get('stored') or {}
        store_record(item.vol.path(), url_record(item.spec.url, item.facts['source']['checksum'],
                                                 stored.get('virtual_size')))

    def _do_import(self, item):
        source = item.facts['source']
        path = source.get('path') or item.spec.src
        shell = dict(item.plan.after, format='raw', capacity=source['size'], backing=None)
        item.vol = self._guarded(item, 'create', item.pool.createXML, self._volume_xml(item, shell), 0)
        try:
            self._guarded(item, 'import %s into' % path, upload_file, self.conn, item.vol, path)
            self._guarded(item, 'refresh the pool of', item.pool.refresh, 0)
            item.vol = lookup_volume(item.pool, item.spec.name)
            store_record(item.vol.path(), import_record(item.spec, source))
        except BaseException:
            try:
                item.vol.delete(0)
            except libvirt.libvirtError:
                pass
            raise

    def _do_reimport(self, item):
        self._do_delete(item)
        self._do_import(item)

    def _do_resize(self, item):
        capacity = item.plan.after['capacity']
        info = describe(item.vol.XMLDesc(0), item.spec.pool)
        flags = libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK if capacity < info['capacity'] else 0
        self._guarded(item, 'resize', item.vol.resize, capacity, flags)

    def _do_permissions(self, item):
        wanted = item.spec.permissions
        path = to_bytes(item.vol.path(), errors='surrogate_or_strict')
        try:
            if 'owner' in wanted or 'group' in wanted:
                os.chown(path, wanted.get('owner', -1), wanted.get('group', -1))
            if 'mode' in wanted:
                os.chmod(path, int(wanted['mode'], 8))
        except OSError as exc:
            hint = ' (libvirt has no call to change them: the module changes the file, which must be on this host)' \
                if exc.errno == errno.ENOENT else ''
            raise ModuleFailure('%scannot set the permissions of %s: %s%s' % (
                where(item.spec.label), item.spec.about, to_native(exc), hint), about=item.spec.about)

    def _do_delete(self, item):
        self._guarded(item, 'delete', item.vol.delete, 0)
        item.vol = None

    def _volume_xml(self, item, volume):
        root = ET.Element('volume')
        ET.SubElement(root, 'name').text = item.spec.name
        ET.SubElement(root, 'capacity', unit='bytes').text = str(volume['capacity'])
        allocation = item.spec.allocation if item.spec.allocation is not None else 0
        ET.SubElement(root, 'allocation', unit='bytes').text = str(allocation)
        target = ET.SubElement(root, 'target')
        ET.SubElement(target, 'format', type=volume['format'])
        if item.spec.permissions:
            perms = ET.SubElement(target, 'permissions')
            for key in ('mode', 'owner', 'group'):
                if key in item.spec.permissions:
                    ET.SubElement(perms, key).text = str(item.spec.permissions[key])
        if volume.get('backing'):
            backing = ET.SubElement(root, 'backingStore')
            ET.SubElement(backing, 'path').text = volume['backing']['path']
            ET.SubElement(backing, 'format', type=volume['backing']['format'])
        return ET.tostring(root, encoding='unicode')

    # --- reporting -----------------------------------------------------------------------------

    def _report(self, item):
        spec = item.spec
        if self.result.check_mode:
            after = item.plan.after
        else:
            after = read_volume(item.pool, spec.name, spec.pool)[1] if spec.state == 'present' else None
            if after is not None and (spec.src or spec.url):
                record = read_record(after['path'])
                after['src'] = _shown(record)
                after['url'], after['checksum'] = recorded_url(record)
        before = item.actual
        if before is not None and (spec.src or spec.url):
            stored = item.facts.get('stored')
            url, checksum = recorded_url(stored)
            before = dict(before, src=_shown(stored), url=url, checksum=checksum)
        volume = None
        if after is not None:
            volume = dict((key, after.get(key)) for key in ('name', 'pool', 'path', 'key', 'type', 'format',
                                                            'capacity', 'allocation', 'backing', 'permissions'))
        item.result.set(volume=volume, state=spec.state)
        if item.result.diff_mode:
            header = '%s/%s' % (spec.pool, spec.name)
            item.result.add_diff(summary(before, spec), summary(after, spec), header, header)


def _naming_item(failure, spec):
    """The failure with the item's label in front (a pool that does not exist is found by its first item)."""
    if spec.label and not failure.msg.startswith(spec.label):
        failure.msg = '%s: %s' % (spec.label, failure.msg)
        failure.args = (failure.msg,)
    if failure.about is None:
        failure.about = spec.about
    return failure


def _shown(record):
    return source_shown(record.get('source')) if isinstance(record, dict) else None
