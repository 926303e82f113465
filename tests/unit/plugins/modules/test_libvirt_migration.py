# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_migration's preflight and file planning against libvirt's test driver.

test:///default is one store for the whole process; a test driver opened on a node file of its own
(test:///<path>) is another, so the two stand for a source and a destination host with storage pools of
their own. The test driver cannot migrate: the moves themselves are tested between two libvirt hosts in
containers (tests/integration/host/test_libvirt_migration.py).
"""

from __future__ import annotations

import itertools

import libvirt  # requirements-dev.txt installs libvirt-python: a missing binding is a failure, not a skip
import pytest

from virtops_unitlib import TEST_DRIVER_URI, on_test_driver  # noqa: E402

from ansible_collections.virtops.hypervisor.plugins.module_utils._migration_job import MigrationFlags  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._migration_storage import (  # noqa: E402
    GuestFile, HostFiles, guest_files, plan_files)
from ansible_collections.virtops.hypervisor.plugins.modules import libvirt_migration  # noqa: E402

pytestmark = pytest.mark.usefixtures('libvirt_test_conn')
_numbers = itertools.count()

NODE = """<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads><active>2</active>
  <mhz>2000</mhz><model>i686</model></cpu>
  <memory>8388608</memory>
</node>
"""

DOMAIN = """<domain type='qemu'>
  <name>web1</name>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type><kernel>/boot/guest/vmlinuz</kernel>
    <initrd>/boot/guest/initrd.img</initrd></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='{dir}/web1.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
      <source file='{dir}/web1-cidata.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
    <disk type='file' device='cdrom'><target dev='sdb' bus='sata'/><readonly/></disk>
    <disk type='network' device='disk'><source protocol='rbd' name='pool/image'/><target dev='vdb' bus='virtio'/></disk>
    <disk type='block' device='disk'><source dev='/dev/shared/data'/><target dev='vdc' bus='virtio'/><shareable/></disk>
  </devices>
</domain>
"""


@pytest.fixture
def hosts(tmp_path):
    """(source, destination): HostFiles over test:///default and over a test driver of its own, each with a dir
    pool on the same target path, removed afterwards."""
    node = tmp_path / 'node.xml'
    node.write_text(NODE)
    target = '/srv/migration-%d' % next(_numbers)
    source_conn = libvirt.open(TEST_DRIVER_URI)
    destination_conn = libvirt.open('test://%s' % node)
    pools = []
    for conn in (source_conn, destination_conn):
        pool = conn.storagePoolDefineXML("<pool type='dir'><name>images-%d</name><target><path>%s</path></target></pool>"
                                         % (next(_numbers), target), 0)
        pool.create(0)
        pools.append(pool)
    source, destination = HostFiles(source_conn, 'kvm1'), HostFiles(destination_conn, 'kvm2')
    source.target = destination.target = target
    source.pool, destination.pool = pools
    yield source, destination
    for host in (source, destination):
        host.stop_transient_pools()
        for vol in host.pool.listAllVolumes(0):
            vol.delete(0)
        host.pool.destroy()
        host.pool.undefine()


def add_volume(host, name, capacity=1 << 30, image_format='qcow2', backing=None):
    backing_xml = "<backingStore><path>%s</path><format type='qcow2'/></backingStore>" % backing if backing else ''
    host.pool.createXML("<volume><name>%s</name><capacity>%d</capacity><target><format type='%s'/></target>%s"
                        "</volume>" % (name, capacity, image_format, backing_xml), 0)
    host._pools = None


def disk(path, target='vda', readonly=False):
    return GuestFile(path, 'cdrom' if readonly else 'disk', target=target, readonly=readonly, image_format='qcow2')


def test_guest_files_are_the_local_disks_and_boot_files():
    files = guest_files(DOMAIN.format(dir='/srv/images'))
    assert [(f.role, f.target, f.path, f.readonly, f.shareable) for f in files] == [
        ('disk', 'vda', '/srv/images/web1.qcow2', False, False),
        ('cdrom', 'sda', '/srv/images/web1-cidata.iso', True, False),
        ('disk', 'vdc', '/dev/shared/data', False, True),
        ('kernel', None, '/boot/guest/vmlinuz', False, False),
        ('initrd', None, '/boot/guest/initrd.img', False, False),
    ]


def test_live_copy_creates_an_empty_image_of_the_disk(hosts):
    source, destination = hosts
    add_volume(source, 'web1.qcow2', capacity=5 << 30)
    plans, problems = plan_files([disk(source.target + '/web1.qcow2')], 'copy', True, source, destination)
    assert problems == []
    assert [(p.action, p.volume.capacity, p.volume.image_format) for p in plans] == [('create', 5 << 30, 'qcow2')]
    assert plans[0].describe('kvm2') == 'create an empty qcow2 image on kvm2 for disk vda (%s/web1.qcow2)' % source.target


def test_read_only_disks_are_copied_and_offline_moves_copy_every_disk(hosts):
    source, destination = hosts
    add_volume(source, 'web1.qcow2')
    add_volume(source, 'web1-cidata.iso', capacity=1 << 20, image_format='raw')
    files = [disk(source.target + '/web1.qcow2'), disk(source.target + '/web1-cidata.iso', 'sda', readonly=True)]
    live = plan_files(files, 'copy', True, source, destination)[0]
    assert [p.action for p in live] == ['create', 'copy']
    offline = plan_files(files, 'copy', False, source, destination)[0]
    assert [p.action for p in offline] == ['copy', 'copy']


def test_shared_storage_needs_the_disk_on_the_destination(hosts):
    source, destination = hosts
    add_volume(source, 'web1.qcow2')
    plans, problems = plan_files([disk(source.target + '/web1.qcow2')], 'shared', True, source, destination)
    assert plans == []
    assert problems == ['disk vda (%s/web1.qcow2) is not on kvm2: storage shared expects the same path on both hosts '
                        '(use storage copy to copy the disk)' % source.target]
    add_volume(destination, 'web1.qcow2')
    assert plan_files([disk(source.target + '/web1.qcow2')], 'shared', True, source, destination) == ([], [])


def test_an_existing_image_that_fits_is_used_and_one_that_does_not_is_refused(hosts):
    source, destination = hosts
    add_volume(source, 'web1.qcow2', capacity=2 << 30)
    add_volume(destination, 'web1.qcow2', capacity=2 << 30)
    assert plan_files([disk(source.target + '/web1.qcow2')], 'copy', True, source, destination) == ([], [])
    add_volume(source, 'db1.qcow2', capacity=4 << 30)
    add_volume(destination, 'db1.qcow2', capacity=1 << 30)
    plans, problems = plan_files([disk(source.target + '/db1.qcow2')], 'copy', True, source, destination)
    assert plans == [] and len(problems) == 1
    assert 'is on kvm2 already as a qcow2 image of 1073741824 bytes, the disk is a qcow2 image of 4294967296' in problems[0]


def test_copy_incremental_needs_the_backing_file_there_and_no_older_top_image(hosts):
    source, destination = hosts
    base = source.target + '/base.qcow2'
    add_volume(source, 'base.qcow2')
    add_volume(source, 'web1.qcow2', backing=base)
    files = [disk(source.target + '/web1.qcow2')]
    plans, problems = plan_files(files, 'copy_incremental', True, source, destination)
    assert plans == [] and problems == [
        'the backing file %s of disk vda (%s/web1.qcow2) is not on kvm2: copy_incremental copies the top image only; '
        'put the backing file there first, or use storage copy' % (base, source.target)]
    add_volume(destination, 'base.qcow2')
    plans, problems = plan_files(files, 'copy_incremental', True, source, destination)
    assert problems == [] and [(p.action, p.backing) for p in plans] == [('create', base)]
    add_volume(destination, 'web1.qcow2', backing=base)
    plans, problems = plan_files(files, 'copy_incremental', True, source, destination)
    assert plans == [] and 'an older file there would show through' in problems[0]


def test_offline_copy_takes_the_missing_backing_files_along(hosts):
    source, destination = hosts
    base = source.target + '/base.qcow2'
    add_volume(source, 'base.qcow2')
    add_volume(source, 'web1.qcow2', backing=base)
    plans, problems = plan_files([disk(source.target + '/web1.qcow2')], 'copy', False, source, destination)
    assert problems == []
    assert [(p.action, p.file.path) for p in plans] == [('copy', source.target + '/web1.qcow2'), ('copy', base)]
    plans, problems = plan_files([disk(source.target + '/web1.qcow2')], 'copy_incremental', False, source, destination)
    assert problems == ['the backing file %s is not on kvm2: copy_incremental copies the top image only' % base]


def test_a_directory_no_pool_holds_is_looked_at_through_a_transient_pool(hosts):
    source, destination = hosts
    plans, problems = plan_files([disk('/var/other/web1.qcow2')], 'copy', True, source, destination)
    assert problems == ['disk vda (/var/other/web1.qcow2) cannot be read on kvm1 through libvirt (no pool holds it)']
    names = [pool.name() for pool in source.transient_pools + destination.transient_pools]
    assert len(names) == 2 and all(name.startswith('virtops-migration-') for name in names)
    source.stop_transient_pools()
    destination.stop_transient_pools()
    assert not [name for name in source.conn.listStoragePools() if name.startswith('virtops-migration-')]


def flags(address='10.0.0.2', **params):
    base = dict(mode='live', persistent=True, undefine_source=True, storage='shared', auto_converge=False,
                postcopy=False, compressed=False, parallel_connections=None, bandwidth=None, max_downtime=None,
                timeout=None, migration_port=None, unsafe=False)
    base.update(params)
    return MigrationFlags(base, address)


def test_flags_and_parameters_follow_the_options():
    live = flags(storage='copy', bandwidth=100, parallel_connections=4, auto_converge=True, migration_port=49200)
    assert live.flags == (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
                          | libvirt.VIR_MIGRATE_NON_SHARED_DISK | libvirt.VIR_MIGRATE_AUTO_CONVERGE
                          | libvirt.VIR_MIGRATE_PARALLEL)
    assert live.typed == {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: 100, libvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS: 4,
                          libvirt.VIR_MIGRATE_PARAM_URI: 'tcp://10.0.0.2:49200',
                          libvirt.VIR_MIGRATE_PARAM_DISKS_URI: 'tcp://10.0.0.2'}
    offline = flags(mode='offline', undefine_source=False, storage='copy')
    assert offline.flags == libvirt.VIR_MIGRATE_OFFLINE | libvirt.VIR_MIGRATE_PERSIST_DEST and offline.typed == {}
    assert flags(storage='copy_incremental', persistent=False).flags == (
        libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE | libvirt.VIR_MIGRATE_NON_SHARED_INC)
    assert flags('fe80::1').typed == {libvirt.VIR_MIGRATE_PARAM_URI: 'tcp://[fe80::1]'}


@pytest.mark.parametrize('args, message', [
    ({'mode': 'offline', 'bandwidth': 10}, 'bandwidth applies to live migration only (mode is offline)'),
    ({'mode': 'offline', 'postcopy': True}, 'postcopy applies to live migration only (mode is offline)'),
    ({'mode': 'offline', 'persistent': False}, 'persistent=false cannot go with mode offline'),
    ({'concurrency': 0}, 'concurrency must be at least 1, got 0'),
    ({'timeout': -1}, 'timeout must be at least 0, got -1'),
])
def test_bad_options_are_refused_before_anything_connects(capsys, args, message):
    call = on_test_driver(libvirt_migration, capsys)
    result = call(dict({'name': 'web1', 'destination': 'qemu+tcp://192.0.2.1/system'}, **args))
    assert result['failed'] and message in result['msg'] and result['changed'] is False


def test_a_destination_that_does_not_answer_is_an_error_naming_it(capsys):
    result = on_test_driver(libvirt_migration, capsys)(name='web1', destination='qemu+tcp://127.0.0.1:1/system')
    assert result['failed'] and result['changed'] is False
    assert result['msg'].startswith('cannot connect to the destination qemu+tcp://127.0.0.1:1/system: ')
    assert 'Nothing was moved' in result['msg']


def test_the_same_host_is_refused(capsys):
    result = on_test_driver(libvirt_migration, capsys)(name='test', destination=TEST_DRIVER_URI, check=True)
    assert result['failed'] and result['changed'] is False
    assert 'both call themselves' in result['msg'] and 'libvirt refuses' in result['msg']
