# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_pool and libvirt_pool_info on qemu:///system inside the lvhost container: dir pools, fs and logical
pools on loop devices, each change made four ways and checked with virsh and on the storage itself (mount table,
vgs, blkid, the directory's mode and owner). Loop devices are the host kernel's: every one is detached, and its
volume group removed, in the fixture's teardown."""

from __future__ import annotations

import itertools
import json

import pytest

from virtops_testlib import PREFIX

_numbers = itertools.count()


@pytest.fixture
def name(lvhost):
    pool = '%spool-%d' % (PREFIX, next(_numbers))
    yield pool
    lvhost.sh('virsh pool-destroy {0} >/dev/null 2>&1 || true; virsh pool-undefine {0} >/dev/null 2>&1 || true'
              .format(pool), check=False)


@pytest.fixture
def scratch(lvhost, name):
    """A path inside the container for the test's directories (removed afterwards)."""
    path = '/var/tmp/%s' % name
    yield path
    lvhost.sh('umount -l {0}/* 2>/dev/null || true; rm -rf {0}'.format(path), check=False)


@pytest.fixture
def loop(lvhost, name):
    """A sparse file on a loop device inside the container; detached (and its VG removed) afterwards."""
    attached = []

    def attach(size='64M'):
        image = '/var/tmp/%s-%d.img' % (name, len(attached))
        device = lvhost.sh('truncate -s {1} {0} && losetup -f --show {0}'.format(image, size)).stdout.strip()
        attached.append((device, image))
        return device
    yield attach
    for device, image in attached:
        lvhost.sh('''
            for mnt in $(findmnt -n -o TARGET -S {dev} || true); do umount -l "$mnt" || true; done
            for vg in $(pvs --noheadings -o vg_name {dev} 2>/dev/null || true); do vgremove -f "$vg" || true; done
            pvremove -ff -y {dev} >/dev/null 2>&1 || true
            losetup -d {dev} || true
            rm -f {img}'''.format(dev=device, img=image), check=False)


def virsh_state(lvhost, name):
    """(state, autostart) as virsh pool-info says, or None when the pool does not exist."""
    proc = lvhost.exec(['virsh', '-c', 'qemu:///system', 'pool-info', name])
    if proc.returncode != 0:
        return None
    fields = dict(line.split(':', 1) for line in proc.stdout.splitlines() if ':' in line)
    return fields['State'].strip(), fields['Autostart'].strip()


def blkid(lvhost, device):
    return lvhost.exec(['blkid', '-p', '-o', 'export', device]).stdout


def mounted_on(lvhost, device):
    return lvhost.exec(['findmnt', '-n', '-o', 'TARGET', '-S', device]).stdout.strip()


def volume_groups(lvhost):
    return lvhost.exec(['vgs', '--noheadings', '-o', 'vg_name']).stdout.split()


def assert_refused(result, *texts):
    assert result.get('failed') is True and result['changed'] is False, result
    for text in texts:
        assert text in result['msg'], result['msg']


def test_dir_pool_built_with_permissions_started_autostarted(lvhost, name, scratch):
    target = scratch + '/images'
    args = {'name': name, 'type': 'dir', 'target': target, 'autostart': True,
            'permissions': {'owner': 'root', 'group': 'kvm', 'mode': '0770'}}
    kvm_gid = lvhost.sh('getent group kvm | cut -d: -f3').stdout.strip()

    def verify():
        assert virsh_state(lvhost, name) == ('running', 'yes')
        assert lvhost.sh('stat -c "%a %u %g" ' + target).stdout.split() == ['770', '0', kvm_gid]
    check, real, rerun = lvhost.four_ways('libvirt_pool', args, verify)[:3]
    assert real['actions'] == ['define', 'build', 'start', 'autostart']
    assert check['diff'] == real['diff'] and check['differences'] == real['differences']
    assert '<group>%s</group>' % kvm_gid in lvhost.virsh('pool-dumpxml', '--inactive', name)
    assert rerun['differences'] == [] and rerun['restart_required'] is False

    lvhost.sh('chmod 0700 ' + target)
    fixed = lvhost.four_ways('libvirt_pool', args)[1]
    assert fixed['actions'] == ['set permissions'] and fixed['differences'] == [
        'permissions.mode: 0700 -> 0770 (directory)']
    assert lvhost.sh('stat -c %a ' + target).stdout.strip() == '770'


def test_a_changed_running_dir_pool_waits_for_apply_restart_and_keeps_its_uuid(lvhost, name, scratch):
    lvhost.run_module('libvirt_pool', {'name': name, 'type': 'dir', 'target': scratch + '/a'})
    uuid = lvhost.virsh('pool-uuid', name)
    moved = {'name': name, 'type': 'dir', 'target': scratch + '/b'}
    real, rerun = lvhost.four_ways('libvirt_pool', moved)[1:3]
    assert real['actions'] == ['define', 'create target directory'] and rerun['restart_required'] is True
    assert rerun['restart_reasons'] == ['target: %s/a -> %s/b' % (scratch, scratch)]
    assert scratch + '/a' in lvhost.virsh('pool-dumpxml', name)
    restarted, rerun = lvhost.four_ways('libvirt_pool', dict(moved, apply='restart'))[1:3]
    assert restarted['actions'] == ['destroy', 'start'] and restarted['restart_required'] is False
    assert scratch + '/b' in lvhost.virsh('pool-dumpxml', name) and rerun['restart_required'] is False
    assert lvhost.virsh('pool-uuid', name) == uuid


def test_fs_pool_formats_an_empty_device_once_and_delete_keeps_the_file_system(lvhost, name, scratch, loop):
    device = loop()
    target = scratch + '/fs'
    args = {'name': name, 'type': 'fs', 'target': target, 'source': {'devices': [device], 'format': 'ext4'}}

    def verify():
        assert 'TYPE=ext4' in blkid(lvhost, device)
        assert mounted_on(lvhost, device) == target
        assert virsh_state(lvhost, name) == ('running', 'no')
    check, real = lvhost.four_ways('libvirt_pool', args, verify)[:2]
    assert check['diff'] == real['diff'] and check['differences'] == real['differences']
    assert real['actions'] == ['define', 'build', 'start']
    fs_uuid = lvhost.exec(['blkid', '-s', 'UUID', '-o', 'value', device]).stdout.strip()
    facts = lvhost.run_module('libvirt_pool_info', {'name': [name]})
    (found,) = facts['pools']
    assert found['state'] == 'active' and found['capacity'] > 50 * 2 ** 20 and found['available'] > 0
    assert found['source'] == {'devices': [device], 'format': 'ext4'} and found['volumes'] == ['lost+found']

    removed = {'name': name, 'state': 'absent', 'delete': True}
    gone = lvhost.four_ways('libvirt_pool', removed)[1]
    assert gone['actions'] == ['destroy', 'delete', 'undefine']
    assert virsh_state(lvhost, name) is None and mounted_on(lvhost, device) == ''
    assert not lvhost.exists(target)  # the mount point goes; the file system stays
    assert lvhost.exec(['blkid', '-s', 'UUID', '-o', 'value', device]).stdout.strip() == fs_uuid

    again = lvhost.four_ways('libvirt_pool', args)[1]
    assert again['actions'] == ['define', 'create target directory', 'start']
    assert lvhost.exec(['blkid', '-s', 'UUID', '-o', 'value', device]).stdout.strip() == fs_uuid


def test_fs_pool_refuses_a_device_holding_another_file_system(lvhost, name, scratch, loop):
    device = loop('320M')  # the smallest xfs mkfs.xfs makes is 300 MB
    lvhost.sh('mkfs.xfs -q ' + device)
    before = blkid(lvhost, device)
    args = {'name': name, 'type': 'fs', 'target': scratch + '/fs', 'source': {'devices': [device], 'format': 'ext4'}}
    for check in (True, False):
        result = lvhost.run_module('libvirt_pool', args, check=check)
        assert_refused(result, "source.devices[0]: device %s of pool '%s' holds xfs (UUID=" % (device, name),
                       'not ext4; it was not formatted')
        assert result['failed_object'] == "pool '%s'" % name
    assert virsh_state(lvhost, name) is None and blkid(lvhost, device) == before
    assert not lvhost.exists(scratch + '/fs')


def test_logical_pool_creates_its_volume_group_and_delete_removes_it(lvhost, name, loop):
    device = loop()
    group = name.replace('-', '_')
    args = {'name': name, 'type': 'logical', 'source': {'name': group, 'devices': [device]}}

    def verify():
        assert group in volume_groups(lvhost)
        assert 'TYPE=LVM2_member' in blkid(lvhost, device)
        assert virsh_state(lvhost, name)[0] == 'running'
    check, real = lvhost.four_ways('libvirt_pool', args, verify)[:2]
    assert check['diff'] == real['diff'] and check['differences'] == real['differences']
    assert real['actions'] == ['define', 'build', 'start']
    assert "<format type='lvm2'/>" in lvhost.virsh('pool-dumpxml', name)
    assert '<path>/dev/%s</path>' % group in lvhost.virsh('pool-dumpxml', name)

    gone = lvhost.four_ways('libvirt_pool', {'name': name, 'state': 'absent', 'delete': True})[1]
    assert gone['actions'] == ['destroy', 'delete', 'undefine'] and gone['deleted_volumes'] == []
    assert group not in volume_groups(lvhost) and virsh_state(lvhost, name) is None
    assert 'LVM2_member' not in blkid(lvhost, device)  # libvirt's delete also removes the PV label


def test_logical_pool_uses_an_existing_volume_group_and_delete_refuses_its_volumes(lvhost, name, loop):
    device = loop()
    group = name.replace('-', '_')
    # This machine's kernel has no device-mapper, so no logical volume can be activated: the LV is made
    # inactive (metadata only, --driverloaded n), and the pool holding it is kept stopped.
    lvhost.sh('vgcreate -q {0} {1} && lvcreate --driverloaded n -q -y -an -Zn -L 8M -n keep {0}'.format(group, device))
    args = {'name': name, 'type': 'logical', 'source': {'name': group, 'devices': [device]}, 'state': 'inactive'}
    real = lvhost.four_ways('libvirt_pool', args)[1]
    assert real['actions'] == ['define'] and real['differences'] == ['pool: (none) -> defined']

    for check in (True, False):
        refused = lvhost.run_module('libvirt_pool', {'name': name, 'state': 'absent', 'delete': True}, check=check)
        assert_refused(refused, "pool '%s' still has volumes (keep)" % name, 'force: true')
        assert refused['volumes'] == ['keep']
    assert virsh_state(lvhost, name)[0] == 'inactive' and group in volume_groups(lvhost)
    assert lvhost.sh('lvs --noheadings -o lv_name ' + group).stdout.split() == ['keep']


def test_dir_pool_delete_refuses_volumes_and_force_deletes_them_first(lvhost, name, scratch):
    args = {'name': name, 'type': 'dir', 'target': scratch}
    lvhost.run_module('libvirt_pool', args)
    lvhost.virsh('vol-create-as', name, 'disk1.qcow2', '8M', '--format', 'qcow2')
    removed = {'name': name, 'state': 'absent', 'delete': True}
    refused = lvhost.run_module('libvirt_pool', removed)
    assert_refused(refused, "pool '%s' still has volumes (disk1.qcow2)" % name)
    assert lvhost.exists(scratch + '/disk1.qcow2') and virsh_state(lvhost, name)[0] == 'running'

    gone = lvhost.four_ways('libvirt_pool', dict(removed, force=True))[1]
    assert gone['actions'] == ['delete volume disk1.qcow2', 'destroy', 'delete', 'undefine']
    assert gone['deleted_volumes'] == ['disk1.qcow2']
    assert not lvhost.exists(scratch) and virsh_state(lvhost, name) is None


def test_logical_pool_refuses_a_device_with_a_file_system(lvhost, name, loop):
    device = loop()
    lvhost.sh('mkfs.ext4 -q ' + device)
    before = blkid(lvhost, device)
    args = {'pools': [{'name': name + '-dir', 'type': 'dir', 'target': '/var/tmp/%s-dir' % name},
                      {'name': name, 'type': 'logical', 'source': {'devices': [device]}}]}
    result = lvhost.run_module('libvirt_pool', args)
    assert_refused(result, "pools[1].source.devices[0]: device %s of pool '%s' holds ext4 (UUID=" % (device, name),
                   'it was not touched')
    assert blkid(lvhost, device) == before and name not in volume_groups(lvhost)
    assert virsh_state(lvhost, name) is None and virsh_state(lvhost, name + '-dir') is None
    assert not lvhost.exists('/var/tmp/%s-dir' % name)


def test_info_reports_every_pool_and_the_missing_names(lvhost, name, scratch):
    lvhost.run_module('libvirt_pool', {'name': name, 'type': 'dir', 'target': scratch, 'state': 'inactive'})
    facts = lvhost.run_module('libvirt_pool_info', {'name': [name, name + '-none']})
    assert facts['missing'] == [name + '-none']
    (found,) = facts['pools']
    assert (found['state'], found['persistent'], found['autostart'], found['volumes']) == ('inactive', True, False, [])
    assert json.loads(json.dumps(found))['target'] == scratch


GUEST_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>96</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>{guest}/vmlinuz</kernel><initrd>{guest}/initrd.img</initrd>
    <cmdline>console=ttyS0</cmdline></os>
  <devices>
    <disk type='volume' device='disk'><driver name='qemu' type='raw'/>
      <source pool='{pool}' volume='data.img'/><target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>
"""


@pytest.fixture
def guest(lvhost, name):
    domain = name + '-guest'
    yield domain
    lvhost.sh('virsh destroy {0} >/dev/null 2>&1 || true; virsh undefine {0} >/dev/null 2>&1 || true'.format(domain),
              check=False)


def test_stopping_a_pool_that_a_running_domain_uses_is_refused_unless_forced(lvhost, name, scratch, guest):
    args = {'name': name, 'type': 'dir', 'target': scratch + '/a'}
    lvhost.run_module('libvirt_pool', args)
    lvhost.virsh('vol-create-as', name, 'data.img', '4M')
    lvhost.sh("cat > /var/tmp/{0}.xml <<'XML'\n{1}XML\nvirsh define /var/tmp/{0}.xml >/dev/null && virsh start {0}"
              .format(guest, GUEST_XML.format(name=guest, guest=lvhost.guest_dir, pool=name)))
    moved = dict(args, target=scratch + '/b', apply='restart')
    for check in (True, False):
        refused = lvhost.run_module('libvirt_pool', moved, check=check)
        assert_refused(refused, "cannot restart pool '%s': running domains use its volumes (%s)" % (name, guest))
        assert refused['domains'] == [guest]
    assert scratch + '/a' in lvhost.virsh('pool-dumpxml', '--inactive', name)
    stop = lvhost.run_module('libvirt_pool', dict(args, state='inactive'))
    assert_refused(stop, "cannot stop pool '%s'" % name)
    assert virsh_state(lvhost, name)[0] == 'running'

    forced = lvhost.four_ways('libvirt_pool', dict(moved, force=True))[1]
    assert forced['actions'] == ['define', 'destroy', 'build', 'start']
    assert scratch + '/b' in lvhost.virsh('pool-dumpxml', name)
    assert lvhost.virsh('domstate', guest) == 'running'


def test_netfs_pool_is_defined_with_its_mount_point_without_mounting(lvhost, name, scratch):
    """No NFS server runs in the test container: the pool is defined (state present), not started."""
    target = scratch + '/nfs'
    args = {'name': name, 'type': 'netfs', 'target': target, 'state': 'present',
            'source': {'host': 'nas.invalid', 'dir': '/export/iso', 'format': 'nfs'}}

    def verify():
        assert lvhost.exists(target) and virsh_state(lvhost, name)[0] == 'inactive'
    check, real = lvhost.four_ways('libvirt_pool', args, verify)[:2]
    assert real['actions'] == ['define', 'build'] and check['diff'] == real['diff'] and real['state'] == 'inactive'
    xml = lvhost.virsh('pool-dumpxml', '--inactive', name)
    assert "<host name='nas.invalid'/>" in xml and "<dir path='/export/iso'/>" in xml and "<format type='nfs'/>" in xml


def test_a_full_xml_reruns_as_a_no_op_against_what_libvirt_stores(lvhost, name, scratch):
    xml = """<pool type='dir'>
      <name>{name}</name>
      <target>
        <path>{path}//</path>
        <permissions><mode>750</mode><owner>0</owner><group>0</group></permissions>
      </target>
    </pool>""".format(name=name, path=scratch + '/xml')
    check, real = lvhost.four_ways('libvirt_pool', {'xml': xml, 'autostart': False})[:2]
    assert real['actions'] == ['define', 'build', 'start'] and check['diff'] == real['diff']
    assert '<path>%s/xml</path>' % scratch in lvhost.virsh('pool-dumpxml', '--inactive', name)
    assert lvhost.sh('stat -c %a ' + scratch + '/xml').stdout.strip() == '750'
