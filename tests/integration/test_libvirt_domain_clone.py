# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_domain's clone_from on qemu:///system: real qcow2 images, checked on the host with qemu-img and virsh.

The source is a tiny guest (conftest `guest`) with a qcow2 disk in a dir pool this file defines through the
libvirt API (no network is created: interfaces are QEMU user networking). Every clone is made four ways:
a check run reports it and changes nothing, the real run makes it, a second real run and a second check run
report nothing.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from virtops_testlib import PREFIX, import_libvirt, run_module, serial_log, virsh, wait_for_console

POOL = PREFIX + 'clonepool'
POOL_DIR = '/var/lib/libvirt/images/' + POOL
NVRAM_DIR = '/var/lib/libvirt/qemu/nvram'
PATTERN = '0x5a'  # written into the source disk: a copy must hold it too


@pytest.fixture(scope='module')
def pool(conn):
    """A dir pool for the source's disk and the clones' volumes; removed with all its volumes afterwards."""
    libvirt = import_libvirt()
    try:
        stale = conn.storagePoolLookupByName(POOL)
    except libvirt.libvirtError:
        stale = None
    if stale is not None:
        _remove_pool(stale)
    made = conn.storagePoolDefineXML("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>"
                                     % (POOL, POOL_DIR), 0)
    made.build(0)
    made.create(0)
    yield made
    _remove_pool(made)


def _remove_pool(pool):
    if not pool.isActive():
        pool.create(0)
    pool.refresh(0)
    for volume in pool.listAllVolumes(0):
        volume.delete(0)
    pool.destroy()
    pool.delete(0)
    pool.undefine()


@pytest.fixture
def clones(conn):
    """Names for the clones a test makes (PREFIX-clone-...); they are removed afterwards with their NVRAM."""
    libvirt = import_libvirt()
    names = []

    def name(suffix):
        names.append(PREFIX + 'clone-' + suffix)
        return names[-1]
    yield name
    for made in names:
        try:
            dom = conn.lookupByName(made)
        except libvirt.libvirtError:
            continue
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)


@pytest.fixture
def source(guest, pool):
    """A shut-off guest with a 64 MiB qcow2 disk in the pool holding a known pattern; its options and disk path."""
    volume = pool.createXML("<volume><name>%s-disk.qcow2</name><capacity unit='MiB'>64</capacity>"
                            "<target><format type='qcow2'/></target></volume>" % guest.name, 0)
    subprocess.run(['qemu-io', '-f', 'qcow2', '-c', 'write -P %s 0 1M' % PATTERN, volume.path()], check=True,
                   capture_output=True)
    options = guest(interfaces=[{'type': 'user'}], disks=[{'volume': {'pool': POOL, 'name': volume.name()}}])
    made = run_module('libvirt_domain', options)
    assert made['changed'] is True and made.get('failed') is not True, made
    return options, volume.path()


def four_ways(args, verify=None):
    """Check run (changes nothing on the host), real run, real rerun, check rerun; returns (check, real)."""
    name = args['name']
    before = _host_view(name)
    check = run_module('libvirt_domain', args, check=True)
    assert check['changed'] is True and check.get('failed') is not True, check
    assert _host_view(name) == before, 'check mode changed the host'
    real = run_module('libvirt_domain', args)
    assert real['changed'] is True and real.get('failed') is not True, real
    assert real['actions'] == check['actions'] and real['clone'] == check['clone']
    if verify is not None:
        verify(check, real)
    assert run_module('libvirt_domain', args)['changed'] is False
    assert run_module('libvirt_domain', args, check=True)['changed'] is False
    return check, real


def _host_view(name):
    volumes = sorted(os.listdir(POOL_DIR))
    try:
        return volumes, virsh('dumpxml', '--inactive', name)
    except subprocess.CalledProcessError:
        return volumes, None


def image_info(path):
    found = subprocess.run(['qemu-img', 'info', '-U', '--backing-chain', '--output', 'json', path], check=True,
                           capture_output=True, text=True).stdout
    return json.loads(found)


def mac_of(name):
    return virsh('domiflist', name).split()[-1]


def test_full_clone_is_a_standalone_copy_with_a_new_identity(source, clones):
    options, source_disk = source
    name = clones('full')
    args = {'name': name, 'memory': 160, 'serial_log': serial_log(name), 'clone_from': {'name': options['name']}}
    check, real = four_ways(args)
    assert real['actions'] == ['clone'] and real['created'] is True
    copied = real['clone']['volumes'][0]
    assert copied == {'target': 'vda', 'source': source_disk, 'pool': POOL, 'volume': name + '-vda.qcow2',
                      'path': '%s/%s-vda.qcow2' % (POOL_DIR, name), 'format': 'qcow2', 'backing': None}
    chain = image_info(copied['path'])
    assert len(chain) == 1 and chain[0]['format'] == 'qcow2' and 'backing-filename' not in chain[0]
    compared = subprocess.run(['qemu-img', 'compare', '-U', source_disk, copied['path']], capture_output=True,
                              text=True, check=False)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert virsh('domuuid', name) != virsh('domuuid', options['name'])
    assert mac_of(name) != mac_of(options['name'])
    xml = virsh('dumpxml', '--inactive', name)
    assert "<memory unit='KiB'>163840</memory>" in xml, 'the memory option applies on top of the clone'
    assert "<source pool='%s' volume='%s-vda.qcow2'/>" % (POOL, name) in xml
    assert "<log file='%s' append='off'/>" % serial_log(name) in xml
    assert '<uuid>' not in check['diff']['after'] and "volume='%s-vda.qcow2'" % name in check['diff']['after']


