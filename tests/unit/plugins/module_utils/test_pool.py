# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of libvirt_pool: XML described and compared, options validated, storage build decisions."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _pool_storage as ps
from ansible_collections.virtops.hypervisor.plugins.module_utils import _pool_xml as px
from ansible_collections.virtops.hypervisor.plugins.module_utils._pool_options import PoolSpec, build_specs

# What libvirt 9.0 (qemu:///system) stores for an fs pool defined without format and permissions.
STORED_FS = """<pool type='fs'>
  <name>fast</name>
  <uuid>2b2b7d39-5d77-4e6b-a3e4-4f6f1c7c0a11</uuid>
  <capacity unit='bytes'>0</capacity>
  <allocation unit='bytes'>0</allocation>
  <available unit='bytes'>0</available>
  <source>
    <device path='/dev/loop3'/>
    <format type='auto'/>
  </source>
  <target>
    <path>/srv/fast</path>
  </target>
</pool>
"""


def spec(**item):
    return PoolSpec(dict({'state': 'active'}, **item), '')


def test_libvirt_fill_ins_are_not_differences():
    asked = spec(name='fast', type='fs', target='/srv/fast/', source={'devices': ['/dev/loop3']})
    assert px.differences(asked.wanted, px.describe(px.parse(STORED_FS))) == []


def test_a_full_xml_is_compared_only_on_what_it_says():
    asked = spec(xml="<pool type='fs'><name>fast</name><source><device path='/dev/loop3'/></source>"
                     "<target><path>/srv/fast</path></target></pool>")
    assert px.differences(asked.wanted, px.describe(px.parse(STORED_FS))) == []
    other = spec(xml="<pool type='fs'><name>fast</name><source><device path='/dev/loop4'/><format type='xfs'/>"
                     "</source><target><path>/srv/fast</path></target></pool>")
    assert px.differences(other.wanted, px.describe(px.parse(STORED_FS))) == [
        'source.devices: [/dev/loop3] -> [/dev/loop4]', 'source.format: auto -> xfs']


def test_unknown_source_elements_of_a_full_xml_are_compared_as_written():
    iscsi = ("<pool type='iscsi'><name>san</name><source><host name='san1'/>"
             "<device path='iqn.2026-01.example:t1'/><initiator><iqn name='iqn.2026-01.example:h1'/></initiator>"
             "</source><target><path>/dev/disk/by-path</path></target></pool>")
    asked = spec(xml=iscsi)
    assert px.differences(asked.wanted, px.describe(px.parse(iscsi.replace("><", ">\n  <")))) == []
    changed = px.describe(px.parse(iscsi.replace(':h1', ':h2')))
    assert [line.split(':')[0] for line in px.differences(asked.wanted, changed)] == ['source.other']
    with_more = px.describe(px.parse(iscsi.replace('</source>', "<adapter type='scsi_host' name='host0'/></source>")))
    assert px.differences(asked.wanted, with_more) == []
    with_port = spec(xml=iscsi.replace("<host name='san1'/>", "<host name='san1' port='3261'/>"))
    assert [line.split(':')[0] for line in px.differences(with_port.wanted, px.describe(px.parse(iscsi)))] == [
        'source.other']


def test_structured_settings_are_written_into_the_stored_definition():
    root = px.apply_settings(px.parse(STORED_FS), spec(
        name='fast', source={'devices': ['/dev/loop5'], 'format': 'ext4'},
        permissions={'mode': '750', 'owner': '0'}).wanted)
    described = px.describe(root)
    assert described['source'] == {'devices': ['/dev/loop5'], 'format': 'ext4'}
    assert described['permissions'] == {'mode': '0750', 'owner': '0'}
    assert described['uuid'] == '2b2b7d39-5d77-4e6b-a3e4-4f6f1c7c0a11'


