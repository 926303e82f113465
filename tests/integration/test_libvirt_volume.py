# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_volume and libvirt_volume_info against the real libvirtd (qemu:///system) and qemu-img.

Volumes live in two dir pools this module defines through the libvirt API under
/var/lib/libvirt/images/<prefix>pool-*; they are removed with everything in them afterwards. No
network is created. Each change runs four ways (check, real, rerun, check rerun) and is verified with
virsh vol-* and qemu-img info.
"""

from __future__ import annotations

import concurrent.futures
import grp
import json
import os
import shutil
import subprocess

import pytest

from virtops_testlib import PREFIX, import_libvirt, run_module, virsh

IMAGES = '/var/lib/libvirt/images'
MIB = 1 << 20


@pytest.fixture(scope='module')
def pools(conn):
    """Two started dir pools, a and b: {'a': name, 'b': name}; removed with their volumes afterwards."""
    libvirt = import_libvirt()
    made = {}
    for key in ('a', 'b'):
        name = '%spool-%s' % (PREFIX, key)
        path = os.path.join(IMAGES, name)
        os.makedirs(path, exist_ok=True)
        pool = conn.storagePoolDefineXML("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>"
                                         % (name, path), 0)
        pool.create(0)
        made[key] = name
    yield made
    for name in made.values():
        try:
            pool = conn.storagePoolLookupByName(name)
        except libvirt.libvirtError:
            continue
        path = os.path.join(IMAGES, name)
        if pool.isActive():
            pool.destroy()
        pool.undefine()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def files(request):
    """A scratch directory for source images, readable by libvirtd; removed afterwards."""
    path = os.path.join(IMAGES, '%ssrc-%s' % (PREFIX, request.node.name.replace('test_', '')[:30]))
    os.makedirs(path, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clean(conn, pools):
    """Removes the volumes (and the test domains) a test made, so each test starts from empty pools."""
    yield
    libvirt = import_libvirt()
    for dom in conn.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    for name in pools.values():
        pool = conn.storagePoolLookupByName(name)
        pool.refresh(0)
        # overlays first: libvirt does not care, but a failed delete should not hide the others
        for vol in sorted(pool.listAllVolumes(0), key=lambda vol: '<backingStore>' not in vol.XMLDesc(0)):
            vol.delete(0)


def volume(args, check=False):
    return run_module('libvirt_volume', args, check=check)


def four_ways(args, verify=None):
    """check, real, rerun, check rerun: the first two change, the last two do not, none fails."""
    runs = []
    for check in (True, False, False, True):
        runs.append(volume(args, check))
        assert not runs[-1].get('failed'), runs[-1]
        if len(runs) == 2 and verify:
            verify()
    check_run, real, rerun, check_rerun = runs
    assert check_run['changed'] and real['changed'], runs
    assert not rerun['changed'] and not check_rerun['changed'], runs
    assert check_run['diff'] == real['diff'], 'check mode predicted another diff than the real run made'
    assert check_run.get('actions') == real.get('actions')
    assert rerun['diff'] == check_rerun['diff']
    return runs


def vol_path(pool, name):
    return os.path.join(IMAGES, pool, name)


def qemu_info(path, chain=False):
    argv = ['qemu-img', 'info', '--output=json', '-U'] + (['--backing-chain'] if chain else []) + [path]
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def vol_capacity(pool, name):
    """Capacity in bytes as virsh vol-info reports it."""
    out = virsh('vol-info', '--bytes', '--pool', pool, name)
    return int(next(line.split()[1] for line in out.splitlines() if line.startswith('Capacity:')))


def test_create_grow_and_shrink_only_when_allowed(pools, clean):
    pool, name = pools['a'], PREFIX + 'disk.qcow2'
    path = vol_path(pool, name)
    args = {'pool': pool, 'name': name, 'capacity': '64M'}
    four_ways(args, lambda: (qemu_info(path)['virtual-size'] == 64 * MIB and qemu_info(path)['format'] == 'qcow2')
              or pytest.fail('not a 64 MiB qcow2: %s' % qemu_info(path)))
    assert vol_capacity(pool, name) == 64 * MIB

    check, real, _rerun, _check = four_ways(dict(args, capacity='128M'))
    assert real['actions'] == ['resize'] and real['differences'] == ['capacity: 64 MiB -> 128 MiB']
    assert qemu_info(path)['virtual-size'] == 128 * MIB == vol_capacity(pool, name)

    for check_mode in (True, False):
        refused = volume(dict(args, capacity='96M'), check_mode)
        assert refused['failed'] and not refused['changed'], refused
        assert 'allow_shrink' in refused['msg'] and refused['failed_object'] == "volume '%s' in pool '%s'" % (name, pool)
    assert qemu_info(path)['virtual-size'] == 128 * MIB

    four_ways(dict(args, capacity='96M', allow_shrink=True))
    assert qemu_info(path)['virtual-size'] == 96 * MIB == vol_capacity(pool, name)


def test_import_keeps_the_file_and_reimports_when_the_source_changes(pools, clean, files):
    pool, name = pools['a'], PREFIX + 'imported.raw'
    src = os.path.join(files, 'disk.raw')
    with open(src, 'wb') as handle:
        handle.truncate(32 * MIB)
        handle.seek(MIB)
        handle.write(b'first' * 1000)
    args = {'pool': pool, 'name': name, 'src': src}
    runs = four_ways(args)
    path = vol_path(pool, name)
    assert runs[1]['actions'] == ['import']
    subprocess.run(['qemu-img', 'compare', '-q', '-f', 'raw', '-F', 'raw', src, path], check=True)
    assert os.stat(path).st_blocks * 512 < 4 * MIB, 'the holes of the source were written out'
    assert qemu_info(path)['format'] == 'raw' and vol_capacity(pool, name) == 32 * MIB

    with open(src, 'r+b') as handle:
        handle.seek(2 * MIB)
        handle.write(b'second')
    check = volume(args, check=True)
    assert check['changed'] and check['actions'] == ['reimport'], check
    assert any('changed since the last conversion' in line for line in check['differences']), check
    subprocess.run(['qemu-img', 'compare', '-q', '-f', 'raw', '-F', 'raw', src, path], check=False) \
        .returncode or pytest.fail('check mode imported the changed source')
    real = volume(args)
    assert real['changed'] and real['diff'] == check['diff'], (check, real)
    subprocess.run(['qemu-img', 'compare', '-q', '-f', 'raw', '-F', 'raw', src, path], check=True)
    assert not volume(args)['changed']

    grown = four_ways(dict(args, capacity='48M'))
    assert grown[1]['actions'] == ['resize'] and vol_capacity(pool, name) == 48 * MIB


def test_qcow2_source_is_imported_as_qcow2_and_a_format_change_is_refused(pools, clean, files):
    pool, name = pools['a'], PREFIX + 'base.qcow2'
    src = os.path.join(files, 'base.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', src, '40M'], check=True)
    four_ways({'pool': pool, 'name': name, 'src': src, 'permissions': {'mode': '0644'}})
    info = qemu_info(vol_path(pool, name))
    assert (info['format'], info['virtual-size']) == ('qcow2', 40 * MIB)
    assert '<mode>0644</mode>' in virsh('vol-dumpxml', '--pool', pool, name)
    refused = volume({'pool': pool, 'name': name, 'src': src, 'format': 'raw'})
    assert refused['failed'] and not refused['changed'] and 'does not convert a volume in place' in refused['msg'], refused


def test_batch_of_a_base_and_overlays_on_it(pools, clean):
    pool = pools['a']
    base, overlays = PREFIX + 'base.qcow2', [PREFIX + 'web%d.qcow2' % index for index in (1, 2)]
    args = {'pool': pool, 'volumes': [{'name': base, 'capacity': '32M'}] + [
        {'name': name, 'backing': {'volume': base}, 'capacity': '64M'} for name in overlays]}
    runs = four_ways(args)
    assert [item['actions'] for item in runs[1]['volumes']] == [['create']] * 3
    chain = qemu_info(vol_path(pool, overlays[0]), chain=True)
    assert chain[0]['virtual-size'] == 64 * MIB and chain[0]['backing-filename'] == vol_path(pool, base)
    assert chain[0]['backing-filename-format'] == 'qcow2' and chain[1]['virtual-size'] == 32 * MIB

    refused = volume({'pool': pool, 'name': base, 'state': 'absent'})
    assert refused['failed'] and not refused['changed'], refused
    assert '%s/%s' % (pool, overlays[0]) in refused['msg'] and '%s/%s' % (pool, overlays[1]) in refused['msg']

    info = run_module('libvirt_volume_info', {'pool': pool, 'name': [base]})
    assert info['volumes'][0]['overlays'] == ['%s/%s' % (pool, name) for name in overlays]


def test_clone_into_another_pool_and_grow(pools, clean, files):
    src = os.path.join(files, 'data.raw')
    with open(src, 'wb') as handle:
        handle.truncate(16 * MIB)
        handle.write(b'cloned data')
    volume({'pool': pools['a'], 'name': PREFIX + 'origin.raw', 'src': src})
    name = PREFIX + 'copy.qcow2'
    args = {'pool': pools['b'], 'name': name, 'format': 'qcow2', 'capacity': '24M',
            'clone_from': {'pool': pools['a'], 'volume': PREFIX + 'origin.raw'}}
    runs = four_ways(args)
    assert runs[1]['actions'] == ['clone', 'resize']
    copy = vol_path(pools['b'], name)
    assert qemu_info(copy)['format'] == 'qcow2' and qemu_info(copy)['virtual-size'] == 24 * MIB
    subprocess.run(['qemu-img', 'compare', '-q', '-f', 'raw', '-F', 'qcow2', src, copy], check=True)


def test_a_volume_a_domain_uses_is_neither_deleted_nor_shrunk(conn, pools, clean):
    pool = pools['a']
    by_path, by_name = PREFIX + 'by-path.qcow2', PREFIX + 'by-name.qcow2'
    volume({'pool': pool, 'volumes': [{'name': by_path, 'capacity': '16M'}, {'name': by_name, 'capacity': '16M'}]})
    domain = PREFIX + 'user'
    conn.defineXML(
        "<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><os><type>hvm</type></os><devices>"
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/>"
        "<target dev='vda' bus='virtio'/></disk>"
        "<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/><source pool='%s' volume='%s'/>"
        "<target dev='vdb' bus='virtio'/></disk></devices></domain>" % (domain, vol_path(pool, by_path), pool, by_name))
    for name in (by_path, by_name):
        for check_mode in (True, False):
            refused = volume({'pool': pool, 'name': name, 'state': 'absent'}, check_mode)
            assert refused['failed'] and not refused['changed'] and "domain '%s'" % domain in refused['msg'], refused
        shrink = volume({'pool': pool, 'name': name, 'capacity': '8M', 'allow_shrink': True})
        assert shrink['failed'] and "domain '%s'" % domain in shrink['msg'], shrink
        assert vol_capacity(pool, name) == 16 * MIB
    info = run_module('libvirt_volume_info', {'pool': pool})
    assert [item['domains'] for item in info['volumes']] == [[domain], [domain]]
    conn.lookupByName(domain).undefine()
    four_ways({'pool': pool, 'volumes': [{'name': by_path}, {'name': by_name}], 'state': 'absent'})
    assert not conn.storagePoolLookupByName(pool).listAllVolumes(0)


def test_a_bad_item_in_a_batch_changes_nothing(pools, clean):
    pool = pools['a']
    for bad, message in (({'capacity': 'lots'}, "volumes[1].capacity 'lots' is not a size"),
                         ({'clone_from': {'volume': 'nothing-here'}}, "volumes[1].clone_from: volume 'nothing-here'"),
                         ({'src': '/nonexistent/disk.raw'}, 'volumes[1]: src /nonexistent/disk.raw is not a file')):
        args = {'pool': pool, 'volumes': [{'name': PREFIX + 'good.qcow2', 'capacity': '8M'},
                                          dict(bad, name=PREFIX + 'bad.qcow2')]}
        result = volume(args)
        assert result['failed'] and not result['changed'], result
        assert result['msg'].startswith(message), result['msg']
        assert not conn_volumes(pool)


def conn_volumes(pool):
    return [line.split()[0] for line in virsh('vol-list', '--pool', pool).splitlines()[2:] if line.strip()]


def test_permissions_of_an_existing_volume_are_set(pools, clean):
    pool, name = pools['a'], PREFIX + 'perms.raw'
    volume({'pool': pool, 'name': name, 'capacity': '4M', 'format': 'raw'})
    runs = four_ways({'pool': pool, 'name': name, 'permissions': {'mode': '0640', 'group': 'libvirt-qemu'}})
    assert runs[1]['actions'] == ['permissions']
    st = os.stat(vol_path(pool, name))
    assert oct(st.st_mode & 0o777) == '0o640' and grp.getgrgid(st.st_gid).gr_name == 'libvirt-qemu'
    assert runs[1]['diff']['after']['permissions'] == {'group': st.st_gid, 'mode': '0640'}


def test_an_overlay_on_an_image_file_outside_the_pools(pools, clean, files):
    base = os.path.join(files, 'base.raw')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', base, '12M'], check=True)
    pool, name = pools['b'], PREFIX + 'on-file.qcow2'
    four_ways({'pool': pool, 'name': name, 'backing': {'path': base, 'format': 'raw'}})
    chain = qemu_info(vol_path(pool, name), chain=True)
    assert (chain[0]['backing-filename'], chain[0]['backing-filename-format']) == (base, 'raw')
    assert chain[0]['virtual-size'] == 12 * MIB


def test_two_runs_of_the_same_batch_at_once_both_succeed_and_create_each_volume_once(pools, clean):
    names = [PREFIX + 'race%d.qcow2' % index for index in range(6)]
    args = {'pool': pools['a'], 'volumes': [{'name': name, 'capacity': '4M'} for name in names]}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _index: volume(args), range(2)))
    assert not any(result.get('failed') for result in results), results
    for index, name in enumerate(names):
        creates = sum(result['volumes'][index]['actions'].count('create') for result in results)
        assert creates == 1, (name, results)
    assert sorted(conn_volumes(pools['a'])) == sorted(names)
