# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which disks a removal deletes: what other domains use or stand on (a linked clone's base) is kept."""

from __future__ import annotations

import subprocess

import libvirt

from ansible_collections.virtops.hypervisor.plugins.module_utils import _domain_xml as dx
from ansible_collections.virtops.hypervisor.plugins.module_utils._domain_storage import (
    StorageView, qcow2_backing_file, storage_to_remove)


def qcow2(path, backing=None):
    argv = ['qemu-img', 'create', '-q', '-f', 'qcow2']
    if backing:
        argv += ['-b', backing, '-F', 'qcow2']
    subprocess.run(argv + [str(path)] + ([] if backing else ['16M']), check=True)
    return str(path)


def domain_xml(name, *paths):
    disks = ''.join("<disk type='file' device='disk'><source file='%s'/><target dev='vd%s'/></disk>"
                    % (path, chr(ord('a') + index)) for index, path in enumerate(paths))
    return dx.parse('<domain><name>%s</name><devices>%s</devices></domain>' % (name, disks))


def test_qcow2_backing_file_reads_the_header_relative_names_resolved(tmp_path):
    base = qcow2(tmp_path / 'base.qcow2')
    (tmp_path / 'sub').mkdir()
    relative = tmp_path / 'sub' / 'overlay.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', '../base.qcow2', '-F', 'qcow2', str(relative)],
                   check=True)
    assert qcow2_backing_file(str(relative)) == base
    assert qcow2_backing_file(base) is None
    raw = tmp_path / 'disk.raw'
    raw.write_bytes(b'\0' * 4096)
    assert qcow2_backing_file(str(raw)) is None
    assert qcow2_backing_file(str(tmp_path / 'missing.qcow2')) is None


def test_the_base_of_a_linked_clone_is_kept_and_own_disks_removed(tmp_path):
    base = qcow2(tmp_path / 'base.qcow2')
    middle = qcow2(tmp_path / 'middle.qcow2', base)
    clone_disk = qcow2(tmp_path / 'clone.qcow2', middle)
    own = qcow2(tmp_path / 'own.qcow2')
    view = StorageView(libvirt.open('test:///default'), 'test:///default')
    assert view.backing_chain(clone_disk) == [middle, base]
    source = domain_xml('source', base, own)
    clone = domain_xml('clone', clone_disk)
    remove, keep = storage_to_remove(source, [clone], view)
    assert remove == [('file', own)]
    assert keep == [{'source': base, 'reason': "backing file of another domain's disk"}]


def test_a_disk_another_domain_names_as_a_volume_is_kept(tmp_path):
    conn = libvirt.open('test:///default')
    pool = conn.storagePoolLookupByName('default-pool')
    volume = pool.createXML("<volume><name>shared-by-path.img</name><capacity>1048576</capacity></volume>", 0)
    try:
        by_path = domain_xml('by-path', volume.path())
        by_volume = dx.parse("<domain><name>by-volume</name><devices><disk type='volume' device='disk'>"
                             "<source pool='default-pool' volume='shared-by-path.img'/><target dev='vda'/></disk>"
                             "</devices></domain>")
        remove, keep = storage_to_remove(by_path, [by_volume], StorageView(conn, 'test:///default'))
        assert remove == [] and keep == [{'source': volume.path(), 'reason': 'used by another domain'}]
    finally:
        volume.delete(0)
