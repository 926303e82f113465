# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_volume and libvirt_volume_info against libvirt's test driver (test:///default).

The test driver keeps its volumes for the life of the process, so the modules run in-process here
(each call a fresh AnsibleModule). It creates, clones and deletes volumes but cannot resize them or
hold files: imports and resizes run in tests/integration/test_libvirt_volume.py on qemu:///system.
"""

from __future__ import annotations

import itertools
import json

import libvirt  # requirements-dev.txt installs libvirt-python: a missing binding is a failure, not a skip
import pytest

from virtops_unitlib import patch_module_args

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import Result
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_manager import VolumeManager
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_options import build_specs
from ansible_collections.virtops.hypervisor.plugins.modules import libvirt_volume, libvirt_volume_info

URI = 'test:///default'
POOL = 'default-pool'
_names = itertools.count()


@pytest.fixture(scope='module')
def conn():
    """The test driver forgets its volumes when its last connection closes: hold one open."""
    connection = libvirt.open(URI)
    yield connection
    connection.close()


@pytest.fixture
def name(conn):
    """A volume name of its own for each test; the test's volumes (and domains) are removed afterwards."""
    prefix = 'virtops-vol-%d' % next(_names)
    yield prefix
    for dom in conn.listAllDomains(0):
        if dom.name().startswith(prefix):
            dom.undefine()
    pool = conn.storagePoolLookupByName(POOL)
    for vol in pool.listAllVolumes(0):
        if vol.name().startswith(prefix):
            vol.delete(0)


def run(module, args, capsys, check=False):
    with patch_module_args(dict(args, uri=URI, _ansible_check_mode=check, _ansible_diff=True)):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def four_ways(args, capsys):
    runs = [run(libvirt_volume, args, capsys, check) for check in (True, False, False, True)]
    assert [item['changed'] for item in runs] == [True, True, False, False], runs
    assert not any(item.get('failed') for item in runs), runs
    assert runs[0]['diff'] == runs[1]['diff'] and runs[2]['diff'] == runs[3]['diff']
    return runs


def volume_names(conn, prefix):
    return sorted(vol.name() for vol in conn.storagePoolLookupByName(POOL).listAllVolumes(0)
                  if vol.name().startswith(prefix))


def test_a_volume_is_created_once_and_check_mode_predicts_it(conn, name, capsys):
    runs = four_ways({'pool': POOL, 'name': name + '.qcow2', 'capacity': '1.5K'}, capsys)
    assert runs[0]['actions'] == runs[1]['actions'] == ['create']
    assert runs[1]['volume']['capacity'] == 2048 and runs[1]['volume']['format'] == 'qcow2'
    assert runs[0]['volume']['path'] == runs[1]['volume']['path'] == '/default-pool/%s.qcow2' % name
    assert volume_names(conn, name) == [name + '.qcow2']


def test_a_batch_makes_a_base_an_overlay_on_it_and_a_clone_of_it(conn, name, capsys):
    args = {'pool': POOL, 'volumes': [
        {'name': name + '-base', 'capacity': '8M', 'format': 'raw'},
        {'name': name + '-overlay', 'backing': {'volume': name + '-base'}},
        {'name': name + '-copy', 'clone_from': {'volume': name + '-base'}}]}
    runs = four_ways(args, capsys)
    assert [item['actions'] for item in runs[1]['volumes']] == [['create'], ['create'], ['clone']]
    overlay = runs[1]['volumes'][1]['volume']
    assert overlay['backing'] == {'path': '/default-pool/%s-base' % name, 'format': 'raw'}
    assert overlay['format'] == 'qcow2' and overlay['capacity'] == 8 << 20
    assert runs[1]['diff'][2]['after']['format'] == 'raw'
    refused = run(libvirt_volume, {'pool': POOL, 'name': name + '-base', 'state': 'absent'}, capsys)
    assert refused['failed'] and 'overlay volume %s/%s-overlay' % (POOL, name) in refused['msg'], refused


