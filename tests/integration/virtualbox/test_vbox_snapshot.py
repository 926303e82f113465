# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vbox_snapshot against a real VirtualBox 7.2 in the container, on powered-off VMs with a VDI disk.

Checked with VBoxManage itself: `snapshot list --machinereadable` (names, UUIDs, current) and the
medium attached to the VM (a restore puts a new differencing image on top of the snapshot's).
"""

from __future__ import annotations

import json
import re
import uuid

import pytest


@pytest.fixture
def make_vm(vbox):
    """Create powered-off VMs (SATA controller, a 16 MB VDI attached); unregister and delete them afterwards."""
    made = []

    def make():
        name = 'it-snap-%s' % uuid.uuid4().hex[:8]
        made.append(name)
        vbox.vboxmanage('createvm', '--name', name, '--ostype', 'Linux_64', '--register')
        vbox.vboxmanage('storagectl', name, '--name', 'SATA', '--add', 'sata')
        disk = '/root/%s.vdi' % name
        vbox.vboxmanage('createmedium', 'disk', '--filename', disk, '--size', '16', '--format', 'VDI')
        vbox.vboxmanage('storageattach', name, '--storagectl', 'SATA', '--port', '0', '--device', '0',
                        '--type', 'hdd', '--medium', disk)
        return name
    yield make
    for name in made:
        vbox.vboxmanage('unregistervm', name, '--delete', check=False)


def snap(vbox, args, check=False):
    return vbox.run_module('vbox_snapshot', args, check=check)


def tree(vbox, vm):
    """[(name, uuid, depth)] in VBoxManage's order and the current snapshot's UUID."""
    info = vbox.machinereadable(vm)
    nodes = []
    for key, value in info.items():
        match = re.match(r'^SnapshotName((?:-\d+)*)$', key)
        if match:
            nodes.append((value, info['SnapshotUUID' + match.group(1)], match.group(1).count('-')))
    return nodes, info.get('CurrentSnapshotUUID')


def medium(vbox, vm):
    return vbox.machinereadable(vm)['SATA-ImageUUID-0-0']


def host_state(vbox, vm):
    return tree(vbox, vm), medium(vbox, vm)


def three_ways(vbox, args, actions):
    """Check run (change reported, nothing changed), real run (the predicted tree), rerun and check rerun
    (no change)."""
    before = host_state(vbox, args['vm'])
    check = snap(vbox, args, check=True)
    assert check['changed'] is True and check['actions'] == actions, check
    assert host_state(vbox, args['vm']) == before, 'check mode changed the VM'
    real = snap(vbox, args)
    assert real['changed'] is True and real['actions'] == actions, real
    predicted = check['diff']['after']
    if real['snapshot'] and real['snapshot']['uuid']:
        predicted = predicted.replace('(new)', real['snapshot']['uuid'])
    assert real['diff']['after'] == predicted, 'check mode predicted the snapshot tree'
    assert real['diff']['before'] == check['diff']['before']
    again = snap(vbox, args)
    assert again['changed'] is False and again['actions'] == [], again
    assert again['diff']['before'] == again['diff']['after'] == real['diff']['after']
    assert snap(vbox, args, check=True)['changed'] is False
    return real


def test_take_twice_idempotent_with_check_and_diff(vbox, make_vm):
    vm = make_vm()
    first = three_ways(vbox, {'vm': vm, 'name': 'base', 'description': 'clean install'}, ['take'])
    nodes, current = tree(vbox, vm)
    assert [(n, d) for n, _u, d in nodes] == [('base', 0)] and current == first['snapshot']['uuid']
    assert first['snapshot'] == {'name': 'base', 'uuid': current, 'description': 'clean install', 'parent': None,
                                 'children': [], 'current': True}
    assert first['current'] == 'base' and first['vm_state'] == 'poweroff'
    assert first['diff']['before'] == '# VM state: poweroff\n'
    assert first['diff']['after'] == '# VM state: poweroff\nbase (%s) "clean install" [current]\n' % current

    second = three_ways(vbox, {'vm': vm, 'name': 'app'}, ['take'])
    nodes, current = tree(vbox, vm)
    assert [(n, d) for n, _u, d in nodes] == [('base', 0), ('app', 1)] and current == second['snapshot']['uuid']
    assert second['snapshot']['parent'] == 'base' and second['current'] == 'app'
    assert [item['name'] for item in second['snapshots']] == ['base', 'app']
    assert second['snapshots'][0]['children'] == ['app'] and not second['snapshots'][0]['current']
    # by UUID, an existing snapshot is found too
    assert snap(vbox, {'vm': vm, 'name': '{%s}' % current})['changed'] is False


def test_restore_first_snapshot_discards_disk_state(vbox, make_vm):
    vm = make_vm()
    base = snap(vbox, {'vm': vm, 'name': 'base'})['snapshot']['uuid']
    snap(vbox, {'vm': vm, 'name': 'app'})
    disk_before = medium(vbox, vm)
    state_before = host_state(vbox, vm)
    args = {'vm': vm, 'name': 'base', 'state': 'restored'}

    check = snap(vbox, args, check=True)
    assert check['changed'] is True and check['actions'] == ['restore'] and check['current'] == 'base', check
    assert host_state(vbox, vm) == state_before, 'check mode changed the VM'

    real = snap(vbox, args)
    assert real['changed'] is True and real['current'] == 'base' and real['vm_state'] == 'poweroff', real
    assert real['diff']['after'] == check['diff']['after']
    nodes, current = tree(vbox, vm)
    assert current == base and [n for n, _u, _d in nodes] == ['base', 'app']
    # the VM now writes to a new, empty differencing image on top of the snapshot's disk state
    disk_after = medium(vbox, vm)
    assert disk_after != disk_before
    info = vbox.vboxmanage('showmediuminfo', 'disk', disk_after).stdout
    assert re.search(r'^Parent UUID:\s+[0-9a-f-]{36}$', info, re.MULTILINE), info
    assert 'Snapshots/' in vbox.machinereadable(vm)['SATA-0-0']

    # a restore discards the current state, so it is done (and reported) whenever asked
    again = snap(vbox, args)
    assert again['changed'] is True and medium(vbox, vm) != disk_after
    # a snapshot taken now is a second child of base
    taken = snap(vbox, {'vm': vm, 'name': 'fix'})
    assert taken['snapshots'][0]['children'] == ['app', 'fix']


def test_delete_merges_and_moves_current(vbox, make_vm):
    vm = make_vm()
    base = snap(vbox, {'vm': vm, 'name': 'base'})['snapshot']['uuid']
    snap(vbox, {'vm': vm, 'name': 'app'})
    # deleting the current snapshot makes its parent current
    real = three_ways(vbox, {'vm': vm, 'name': 'app', 'state': 'absent'}, ['delete'])
    assert real['snapshot'] is None and real['current'] == 'base'
    nodes, current = tree(vbox, vm)
    assert [n for n, _u, _d in nodes] == ['base'] and current == base

    # a snapshot with one child is merged into it; the child becomes the root
    child = snap(vbox, {'vm': vm, 'name': 'child'})['snapshot']['uuid']
    real = three_ways(vbox, {'vm': vm, 'name': 'base', 'state': 'absent'}, ['delete'])
    nodes, current = tree(vbox, vm)
    assert nodes == [('child', child, 0)] and current == child
    assert real['snapshots'] == [{'name': 'child', 'uuid': child, 'description': '', 'parent': None,
                                  'children': [], 'current': True}]


def test_delete_reparents_the_only_child_last(vbox, make_vm):
    """a -> (b -> c, d): deleting b makes c the last child of a; check mode predicts that order."""
    vm = make_vm()
    for name in ('a', 'b', 'c'):
        snap(vbox, {'vm': vm, 'name': name})
    snap(vbox, {'vm': vm, 'name': 'a', 'state': 'restored'})
    snap(vbox, {'vm': vm, 'name': 'd'})
    real = three_ways(vbox, {'vm': vm, 'name': 'b', 'state': 'absent'}, ['delete'])
    assert [(n, d) for n, _u, d in tree(vbox, vm)[0]] == [('a', 0), ('d', 1), ('c', 1)]
    assert real['snapshots'][0]['children'] == ['d', 'c'] and real['current'] == 'd'


def test_delete_refused_with_two_children_or_current_with_child(vbox, make_vm):
    vm = make_vm()
    snap(vbox, {'vm': vm, 'name': 'a'})
    snap(vbox, {'vm': vm, 'name': 'b'})
    snap(vbox, {'vm': vm, 'name': 'a', 'state': 'restored'})
    snap(vbox, {'vm': vm, 'name': 'c'})
    before = host_state(vbox, vm)
    for check in (True, False):
        result = snap(vbox, {'vm': vm, 'name': 'a', 'state': 'absent'}, check=check)
        assert result.get('failed') is True, result
        assert "cannot delete snapshot 'a'" in result['msg'] and "2 child snapshots ('b', 'c')" in result['msg']
    assert host_state(vbox, vm) == before

    snap(vbox, {'vm': vm, 'name': 'c', 'state': 'absent'})
    snap(vbox, {'vm': vm, 'name': 'a', 'state': 'restored'})  # a is current and has the child b
    result = snap(vbox, {'vm': vm, 'name': 'a', 'state': 'absent'}, check=True)
    assert result.get('failed') is True and "current snapshot and has a child snapshot ('b')" in result['msg']


def test_existing_snapshot_with_other_description_is_reported_not_changed(vbox, make_vm):
    vm = make_vm()
    snap(vbox, {'vm': vm, 'name': 'base', 'description': 'first\nline two'})
    for check in (True, False):
        result = snap(vbox, {'vm': vm, 'name': 'base', 'description': 'other'}, check=check)
        assert result['changed'] is False and result['differences'] == ["description is 'first\nline two'"], result
        assert "snapshot 'base' of VM '%s' exists and differs" % vm in json.dumps(result['warnings'])
        assert result['snapshot']['description'] == 'first\nline two'
        assert result['diff']['after'].endswith('base (%s) "first\\nline two" [current]\n'
                                                % result['snapshot']['uuid'])
    # no description asked: nothing to compare
    assert snap(vbox, {'vm': vm, 'name': 'base'})['differences'] == []


def test_live_on_a_powered_off_vm_takes_a_normal_snapshot(vbox, make_vm):
    """VBoxManage refuses --live for a VM that is not running; the module only passes it for a running VM."""
    vm = make_vm()
    refused = vbox.vboxmanage('snapshot', vm, 'take', 'raw', '--live', check=False)
    assert refused.returncode != 0 and 'unless it is running' in refused.stderr
    real = three_ways(vbox, {'vm': vm, 'name': 'live', 'live': True}, ['take'])
    assert real['snapshot']['name'] == 'live' and real['vm_state'] == 'poweroff'


def test_duplicate_names_need_the_uuid(vbox, make_vm):
    vm = make_vm()
    vbox.vboxmanage('snapshot', vm, 'take', 'dup')
    vbox.vboxmanage('snapshot', vm, 'take', 'dup')
    (first, _u1, _d1), (second, _u2, _d2) = tree(vbox, vm)[0]
    uuids = [u for _n, u, _d in tree(vbox, vm)[0]]
    for state in ('present', 'absent', 'restored'):
        result = snap(vbox, {'vm': vm, 'name': 'dup', 'state': state})
        assert result.get('failed') is True, result
        assert "has 2 snapshots named 'dup'" in result['msg'] and all(u in result['msg'] for u in uuids)
    real = three_ways(vbox, {'vm': vm, 'name': uuids[0], 'state': 'absent'}, ['delete'])
    assert [u for _n, u, _d in tree(vbox, vm)[0]] == [uuids[1]]
    assert real['snapshots'][0]['uuid'] == uuids[1]
    assert snap(vbox, {'vm': vm, 'name': 'dup', 'state': 'restored'})['changed'] is True


def test_missing_vm_fails_naming_it(vbox):
    for state in ('present', 'absent', 'restored'):
        result = snap(vbox, {'vm': 'it-snap-no-such-vm', 'name': 'x', 'state': state})
        assert result.get('failed') is True
        assert "VM 'it-snap-no-such-vm' is not registered with VirtualBox" in result['msg']


def test_bad_input_changes_nothing(vbox, make_vm):
    vm = make_vm()
    snap(vbox, {'vm': vm, 'name': 'base'})
    before = host_state(vbox, vm)
    cases = [
        ({'name': ''}, 'name must not be empty'),
        ({'name': 'x', 'state': 'reverted'}, 'value of state must be one of'),
        ({'name': 'base', 'state': 'absent', 'live': True}, 'live applies to state present only'),
        ({'name': 'base', 'state': 'restored', 'description': 'x'}, 'description applies to state present only'),
        ({'name': 'nope', 'state': 'restored'}, "has no snapshot 'nope' to restore (its snapshots: 'base')"),
        ({'name': str(uuid.uuid4())}, 'looks like a UUID'),
    ]
    for args, message in cases:
        result = snap(vbox, dict(args, vm=vm))
        assert result.get('failed') is True and message in result['msg'], (args, result)
    assert host_state(vbox, vm) == before
    # deleting a snapshot that does not exist (by name or UUID) changes nothing
    for name in ('nope', str(uuid.uuid4())):
        result = snap(vbox, {'vm': vm, 'name': name, 'state': 'absent'})
        assert result['changed'] is False and result['snapshot'] is None and result['current'] == 'base'


def test_vboxmanage_failure_names_the_command(vbox, make_vm):
    """The VM's snapshot folder replaced by a file: VirtualBox's own error comes through, and VirtualBox
    rolls the failed take back."""
    vm = make_vm()
    snap(vbox, {'vm': vm, 'name': 'base'})
    before = tree(vbox, vm)
    info = vbox.machinereadable(vm)
    folder = info['SnapFldr']
    vbox.exec(['sh', '-c', 'mv "%s" "%s.away" && touch "%s"' % (folder, folder, folder)], check=True)
    try:
        result = snap(vbox, {'vm': vm, 'name': 'next'})
    finally:
        vbox.exec(['sh', '-c', 'rm -f "%s" && mv "%s.away" "%s"' % (folder, folder, folder)], check=True)
    assert result.get('failed') is True, result
    assert tree(vbox, vm) == before
    assert 'VERR_PATH_NOT_FOUND' in result['msg']
    assert result['msg'].startswith("cannot take snapshot 'next' of VM '%s': VBoxManage snapshot %s take next failed: "
                                    % (vm, vm)), result['msg']
