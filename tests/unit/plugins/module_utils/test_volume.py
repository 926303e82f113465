# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_volume's pure parts: options into VolumeSpecs, volume XML into dicts, users, and the plan.

The XML is what libvirt 9.0 (qemu:///system, a dir pool) returns; resizes are planned here because
the test driver cannot resize (tests/integration/test_libvirt_volume.py resizes real volumes).
"""

from __future__ import annotations

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume import (
    created_capacity, describe, domains_using, import_record, plan_volume, summary, volumes_backed_by)
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_options import build_specs

MIB = 1 << 20
QCOW2_XML = """<volume type='file'>
  <name>a.qcow2</name>
  <key>/var/lib/libvirt/images/pool/a.qcow2</key>
  <capacity unit='bytes'>10485760</capacity>
  <allocation unit='bytes'>200704</allocation>
  <physical unit='bytes'>196616</physical>
  <target>
    <path>/var/lib/libvirt/images/pool/a.qcow2</path>
    <format type='qcow2'/>
    <permissions><mode>0600</mode><owner>0</owner><group>0</group></permissions>
    <timestamps><atime>1796133424.464537081</atime><mtime>1796133424.461793529</mtime></timestamps>
  </target>
</volume>"""
OVERLAY_XML = """<volume type='file'><name>b.qcow2</name><key>/var/lib/libvirt/images/pool/b.qcow2</key>
  <capacity unit='bytes'>10485760</capacity><allocation unit='bytes'>196616</allocation>
  <target><path>/var/lib/libvirt/images/pool/b.qcow2</path><format type='qcow2'/></target>
  <backingStore><path>/var/lib/libvirt/images/pool/a.qcow2</path><format type='qcow2'/></backingStore>
</volume>"""


def spec(**item):
    item.setdefault('pool', 'pool')
    item.setdefault('name', 'a.qcow2')
    return build_specs(item)[0][0]


def actual(**changes):
    return dict(describe(QCOW2_XML, 'pool'), **changes)


NOBODY = {'users': {'domains': [], 'volumes': []}}


def source(**changes):
    found = {'format': 'raw', 'virtual_size': 32 * MIB, 'backing_file': None, 'size': 32 * MIB,
             'fingerprint': [{'path': '/srv/disk.raw', 'size': 32 * MIB, 'mtime_ns': 1, 'inode': 2, 'device': 3,
                              'format': 'raw', 'virtual_size': 32 * MIB}]}
    found.update(changes)
    return found


def test_describe_reads_sizes_format_backing_and_permissions():
    assert describe(QCOW2_XML, 'pool') == {
        'name': 'a.qcow2', 'pool': 'pool', 'key': '/var/lib/libvirt/images/pool/a.qcow2', 'type': 'file',
        'path': '/var/lib/libvirt/images/pool/a.qcow2', 'format': 'qcow2', 'capacity': 10 * MIB, 'allocation': 200704,
        'backing': None, 'permissions': {'mode': '0600', 'owner': 0, 'group': 0}}
    assert describe(OVERLAY_XML, 'pool')['backing'] == {'path': '/var/lib/libvirt/images/pool/a.qcow2',
                                                        'format': 'qcow2'}


def test_qcow2_capacity_is_compared_in_whole_kib_as_libvirt_creates_it():
    assert created_capacity(1536, 'qcow2') == 2048
    assert created_capacity(1536, 'raw') == 1536
    assert not plan_volume(spec(capacity=10 * MIB - 100), actual(), NOBODY).actions


def test_domains_using_finds_disks_by_path_and_by_pool_and_volume():
    volume = describe(QCOW2_XML, 'pool')
    by_path = "<domain><devices><disk><source file='/var/lib/libvirt/images/pool/./a.qcow2'/></disk></devices></domain>"
    by_name = "<domain><devices><disk type='volume'><source pool='pool' volume='a.qcow2'/></disk></devices></domain>"
    other = "<domain><devices><disk><source file='/var/lib/libvirt/images/pool/b.qcow2'/></disk><disk/></devices></domain>"
    found = domains_using([('web1', [by_path]), ('web2', [other, by_name]), ('web3', [other])], volume)
    assert found == ['web1', 'web2']
    assert volumes_backed_by([describe(OVERLAY_XML, 'pool'), volume], volume) == ['pool/b.qcow2']


def test_a_missing_volume_is_created_and_a_present_one_left_alone():
    created = plan_volume(spec(capacity='64M'), None, NOBODY)
    assert created.actions == [('create', 'qcow2, 64 MiB')]
    assert summary(created.after, spec()) == {'exists': True, 'format': 'qcow2', 'capacity': 64 * MIB, 'backing': None}
    same = plan_volume(spec(capacity='10M'), actual(), NOBODY)
    assert (same.actions, same.differences) == ([], [])


def test_a_larger_capacity_grows_the_volume():
    grown = plan_volume(spec(capacity='20M'), actual(), NOBODY)
    assert grown.actions == [('resize', '10 MiB -> 20 MiB')]
    assert grown.differences == ['capacity: 10 MiB -> 20 MiB'] and grown.after['capacity'] == 20 * MIB


@pytest.mark.parametrize('options, users, message', [
    ({}, {}, 'set allow_shrink: true'),
    ({'allow_shrink': True}, {'domains': ['web1']}, "not shrunk, it is in use by domain 'web1'"),
    ({'allow_shrink': True}, {'volumes': ['pool/b.qcow2']}, 'in use by overlay volume pool/b.qcow2'),
])
def test_shrinking_needs_allow_shrink_and_no_users(options, users, message):
    with pytest.raises(ModuleFailure, match=message):
        plan_volume(spec(capacity='5M', **options), actual(), {'users': users})


def test_a_shrink_below_the_allocation_is_refused_as_libvirt_would():
    with pytest.raises(ModuleFailure, match='below the space it already takes'):
        plan_volume(spec(capacity='1M', allow_shrink=True), actual(allocation=2 * MIB), NOBODY)
    shrunk = plan_volume(spec(capacity='5M', allow_shrink=True), actual(), NOBODY)
    assert shrunk.actions == [('resize', '10 MiB -> 5 MiB')]


def test_a_used_volume_is_not_deleted_and_the_message_names_the_domains():
    with pytest.raises(ModuleFailure) as failure:
        plan_volume(spec(state='absent'), actual(), {'users': {'domains': ['db1', 'web1']}})
    assert "in use by domains 'db1', 'web1'" in failure.value.msg
    assert failure.value.about == "volume 'a.qcow2' in pool 'pool'"
    assert plan_volume(spec(state='absent'), actual(), NOBODY).actions == [('delete', 'state: absent')]
    assert plan_volume(spec(state='absent'), None, {}).actions == []


def test_format_and_backing_are_not_changed_in_place():
    with pytest.raises(ModuleFailure, match='does not convert a volume in place'):
        plan_volume(spec(format='raw'), actual(), NOBODY)
    backing = {'path': '/var/lib/libvirt/images/pool/base.qcow2', 'format': 'qcow2', 'capacity': MIB}
    with pytest.raises(ModuleFailure, match='backed by nothing, backing asks for'):
        plan_volume(spec(backing={'volume': 'base.qcow2'}), actual(), dict(NOBODY, backing=backing))


def test_an_overlay_takes_the_capacity_of_its_backing_volume():
    backing = {'path': '/var/lib/libvirt/images/pool/base.qcow2', 'format': 'qcow2', 'capacity': 8 * MIB}
    created = plan_volume(spec(backing={'volume': 'base.qcow2'}), None, {'backing': backing})
    assert created.actions == [('create', 'qcow2, 8 MiB')]
    assert created.after['backing'] == {'path': backing['path'], 'format': 'qcow2'}


def test_import_then_grow_and_refuse_less_than_the_source():
    facts = {'source': source()}
    imported = plan_volume(spec(name='d.raw', src='/srv/disk.raw', capacity='48M'), None, facts)
    assert [name for name, _reason in imported.actions] == ['import', 'resize']
    assert imported.after['format'] == 'raw' and imported.after['capacity'] == 48 * MIB
    with pytest.raises(ModuleFailure, match='smaller than its source'):
        plan_volume(spec(name='d.raw', src='/srv/disk.raw', capacity='16M'), None, facts)
    with pytest.raises(ModuleFailure, match='imported as it is'):
        plan_volume(spec(name='d.raw', src='/srv/disk.raw', format='qcow2'), None, facts)
    with pytest.raises(ModuleFailure, match='has a backing file'):
        plan_volume(spec(name='d.raw', src='/srv/disk.raw'), None, {'source': source(backing_file='base.qcow2')})


def test_an_unchanged_source_is_not_imported_again_and_a_changed_one_is():
    item = spec(name='d.raw', src='/srv/disk.raw', capacity='48M')
    volume = actual(name='d.raw', format='raw', capacity=48 * MIB)
    stored = import_record(item, source())
    assert plan_volume(item, volume, dict(NOBODY, source=source(), stored=stored)).actions == []
    changed = source()
    changed['fingerprint'] = [dict(changed['fingerprint'][0], mtime_ns=5)]
    again = plan_volume(item, volume, dict(NOBODY, source=changed, stored=stored))
    assert [name for name, _reason in again.actions] == ['reimport', 'resize']
    assert again.differences[0] == 'src: source /srv/disk.raw changed since the last conversion (mtime_ns)'
    without_record = plan_volume(item, volume, dict(NOBODY, source=source(), stored=None))
    assert without_record.actions[0][0] == 'reimport'
    with pytest.raises(ModuleFailure, match="not imported again .* in use by domain 'web1'"):
        plan_volume(item, volume, {'users': {'domains': ['web1']}, 'source': changed, 'stored': stored})


def test_permissions_given_are_compared_and_set():
    changed = plan_volume(spec(permissions={'mode': '0640', 'group': '64055'}), actual(), NOBODY)
    assert changed.actions == [('permissions', 'group, mode')]
    assert changed.differences == ['permissions.group: 0 -> 64055', 'permissions.mode: 0600 -> 0640']
    assert summary(changed.after, spec(permissions={'mode': '0640'}))['permissions'] == {'mode': '0640'}
    assert plan_volume(spec(permissions={'mode': 0o600, 'owner': 'root'}), actual(), NOBODY).actions == []


@pytest.mark.parametrize('params, message', [
    ({'pool': 'p', 'volumes': [{'name': 'a'}, {'name': 'b', 'capacity': '1X'}]}, "volumes[1].capacity '1X' is not a size"),
    ({'pool': 'p', 'volumes': [{'name': 'a'}, {'name': 'a'}]}, "volume 'a' in pool 'p' appears twice"),
    ({'volumes': [{'name': 'a'}]}, 'volumes[0]: give pool and name'),
    ({'pool': 'p', 'name': 'a/b'}, "name: 'a/b' contains '/'"),
    ({'pool': 'p', 'name': 'a', 'src': 'disk.raw'}, "src: 'disk.raw' must be an absolute path"),
    ({'pool': 'p', 'volumes': [{'name': 'a', 'permissions': {'mode': '0999'}}]},
     "volumes[0].permissions.mode: '0999' is not an octal mode"),
    ({'pool': 'p', 'volumes': [{'name': 'a', 'permissions': {'owner': 'nobody-here-h3'}}]},
     "volumes[0].permissions.owner: 'nobody-here-h3' does not exist"),
    ({'pool': 'p', 'name': 'a', 'backing': {'path': '/x.qcow2'}, 'format': 'raw'},
     'format: a volume with a backing volume is a qcow2 overlay, not raw'),
    ({'pool': 'p', 'name': 'a', 'clone_from': {'volume': 'a'}}, 'clone_from: is the volume itself'),
    ({'pool': 'p', 'name': 'a', 'src': '/srv/a.raw', 'allocation': '1G'}, 'allocation: allocation does not apply'),
])
def test_bad_input_is_refused_naming_the_item(params, message):
    with pytest.raises(ModuleFailure) as failure:
        build_specs(params)
    assert failure.value.msg.startswith(message), failure.value.msg


def test_items_take_top_level_values_as_defaults():
    specs, batch = build_specs({'pool': 'p', 'state': 'present', 'permissions': {'mode': '0640'}, 'volumes': [
        {'name': 'a', 'capacity': '1G'}, {'name': 'b', 'pool': 'q', 'state': 'absent'}]})
    assert batch
    assert [(item.pool, item.name, item.state, item.capacity) for item in specs] == [
        ('p', 'a', 'present', 1 << 30), ('q', 'b', 'absent', None)]
    assert specs[0].permissions == {'mode': '0640'}
    assert build_specs({'pool': 'p', 'name': 'a', 'clone_from': {'volume': 'c'}})[0][0].clone_from == {
        'volume': 'c', 'pool': 'p'}