def test_bad_item_in_a_batch_changes_nothing(conn, name, capsys):
    # (Check mode takes a pool that does not exist as empty: test_check_mode_fresh_host.py.)
    for bad, message, modes in (
            ({'pool': 'no-such-pool'}, "volumes[1]: storage pool 'no-such-pool' does not exist", (False,)),
            ({}, 'volumes[1]: volume \'%s-b\' in pool \'%s\': capacity is needed' % (name, POOL), (True, False)),
            ({'src': '/srv/disk.raw'}, 'volumes[1]: src needs a pool whose volumes are files on this host',
             (True, False))):
        args = {'pool': POOL, 'volumes': [{'name': name + '-a', 'capacity': '1M'}, dict(bad, name=name + '-b')]}
        for check in modes:
            result = run(libvirt_volume, args, capsys, check)
            assert result['failed'] and not result['changed'], result
            assert message in result['msg'], result['msg']
    assert volume_names(conn, name) == []


def test_url_items_are_validated_before_anything_and_need_a_file_pool(conn, name, capsys):
    good = {'name': name + '-a', 'capacity': '1M'}
    for bad, message in (
            ({'url': 'http://127.0.0.1:9/x.qcow2'}, 'volumes[1].checksum: is required with url'),
            ({'url': 'http://127.0.0.1:9/x.qcow2', 'checksum': 'sha256:1'}, 'is not a sha256 checksum'),
            ({'url': 'http://127.0.0.1:9/x.qcow2', 'checksum': 'none', 'src': '/srv/x'}, 'are mutually exclusive'),
            ({'url': 'http://127.0.0.1:9/x.qcow2', 'checksum': 'none'}, 'volumes[1]: url needs a pool whose volumes')):
        args = {'pool': POOL, 'volumes': [good, dict(bad, name=name + '-b')]}
        for check in (True, False):
            result = run(libvirt_volume, args, capsys, check)
            assert result['failed'] and not result['changed'] and message in result['msg'], result
    assert volume_names(conn, name) == []


def test_a_volume_a_domain_uses_is_not_deleted_and_info_names_the_domain(conn, name, capsys):
    run(libvirt_volume, {'pool': POOL, 'name': name, 'capacity': '1M'}, capsys)
    conn.defineXML("<domain type='test'><name>%s-dom</name><memory>131072</memory><os><type>hvm</type></os>"
                   "<devices><disk type='file' device='disk'><source file='/default-pool/%s'/>"
                   "<target dev='vda' bus='virtio'/></disk></devices></domain>" % (name, name))
    for check in (True, False):
        refused = run(libvirt_volume, {'pool': POOL, 'name': name, 'state': 'absent'}, capsys, check)
        assert refused['failed'] and not refused['changed'], refused
        assert "in use by domain '%s-dom'" % name in refused['msg']
    info = run(libvirt_volume_info, {'pool': POOL, 'name': [name, name + '-missing']}, capsys)
    assert [(item['name'], item['domains']) for item in info['volumes']] == [(name, [name + '-dom'])]
    assert info['missing'] == [name + '-missing'] and info['inactive_pools'] == []
    conn.lookupByName(name + '-dom').undefine()
    four_ways({'pool': POOL, 'name': name, 'state': 'absent'}, capsys)


def test_a_format_change_of_an_existing_volume_is_refused(conn, name, capsys):
    run(libvirt_volume, {'pool': POOL, 'name': name, 'capacity': '1M', 'format': 'raw'}, capsys)
    refused = run(libvirt_volume, {'pool': POOL, 'name': name, 'format': 'qcow2'}, capsys)
    assert refused['failed'] and 'does not convert a volume in place' in refused['msg']
    assert refused['failed_object'] == "volume '%s' in pool '%s'" % (name, POOL)


class _RacedManager(VolumeManager):
    """Another run creates the volume after this run read it and before it acts."""

    def _act(self, item):
        self.conn.storagePoolLookupByName(POOL).createXML(
            "<volume><name>%s</name><capacity>1048576</capacity><target><format type='qcow2'/></target></volume>"
            % item.spec.name, 0)
        super(_RacedManager, self)._act(item)


def test_a_volume_another_run_creates_meanwhile_is_read_again_and_left_alone(conn, name):
    params = {'uri': URI, 'pool': POOL, 'name': name, 'capacity': '1M', 'state': 'present', 'allow_shrink': False}
    for key in ('format', 'allocation', 'backing', 'src', 'clone_from', 'permissions', 'volumes'):
        params[key] = None
    module = type('Module', (), {'params': params, 'check_mode': False})()
    result = Result(check_mode=False, diff_mode=True)
    _RacedManager(conn, module, result).converge(*build_specs(params))
    report = result.as_dict()
    assert not report['changed'] and report['actions'] == [], report
    assert report['volume']['capacity'] == 1 << 20
