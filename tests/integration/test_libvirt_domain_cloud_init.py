# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain's cloud_init against the real libvirtd (qemu:///system): the seed as a pool volume.

A dir pool under /var/lib/libvirt/images/<prefix>ci-pool holds each guest's disk and its seed; the
tiny guests of scripts/build-guest.sh boot from kernel and initrd (the disk is only attached). No
network is created. The seed is checked on the host with blkid and read back with pycdlib.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import pycdlib
import pytest

from virtops_testlib import PREFIX, import_libvirt, virsh, wait_for_console

IMAGES = '/var/lib/libvirt/images'
POOL = PREFIX + 'ci-pool'
SECRET = 'Integration-S3cret'


@pytest.fixture(scope='module')
def pool(conn):
    """A started dir pool; removed with its volumes afterwards."""
    libvirt = import_libvirt()
    path = os.path.join(IMAGES, POOL)
    os.makedirs(path, exist_ok=True)
    made = conn.storagePoolCreateXML("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>"
                                     % (POOL, path), 0)
    yield made
    for dom in conn.listAllDomains(0):
        if dom.name().startswith(PREFIX) and POOL in dom.XMLDesc(0):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    made.destroy()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def disk(pool, guest):
    """A raw volume for the guest's disk, and the disks option naming it."""
    name = guest.name + '.img'
    pool.createXML("<volume><name>%s</name><capacity unit='M'>8</capacity><target><format type='raw'/></target>"
                   "</volume>" % name, 0)
    return [{'volume': {'pool': POOL, 'name': name}}]


def cloud_init(**extra):
    return dict({'user_data': {'users': [{'name': 'ops', 'plain_text_passwd': SECRET}]},
                 'network_config': {'version': 2, 'ethernets': {'eth0': {'dhcp4': True}}}}, **extra)


def seed_path(name):
    return os.path.join(IMAGES, POOL, name + '-cidata.iso')


def seed_files(name):
    iso = pycdlib.PyCdlib()
    iso.open(seed_path(name))
    try:
        files = {}
        for child in iso.list_children(joliet_path='/'):
            if child.is_file():
                out = io.BytesIO()
                entry = child.file_identifier().decode('utf-16-be')
                iso.get_file_from_iso_fp(out, joliet_path='/' + entry)
                files[entry] = out.getvalue()
        return files
    finally:
        iso.close()


def four_ways(domain, args, actions):
    check = domain(args, check=True)
    assert check['changed'] is True and check['actions'] == actions, check
    real = domain(args)
    assert real['changed'] is True and real['actions'] == actions, real
    assert SECRET not in repr(check) + repr(real)
    rerun = domain(args)
    assert rerun['changed'] is False, rerun
    assert domain(args, check=True)['changed'] is False
    return check, real


def test_seed_volume_is_created_attached_and_labelled_cidata(domain, guest, disk, pool):
    name = guest.name
    args = guest(disks=disk, cloud_init=cloud_init())
    check, real = four_ways(domain, args, ['create_seed', 'define'])
    assert check['cloud_init'] is not None and check['cloud_init']['sha256'] == real['cloud_init']['sha256']
    assert real['cloud_init']['storage'] == 'volume' and real['cloud_init']['pool'] == POOL
    pool.refresh(0)
    assert name + '-cidata.iso' in pool.listVolumes()
    probe = subprocess.run(['blkid', '-p', '-o', 'export', seed_path(name)], check=True, capture_output=True,
                           text=True).stdout
    assert 'TYPE=iso9660' in probe and 'LABEL=cidata' in probe
    files = seed_files(name)
    assert sorted(files) == ['meta-data', 'network-config', 'user-data']
    assert SECRET.encode() in files['user-data']
    xml = virsh('dumpxml', '--inactive', name)
    assert "<source pool='%s' volume='%s-cidata.iso'/>" % (POOL, name) in xml
    assert "<target dev='hda' bus='ide'/>" in xml and '<readonly/>' in xml


def test_changed_user_data_of_a_running_guest_asks_for_a_restart_until_it_restarts(domain, guest, disk):
    name = guest.name
    domain(dict(guest(disks=disk, cloud_init=cloud_init()), state='running'))
    wait_for_console(name)
    first = seed_files(name)
    changed = dict(guest(disks=disk, cloud_init=cloud_init(user_data='#cloud-config\nruncmd: [true]\n')),
                   state='running')
    _check, real = four_ways(domain, changed, ['update_seed', 'update'])
    assert real['restart_required'] is True and real['restart_reasons'] == ['cloud_init']
    assert real['differences'] == ['cloud_init']
    assert seed_files(name)['user-data'] == b'#cloud-config\nruncmd: [true]\n'
    assert seed_files(name)['meta-data'] != first['meta-data'], 'a new instance-id'
    digest = "seed='%s'" % real['cloud_init']['sha256']
    assert digest in virsh('dumpxml', '--inactive', name).replace('"', "'")
    assert digest not in virsh('dumpxml', name).replace('"', "'"), 'the running guest keeps its digest'

    for later in (domain(changed), domain(changed, check=True)):  # the same data in a later run
        assert later['changed'] is False and later['restart_required'] is True, later
        assert later['restart_reasons'] == ['cloud_init']

    restart = dict(changed, apply='restart', shutdown_timeout=30, force=True)
    check = domain(restart, check=True)
    assert check['actions'] == ['restart'] and check['restart_required'] is False
    restarted = domain(restart)
    assert restarted['actions'] == ['restart'] and restarted['restarted'] is True
    assert restarted['restart_required'] is False
    assert virsh('domstate', name) == 'running'
    assert digest in virsh('dumpxml', name).replace('"', "'")
    for later in (domain(restart), domain(restart, check=True)):
        assert later['changed'] is False and later['restart_required'] is False, later


def test_absent_with_remove_storage_removes_the_seed_and_keeps_other_volumes(domain, guest, disk, pool):
    name = guest.name
    domain(guest(disks=disk, cloud_init=cloud_init()))
    pool.createXML("<volume><name>%sother.img</name><capacity unit='M'>1</capacity></volume>" % PREFIX, 0)
    pool.createXML("<volume><name>%sother-cidata.iso</name><capacity unit='M'>1</capacity></volume>" % PREFIX, 0)
    removed = domain({'name': name, 'state': 'absent', 'remove_storage': True})
    assert sorted(removed['removed_storage']) == sorted([['volume', '%s/%s.img' % (POOL, name)],
                                                         ['volume', '%s/%s-cidata.iso' % (POOL, name)]])
    pool.refresh(0)
    left = pool.listVolumes()
    assert PREFIX + 'other.img' in left and PREFIX + 'other-cidata.iso' in left
    assert not [volume for volume in left if volume.startswith(name)]


def test_a_seed_file_the_pool_has_not_listed_yet_is_rewritten(domain, guest, disk):
    name = guest.name
    with open(seed_path(name), 'wb') as stale:  # written behind libvirt's back: the pool does not list it
        stale.write(b'stale')
    _check, real = four_ways(domain, guest(disks=disk, cloud_init=cloud_init()), ['update_seed', 'define'])
    assert real['cloud_init']['size'] == os.path.getsize(seed_path(name))
    assert sorted(seed_files(name)) == ['meta-data', 'network-config', 'user-data']
