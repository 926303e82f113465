# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_pool and libvirt_pool_info against libvirt's test driver (test:///default).

The test driver keeps its pools for the life of the process, so the modules run in-process (each call
a fresh AnsibleModule). It does not touch the host's storage, so the dir pools here point at existing
temporary directories; builds on real devices are covered by tests/integration/host.
"""

from __future__ import annotations

import itertools
import os
import stat

import libvirt  # requirements-dev.txt installs libvirt-python: a missing binding is a failure, not a skip
import pytest

from virtops_unitlib import on_test_driver  # noqa: E402

from ansible_collections.virtops.hypervisor.plugins.module_utils import _pool  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import Result  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._pool_options import build_specs  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.module_utils._pool_storage import HostStorage  # noqa: E402
from ansible_collections.virtops.hypervisor.plugins.modules import libvirt_pool, libvirt_pool_info  # noqa: E402

URI = 'test:///default'
_names = itertools.count()


# The test driver forgets what the tests made when its last connection closes: the fixture holds one open.
pytestmark = pytest.mark.usefixtures('libvirt_test_conn')


@pytest.fixture
def pool(capsys):
    return on_test_driver(libvirt_pool, capsys)


@pytest.fixture
def info(capsys):
    return on_test_driver(libvirt_pool_info, capsys)


@pytest.fixture
def name():
    return 'unit-pool-%d' % next(_names)


@pytest.fixture
def target(tmp_path):
    path = tmp_path / 'pool'
    path.mkdir(mode=0o755)
    os.chmod(str(path), 0o755)
    return str(path)


def lookup(name):
    try:
        return libvirt.open(URI).storagePoolLookupByName(name)
    except libvirt.libvirtError:
        return None


def four_ways(pool, args):
    """check, real, rerun, check rerun: the first two change, the last two do not; returns the real run."""
    check = pool(args, check=True)
    real = pool(args)
    rerun = pool(args)
    check_rerun = pool(args, check=True)
    assert not any(result.get('failed') for result in (check, real, rerun, check_rerun)), (check, real)
    assert (check['changed'], real['changed'], rerun['changed'], check_rerun['changed']) == (True, True, False, False)
    assert check['actions'] == real['actions']
    assert check['differences'] == real['differences']
    assert check['diff'] == real['diff']
    return real


def test_a_new_dir_pool_is_defined_started_and_autostarted_four_ways(pool, name, target):
    real = four_ways(pool, {'name': name, 'type': 'dir', 'target': target, 'autostart': True})
    assert real['actions'] == ['define', 'start', 'autostart']
    assert real['state'] == 'active' and real['autostart'] is True and real['restart_required'] is False
    found = lookup(name)
    assert found.isActive() and found.autostart() and found.isPersistent()
    assert 'state: active\nautostart: true\ntype: dir\ntarget: %s\n' % target == real['diff']['after']


def test_permissions_are_stored_and_set_on_the_existing_directory(pool, name, target):
    args = {'name': name, 'type': 'dir', 'target': target,
            'permissions': {'mode': '750', 'owner': 'root', 'group': '0'}}
    real = four_ways(pool, args)
    assert real['actions'] == ['define', 'set permissions', 'start']
    assert 'permissions.mode: 0755 -> 0750 (directory)' in real['differences']
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o750
    xml = lookup(name).XMLDesc(0)
    assert '<mode>0750</mode>' in xml and '<owner>0</owner>' in xml and '<group>0</group>' in xml


def test_a_mode_yaml_read_as_a_number_is_refused_naming_the_option(pool, name, target):
    result = pool({'pools': [{'name': name, 'type': 'dir', 'target': target, 'permissions': {'mode': 493}}]})
    assert result['failed'] and result['changed'] is False
    assert result['msg'].startswith('pools[0].permissions.mode: give the mode as a quoted string')
    assert lookup(name) is None


def test_a_bad_item_in_a_batch_changes_nothing(pool, name, target):
    result = pool({'pools': [{'name': name, 'type': 'dir', 'target': target},
                             {'name': name + '-b', 'type': 'fs', 'target': target + '-b',
                              'source': {'devices': ['/dev/a', '/dev/b']}}]})
    assert result['failed'] and result['changed'] is False
    assert result['msg'] == 'pools[1].source.devices: an fs pool has one device, not 2'
    assert lookup(name) is None


def test_a_refusal_found_on_the_host_also_changes_nothing_in_a_batch(pool, name, target):
    result = pool({'pools': [{'name': name, 'type': 'dir', 'target': target},
                             {'name': name + '-b', 'type': 'fs', 'target': target + '-b',
                              'source': {'devices': ['/dev/virtops-no-such-device'], 'format': 'ext4'}}]})
    assert result['failed'] and result['changed'] is False
    assert result['msg'] == ("pools[1].source.devices[0]: device /dev/virtops-no-such-device of pool '%s-b' does not "
                             "exist" % name)
    assert result['failed_object'] == "pool '%s-b'" % name
    assert lookup(name) is None


def test_batch_items_take_the_top_level_state(pool, name, target, tmp_path):
    other = str(tmp_path)
    args = {'state': 'inactive', 'pools': [{'name': name, 'type': 'dir', 'target': target},
                                           {'name': name + '-b', 'type': 'dir', 'target': other, 'state': 'active'}]}
    real = four_ways(pool, args)
    assert [item['state'] for item in real['pools']] == ['inactive', 'active']
    assert [item['actions'] for item in real['pools']] == [['define'], ['define', 'start']]
    assert isinstance(real['diff'], list) and len(real['diff']) == 2


def test_a_changed_target_of_a_running_pool_waits_for_a_restart_and_keeps_the_uuid(pool, name, target, tmp_path):
    pool({'name': name, 'type': 'dir', 'target': target})
    uuid = lookup(name).UUIDString()
    moved = str(tmp_path)
    changed = pool({'name': name, 'type': 'dir', 'target': moved})
    assert changed['changed'] and changed['actions'] == ['define']
    assert changed['restart_required'] is True
    assert changed['restart_reasons'] == ['target: %s -> %s' % (target, moved)]
    assert lookup(name).UUIDString() == uuid
    # The test driver never applies a running pool's new definition (it keeps the old one across a restart),
    # so the restart and the reruns are tested on qemu:///system in tests/integration/host.
    restarted = pool({'name': name, 'type': 'dir', 'target': moved, 'apply': 'restart'}, check=True)
    assert restarted['actions'][-2:] == ['destroy', 'start'] and restarted['restart_required'] is False


def test_the_type_of_an_existing_pool_cannot_change(pool, name, target):
    pool({'name': name, 'type': 'dir', 'target': target})
    result = pool({'name': name, 'type': 'netfs', 'target': target, 'source': {'host': 'nas', 'dir': '/x'}})
    assert result['failed'] and result['changed'] is False
    assert 'exists with type dir, not netfs' in result['msg']


def test_a_full_xml_is_compared_semantically(pool, name, target):
    xml = """<pool type='dir'>
                <name>%s</name>
                <target>  <path>%s//</path> </target>
             </pool>""" % (name, target)
    four_ways(pool, {'xml': xml})
    assert pool({'xml': xml.replace("type='dir'", "type='dir' ")})['changed'] is False


def test_delete_refuses_a_pool_with_volumes_unless_forced(pool, name, target):
    pool({'name': name, 'type': 'dir', 'target': target})
    lookup(name).createXML('<volume><name>disk.img</name><capacity>1024</capacity></volume>', 0)
    refused = pool({'name': name, 'state': 'absent', 'delete': True})
    assert refused['failed'] and refused['changed'] is False and refused['volumes'] == ['disk.img']
    assert "still has volumes (disk.img)" in refused['msg']
    assert lookup(name).isActive()
    forced = pool({'name': name, 'state': 'absent', 'delete': True, 'force': True}, check=True)
    assert forced['actions'] == ['delete volume disk.img', 'destroy', 'delete', 'undefine']
    forced = pool({'name': name, 'state': 'absent', 'delete': True, 'force': True})
    assert forced['actions'] == ['delete volume disk.img', 'destroy', 'delete', 'undefine']
    assert forced['deleted_volumes'] == ['disk.img'] and forced['state'] == 'absent'
    assert lookup(name) is None
    assert pool({'name': name, 'state': 'absent', 'delete': True})['changed'] is False


def test_absent_stops_and_undefines_four_ways(pool, name, target):
    pool({'name': name, 'type': 'dir', 'target': target})
    real = four_ways(pool, {'name': name, 'state': 'absent'})
    assert real['actions'] == ['destroy', 'undefine'] and real['diff']['after'] == ''
    assert lookup(name) is None


def test_a_missing_pool_without_a_definition_is_refused(pool, name):
    result = pool({'name': name, 'state': 'inactive'})
    assert result['failed'] and "does not exist: give type, target and source (or xml)" in result['msg']


def test_info_lists_pools_with_sizes_and_volumes(pool, info, name, target):
    pool({'name': name, 'type': 'dir', 'target': target})
    lookup(name).createXML('<volume><name>a.img</name><capacity>2048</capacity></volume>', 0)
    facts = info(name=[name, 'virtops-none'], details=True)
    assert facts['changed'] is False and facts['missing'] == ['virtops-none']
    (found,) = facts['pools']
    assert (found['name'], found['type'], found['state'], found['target']) == (name, 'dir', 'active', target)
    assert found['capacity'] > 0 and found['available'] > 0
    assert found['volumes'] == [{'name': 'a.img', 'path': '%s/a.img' % target, 'capacity': 2048,
                                 'allocation': 2048, 'format': 'raw'}]
    assert info(name=[name])['pools'][0]['volumes'] == ['a.img']


def test_a_pool_another_run_defines_and_starts_meanwhile_is_converged_on_a_new_reading(name, target, monkeypatch):
    """The other run acts between this run's reading and its define: the define fails (another UUID), the
    pool is read again, and only what still differs (autostart) is done."""

    connection = libvirt.open(URI)
    define = _pool.PoolManager._define

    def define_after_the_other_run(manager, spec, xml):
        other = connection.storagePoolDefineXML(xml, 0)
        other.create(0)
        monkeypatch.setattr(_pool.PoolManager, '_define', define)
        define(manager, spec, xml)
    monkeypatch.setattr(_pool.PoolManager, '_define', define_after_the_other_run)
    specs, batch = build_specs({'name': name, 'type': 'dir', 'target': target, 'autostart': True, 'state': 'active'})
    result = Result()
    _pool.PoolManager(connection, HostStorage(None), result).converge(specs, batch)
    assert result.actions == ['autostart']
    assert lookup(name).isActive() and lookup(name).autostart()


def test_a_remote_libvirt_gets_no_probes_no_builds_and_no_blind_delete(name, tmp_path):
    """PoolManager without HostStorage is what converge_module makes for a uri naming another host."""
    connection = libvirt.open(URI)
    missing = str(tmp_path / 'not-here')
    result = Result()
    _pool.PoolManager(connection, None, result).converge(*build_specs(
        {'name': name, 'type': 'dir', 'target': missing, 'state': 'inactive'}))
    assert result.actions == ['define'] and not os.path.exists(missing)
    specs = build_specs({'name': name, 'state': 'absent', 'delete': True})
    with pytest.raises(_pool.ModuleFailure, match='its volumes cannot be listed before delete: true removes them'):
        _pool.PoolManager(connection, None, Result()).converge(*specs)
    assert lookup(name) is not None