@pytest.mark.parametrize('item, message', [
    ({'name': 'p', 'type': 'dir', 'target': 'images'}, "target: target 'images' must be an absolute path"),
    ({'name': 'p', 'type': 'dir', 'target': '/x', 'permissions': {'mode': 'rwx'}},
     "permissions.mode: 'rwx' is not an octal mode such as '0755' (quote it in YAML)"),
    ({'name': 'p', 'type': 'dir', 'target': '/x', 'permissions': {'owner': 'virtops-nobody'}},
     "permissions.owner: there is no user 'virtops-nobody' on the host (give a name that exists or a number)"),
    ({'name': 'p', 'type': 'logical', 'permissions': {'mode': '0755'}},
     'permissions: logical pools have no target directory: permissions do not apply'),
    ({'name': 'p', 'type': 'dir', 'target': '/x', 'source': {'host': 'nas'}},
     'source: host does not apply to a dir pool (it uses no source)'),
    ({'name': 'p', 'type': 'fs', 'target': '/x', 'source': {'devices': ['/dev/a'], 'format': 'btrfs'}},
     "source.format: 'btrfs' is not a fs pool format (one of auto, ext2, ext3, ext4, ufs, iso9660, udf, gfs, gfs2, "
     "vfat, hfs+, xfs, ocfs2, vmfs)"),
    ({'name': 'p', 'type': 'netfs', 'target': '/x', 'source': {'host': 'nas', 'dir': 'export'}},
     "source.dir: 'export' must be an absolute path on the server"),
    ({'name': 'p', 'xml': "<pool type='dir'><name>q</name></pool>"}, "name 'p' differs from the <name> 'q' in its xml"),
    ({'name': 'p', 'xml': "<pool><name>p</name></pool>"}, "xml: <pool> has no type attribute (such as type='dir')"),
    ({'name': 'p', 'xml': "<pool type='dir'>", 'type': 'dir'},
     'xml and the structured options (type) are mutually exclusive; put the settings into the XML'),
    ({'name': 'a/b', 'type': 'dir', 'target': '/x'}, "name 'a/b' contains '/', which libvirt refuses in a pool name"),
    ({'name': 'p', 'state': 'inactive', 'delete': True}, 'delete: true goes with state: absent only'),
])
def test_bad_input_is_refused_naming_the_option(item, message):
    with pytest.raises(px.PoolXMLError) as caught:
        PoolSpec(dict({'state': 'active'}, **item), '')
    assert str(caught.value) == message


def test_batch_errors_name_the_item_and_a_pool_given_twice_is_refused():
    with pytest.raises(px.PoolXMLError) as caught:
        build_specs({'state': None, 'pools': [{'name': 'a', 'type': 'fs', 'target': '/a',
                                               'source': {'devices': ['/dev/x'], 'format': 'ext4'},
                                               'permissions': {'mode': 700}}]})
    assert str(caught.value).startswith('pools[0].permissions.mode: give the mode as a quoted string')
    with pytest.raises(px.PoolXMLError) as caught:
        build_specs({'pools': [{'name': 'a'}, {'name': 'a'}]})
    assert str(caught.value) == "pool 'a' appears twice: pools[0] and pools[1]"


def test_a_new_pool_needs_what_its_type_needs():
    with pytest.raises(px.PoolXMLError) as caught:
        PoolSpec({'name': 'n', 'type': 'netfs', 'target': '/mnt/n', 'source': {'host': 'nas'}}, 'pools[2]').check_new()
    assert str(caught.value) == 'pools[2]: a netfs pool needs source.dir'


class FakeStorage(object):
    """What the probes would find: signatures by device, PVs, directories."""

    def __init__(self, signatures=None, pvs=None, data=(), directories=None):
        self.signatures = signatures or {}
        self.pvs = pvs or {}
        self.data = data
        self.directories = directories or {}

    def signature(self, device):
        return self.signatures.get(device, {})

    def holds_data(self, device):
        return device in self.data

    def physical_volumes(self):
        return self.pvs

    def volume_groups(self):
        return set(group for group in self.pvs.values() if group)

    def directory(self, path):
        return self.directories.get(path)


@pytest.fixture
def device(tmp_path):
    """An existing path to stand for a block device (the decisions only check that it exists)."""
    path = tmp_path / 'disk'
    path.write_bytes(b'')
    return str(path)


def settings(pool_type, **source):
    return {'type': pool_type, 'target': '/srv/p', 'permissions': {}, 'source': source}


EXT4 = {'TYPE': 'ext4', 'USAGE': 'filesystem', 'UUID': 'a1b2'}


def test_an_empty_device_is_built_with_the_asked_file_system(device):
    plan = ps.plan_storage(settings('fs', devices=[device], format='ext4'), 'p', FakeStorage())
    assert plan.steps == [ps.BUILD]
    assert plan.reasons == ['source.devices: %s holds no file system (build makes ext4)' % device]


def test_a_device_with_the_asked_file_system_is_mounted_as_it_is(device):
    storage = FakeStorage(signatures={device: EXT4})
    plan = ps.plan_storage(settings('fs', devices=[device], format='ext4'), 'p', storage)
    assert plan.steps == [ps.MKDIR]
    storage.directories['/srv/p'] = os.stat('/')
    assert ps.plan_storage(settings('fs', devices=[device], format='auto'), 'p', storage).steps == []