def test_linked_clone_is_an_overlay_that_boots(source, clones):
    options, source_disk = source
    name = clones('linked')
    args = {'name': name, 'serial_log': serial_log(name), 'clone_from': {'name': options['name'], 'linked': True}}
    real = four_ways(args)[1]
    overlay = real['clone']['volumes'][0]
    assert overlay['backing'] == source_disk and overlay['format'] == 'qcow2'
    chain = image_info(overlay['path'])
    assert [image['filename'] for image in chain] == [overlay['path'], source_disk]
    assert chain[0]['backing-filename'] == source_disk and chain[0]['backing-filename-format'] == 'qcow2'
    assert virsh('domuuid', name) != virsh('domuuid', options['name'])
    assert mac_of(name) != mac_of(options['name'])

    started = run_module('libvirt_domain', dict(args, state='running'))
    assert started['actions'] == ['start'], started
    wait_for_console(name)
    blocked = run_module('libvirt_domain', {'name': options['name'], 'state': 'running'})
    assert blocked['failed'] is True and 'lock' in blocked['msg'], \
        'QEMU keeps the source from writing to the disk a running linked clone reads: %s' % blocked


def test_removing_the_source_with_its_storage_keeps_the_base_of_a_linked_clone(source, clones):
    options, source_disk = source
    name = clones('linked-base')
    made = run_module('libvirt_domain', {'name': name, 'clone_from': {'name': options['name'], 'linked': True}})
    assert made['changed'] is True and made.get('failed') is not True, made
    remove = {'name': options['name'], 'state': 'absent', 'remove_storage': True}
    check = run_module('libvirt_domain', remove, check=True)
    assert check['removed_storage'] == [] and check['changed'] is True, check
    assert check['kept_storage'] == [{'source': '%s/%s' % (POOL, os.path.basename(source_disk)),
                                      'reason': "backing file of another domain's disk"}]
    real = run_module('libvirt_domain', remove)
    assert real['actions'] == ['undefine'] and real['removed_storage'] == [], real
    assert os.path.exists(source_disk), 'the linked clone still stands on it'
    assert image_info(made['clone']['volumes'][0]['path'])[1]['filename'] == source_disk


def test_a_clone_is_made_once_and_a_running_source_is_refused(source, clones, pool):
    options = source[0]
    name = clones('once')
    args = {'name': name, 'serial_log': serial_log(name), 'clone_from': {'name': options['name']}}
    assert run_module('libvirt_domain', args)['changed'] is True
    changed = run_module('libvirt_domain', dict(options, memory=192, state='running'))
    assert changed['changed'] is True and changed['state'] == 'running', changed
    again = run_module('libvirt_domain', args)
    assert again['changed'] is False and 'clone' not in again, 'the source changed: the clone is not made again'

    other = clones('refused')
    before = sorted(volume.name() for volume in pool.listAllVolumes(0))
    for check in (True, False):
        refused = run_module('libvirt_domain', {'name': other, 'clone_from': {'name': options['name']}}, check=check)
        assert refused['failed'] is True and refused['changed'] is False
        assert refused['msg'] == ("clone_from: domain '%s' to clone is running; shut it down first: its disks must not "
                                  "change while they are copied" % options['name'])
    pool.refresh(0)
    assert sorted(volume.name() for volume in pool.listAllVolumes(0)) == before
    assert _host_view(other)[1] is None


def test_uefi_clone_gets_its_own_nvram_copy(guest, pool, clones):
    """No OVMF firmware is installed on this machine: the source is defined with a loader path and an NVRAM
    file but never started; the clone's definition and NVRAM copy are what qemu:///system stores."""
    vars_file = '%s/%s_VARS.fd' % (NVRAM_DIR, guest.name)
    os.makedirs(NVRAM_DIR, exist_ok=True)
    with open(vars_file, 'wb') as handle:
        handle.write(b'\x01' * 4096)
    try:
        xml = ("<domain type='qemu'><name>%s</name><memory unit='MiB'>128</memory><os><type>hvm</type>"
               "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader><nvram>%s</nvram></os>"
               "<features><acpi/></features>"
               "<devices><interface type='user'/></devices></domain>" % (guest.name, vars_file))
        assert run_module('libvirt_domain', {'xml': xml})['changed'] is True
        name = clones('uefi')
        real = four_ways({'name': name, 'clone_from': {'name': guest.name}})[1]
        copied = '%s/%s_VARS.fd' % (NVRAM_DIR, name)
        assert real['clone']['nvram'] == {'source': vars_file, 'path': copied, 'copied': True}
        with open(copied, 'rb') as handle:
            assert handle.read() == b'\x01' * 4096
        assert '<nvram>%s</nvram>' % copied in virsh('dumpxml', '--inactive', name)
    finally:
        os.remove(vars_file)