@pytest.mark.parametrize('found, text', [
    ({'TYPE': 'xfs', 'USAGE': 'filesystem', 'UUID': 'f00'}, 'holds xfs (UUID=f00), not ext4'),
    ({'PTTYPE': 'dos'}, 'holds a dos partition table, not ext4'),
    ({'TYPE': 'LVM2_member', 'USAGE': 'raid', 'UUID': 'pv1'}, 'holds an LVM physical volume (UUID=pv1), not ext4'),
])
def test_a_device_holding_something_else_is_refused_with_what_was_found(device, found, text):
    with pytest.raises(ps.StorageRefused) as caught:
        ps.plan_storage(settings('fs', devices=[device], format='ext4'), 'p',
                        FakeStorage(signatures={device: found}))
    assert str(caught.value).startswith("source.devices[0]: device %s of pool 'p' %s; it was not formatted"
                                        % (device, text))


def test_unrecognised_data_is_refused_and_auto_cannot_make_a_file_system(device):
    with pytest.raises(ps.StorageRefused, match='holds data that blkid does not recognise'):
        ps.plan_storage(settings('fs', devices=[device], format='ext4'), 'p', FakeStorage(data=[device]))
    with pytest.raises(ps.StorageRefused, match='holds no file system; set source.format'):
        ps.plan_storage(settings('fs', devices=[device], format='auto'), 'p', FakeStorage())


def test_an_existing_volume_group_is_used_and_an_empty_device_gets_a_new_one(device):
    real = os.path.realpath(device)
    used = ps.plan_storage(settings('logical', name='vg0', devices=[device], format='lvm2'), 'p',
                           FakeStorage(pvs={real: 'vg0'}))
    assert used.steps == []
    built = ps.plan_storage(settings('logical', devices=[device], format='lvm2'), 'guests', FakeStorage())
    assert built.reasons == ['source.name: volume group guests does not exist (build creates it on %s)' % device]


def test_a_physical_volume_of_another_group_or_a_file_system_is_not_taken_for_lvm(device):
    real = os.path.realpath(device)
    with pytest.raises(ps.StorageRefused, match='is an LVM physical volume already \\(of volume group other\\)'):
        ps.plan_storage(settings('logical', name='vg0', devices=[device]), 'p', FakeStorage(pvs={real: 'other'}))
    with pytest.raises(ps.StorageRefused, match=r'holds ext4 \(UUID=a1b2\); it was not touched'):
        ps.plan_storage(settings('logical', name='vg0', devices=[device]), 'p',
                        FakeStorage(signatures={device: EXT4}))
    with pytest.raises(ps.StorageRefused, match="^source.devices: volume group vg0 of pool 'p' exists on /dev/sdz, not on"):
        ps.plan_storage(settings('logical', name='vg0', devices=[device]), 'p', FakeStorage(pvs={'/dev/sdz': 'vg0'}))


def test_a_dir_pool_builds_a_missing_directory_and_corrects_permissions_of_an_existing_one(tmp_path):
    wanted = dict(settings('dir'), target=str(tmp_path), permissions={'mode': '0700', 'owner': '0'})
    os.chmod(str(tmp_path), 0o755)
    storage = FakeStorage(directories={str(tmp_path): os.stat(str(tmp_path))})
    plan = ps.plan_storage(wanted, 'p', storage)
    assert plan.steps == [ps.PERMISSIONS] and plan.reasons == ['permissions.mode: 0755 -> 0700 (directory)']
    assert ps.plan_storage(dict(wanted, target='/srv/none'), 'p', storage).steps == [ps.BUILD]
    assert stat.S_ISDIR(storage.directory(str(tmp_path)).st_mode)


class RecordedCommands(object):
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        return self.answers[argv[0]]


def test_probes_run_blkid_and_wipefs_without_writing():
    commands = RecordedCommands({'blkid': (2, '', ''), 'wipefs': (0, 'dos\n', '')})
    found = ps.HostStorage(commands).signature('/dev/loop7')
    assert found == {'TYPE': 'dos', 'SIGNATURES': 'dos'}
    assert commands.calls == [['blkid', '-p', '-o', 'export', '/dev/loop7'],
                              ['wipefs', '--no-act', '--noheadings', '--output', 'TYPE', '/dev/loop7']]
    commands = RecordedCommands({'blkid': (0, 'UUID=a1b2\nVERSION=1.0\nTYPE=ext4\nUSAGE=filesystem\n', '')})
    assert ps.HostStorage(commands).signature('/dev/loop7') == dict(EXT4, VERSION='1.0')


@pytest.mark.parametrize('uri, local', [('qemu:///system', True), ('test:///default', True),
                                        ('qemu+ssh://root@localhost/system', True),
                                        ('qemu+ssh://root@kvm2.example.com/system', False),
                                        ('qemu+tls://10.0.0.5/system', False)])
def test_the_storage_is_probed_only_where_libvirt_runs(uri, local):
    assert ps.is_local(uri) is local
