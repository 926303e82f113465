# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_snapshot and libvirt_snapshot_info on qemu:///system with a real guest on a qcow2 disk.

Checked on the host with `virsh snapshot-*` and `qemu-img snapshot -l` (-U: the running guest holds
the image lock).
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from virtops_testlib import PREFIX, failed_messages, run_module, run_playbook, virsh, wait_for_console

IMAGES = '/var/lib/libvirt/images'


def snapshot(args, check=False):
    return run_module('libvirt_snapshot', args, check=check)


def snapshot_names(domain):
    return virsh('snapshot-list', '--name', domain).split()


def image_tags(path):
    listing = subprocess.run(['qemu-img', 'snapshot', '-l', '-U', path], capture_output=True, text=True,
                             check=True).stdout
    return [line.split()[1] for line in listing.splitlines()[2:] if line.strip()]


@pytest.fixture
def disk_guest(domain, guest):
    """A guest on a blank qcow2 data disk (internal snapshots live in qcow2 images)."""
    path = '%s/%s.qcow2' % (IMAGES, guest.name)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, '32M'], check=True)

    def define(state='running', **extra):
        result = domain(dict(guest(disks=[{'path': path}], **extra), state=state))
        assert result.get('failed') is not True, result
        if state == 'running':
            wait_for_console(guest.name)
        return guest.name
    define.path = path
    yield define
    domain({'name': guest.name, 'state': 'absent'})
    for leftover in (path, '%s/%s-overlay.qcow2' % (IMAGES, guest.name)):
        if os.path.exists(leftover):
            os.remove(leftover)


def at_once(*calls):
    """Run libvirt_snapshot calls at the same time, each in its own module process; their results in order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(snapshot, calls))


def three_ways(args, actions):
    before = snapshot_names(args['domain']), virsh('domstate', args['domain'])
    check = snapshot(args, check=True)
    assert check['changed'] is True and check['actions'] == actions, check
    assert (snapshot_names(args['domain']), virsh('domstate', args['domain'])) == before, 'check mode changed the host'
    real = snapshot(args)
    assert real['changed'] is True and real['actions'] == actions, real
    if real.get('snapshot'):
        predicted = check['diff']['after'].replace('(now)', real['snapshot']['created'])
        assert real['diff']['after'] == predicted, 'check mode predicted the snapshot tree'
    again = snapshot(args)
    assert again['changed'] is False, again
    assert snapshot(args, check=True)['changed'] is False
    return real


def test_live_snapshot_with_memory_then_revert_back_to_running(disk_guest, domain):
    name = disk_guest()
    taken = three_ways({'domain': name, 'name': 'live', 'description': 'with memory'}, ['create'])
    assert taken['snapshot']['memory'] == 'internal' and taken['snapshot']['state'] == 'running'
    assert snapshot_names(name) == ['live'] and image_tags(disk_guest.path) == ['live']
    assert virsh('snapshot-current', '--name', name) == 'live'

    domain({'name': name, 'state': 'destroyed'})
    revert = {'domain': name, 'name': 'live', 'state': 'reverted'}
    check = snapshot(revert, check=True)
    assert check['changed'] is True and check['domain_state'] == 'running'
    assert virsh('domstate', name) == 'shut off', 'check mode must not revert'
    reverted = snapshot(revert)
    assert reverted['changed'] is True and reverted['domain_state'] == 'running'
    assert virsh('domstate', name) == 'running', 'the memory state was restored: the guest runs on'
    assert snapshot(revert)['changed'] is True, 'a revert always discards changes, so it always reports one'


def test_offline_snapshot_reverts_to_shut_off(disk_guest, domain):
    name = disk_guest(state='present')
    taken = three_ways({'domain': name, 'name': 'cold'}, ['create'])
    assert taken['snapshot']['state'] == 'shutoff' and taken['snapshot']['memory'] == 'no'
    assert image_tags(disk_guest.path) == ['cold']
    domain({'name': name, 'state': 'running'})
    wait_for_console(name)
    reverted = snapshot({'domain': name, 'name': 'cold', 'state': 'reverted'})
    assert reverted['domain_state'] == 'shutoff' and virsh('domstate', name) == 'shut off'
    paused = snapshot({'domain': name, 'name': 'cold', 'state': 'reverted', 'after_revert': 'paused'})
    assert paused['domain_state'] == 'paused' and virsh('domstate', name) == 'paused'


def test_delete_refuses_children_unless_asked(disk_guest):
    name = disk_guest(state='present')
    for item in ('base', 'child', 'grandchild'):
        snapshot({'domain': name, 'name': item})
    refused = snapshot({'domain': name, 'name': 'base', 'state': 'absent'})
    assert refused['failed'] is True
    assert refused['msg'] == ("snapshot 'base' of domain '%s' has child snapshots (child, grandchild): set "
                              "children: true to delete them with it, or children_only: true to delete only "
                              "them" % name)
    assert snapshot_names(name) == ['base', 'child', 'grandchild']

    only = three_ways({'domain': name, 'name': 'base', 'state': 'absent', 'children_only': True}, ['delete'])
    assert only['removed'] == ['child', 'grandchild'] and snapshot_names(name) == ['base']
    assert image_tags(disk_guest.path) == ['base']

    snapshot({'domain': name, 'name': 'child'})
    gone = three_ways({'domain': name, 'name': 'base', 'state': 'absent', 'children': True}, ['delete'])
    assert gone['removed'] == ['base', 'child'] and snapshot_names(name) == []
    assert image_tags(disk_guest.path) == []


def test_retain_keeps_the_newest(disk_guest):
    name = disk_guest(state='present')
    keep = {'domain': name, 'retain': 2, 'retain_prefix': 'pre-'}
    snapshot({'domain': name, 'name': 'manual'})
    for index in range(1, 4):
        snapshot(dict(keep, name='pre-%d' % index))
    assert snapshot_names(name) == ['manual', 'pre-2', 'pre-3']
    check = snapshot(dict(keep, name='pre-4'), check=True)
    assert check['actions'] == ['create', 'retain'] and check['removed'] == ['pre-2']
    assert snapshot_names(name) == ['manual', 'pre-2', 'pre-3']
    real = snapshot(dict(keep, name='pre-4'))
    assert real['removed'] == ['pre-2'] and snapshot_names(name) == ['manual', 'pre-3', 'pre-4']
    assert image_tags(disk_guest.path) == ['manual', 'pre-3', 'pre-4']
    assert snapshot(dict(keep, name='pre-4'))['changed'] is False


def test_two_runs_taking_and_then_deleting_the_same_snapshot_at_once_both_succeed(disk_guest):
    name = disk_guest()  # running: a live snapshot with memory takes a second, so the two runs overlap
    snapshot({'domain': name, 'name': 'shared-1'})
    take = {'domain': name, 'name': 'shared-2', 'description': 'taken twice', 'retain': 1, 'retain_prefix': 'shared-'}
    taken = at_once(take, take)
    assert [result.get('failed', False) for result in taken] == [False, False], taken
    actions = sorted(action for result in taken for action in result['actions'])
    assert actions == ['create', 'retain'], 'one run took the snapshot and one deleted the older one: %s' % taken
    assert sorted(gone for result in taken for gone in result['removed']) == ['shared-1']
    assert [result['snapshot']['name'] for result in taken] == ['shared-2', 'shared-2']
    assert [result['differences'] for result in taken] == [[], []]
    assert snapshot_names(name) == ['shared-2'] and image_tags(disk_guest.path) == ['shared-2']

    delete = {'domain': name, 'name': 'shared-2', 'state': 'absent'}
    deleted = at_once(delete, delete)
    assert [result.get('failed', False) for result in deleted] == [False, False], deleted
    assert sorted(result['changed'] for result in deleted) == [False, True], deleted
    assert [result['snapshot'] for result in deleted] == [None, None]
    assert snapshot_names(name) == [] and image_tags(disk_guest.path) == []
    assert virsh('domstate', name) == 'running'


def test_existing_snapshot_with_other_settings_is_reported_not_changed(disk_guest):
    name = disk_guest(state='present')
    snapshot({'domain': name, 'name': 'base', 'description': 'first'})
    again = snapshot({'domain': name, 'name': 'base', 'description': 'second'})
    assert again['changed'] is False and again['differences'] == ["description is 'first'"]
    assert "exists and differs from what was asked (description is 'first')" in str(again['warnings'])
    assert run_module('libvirt_snapshot_info', {'domain': name})['snapshots'][0]['description'] == 'first'


def test_raw_disk_needs_disk_only_and_external_overlays_work(conn, domain, guest):
    raw = '%s/%s.raw' % (IMAGES, guest.name)
    overlay = '%s/%s-overlay.qcow2' % (IMAGES, guest.name)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', raw, '16M'], check=True)
    try:
        domain(guest(disks=[{'path': raw}]))
        refused = snapshot({'domain': guest.name, 'name': 'internal'})
        assert refused['failed'] is True
        assert refused['msg'].startswith("disk vda of domain '%s' (%s) is raw: internal snapshots need qcow2 disks. "
                                         "Set disk_only: true" % (guest.name, raw))
        assert refused['changed'] is False and refused['actions'] == []
        assert snapshot_names(guest.name) == []

        external = {'domain': guest.name, 'name': 'external', 'disk_only': True,
                    'disks': [{'name': 'vda', 'file': overlay}]}
        taken = three_ways(external, ['create'])
        assert taken['snapshot']['disk_only'] is True
        assert taken['snapshot']['disks'] == [{'name': 'vda', 'snapshot': 'external', 'file': overlay}]
        assert os.path.exists(overlay) and virsh('domblklist', guest.name).split()[-1] == overlay
        revert = snapshot({'domain': guest.name, 'name': 'external', 'state': 'reverted'})
        if conn.getLibVersion() < 9007000:  # libvirt reverts to external snapshots from 9.7 on
            assert revert['msg'].startswith("cannot revert domain '%s' to snapshot 'external': " % guest.name)
            assert revert['changed'] is False and revert['actions'] == [], 'a revert libvirt refused changed nothing'
        else:
            assert revert['changed'] is True and revert['actions'] == ['revert']
        metadata = snapshot({'domain': guest.name, 'name': 'external', 'state': 'absent', 'metadata_only': True})
        assert metadata['changed'] is True and snapshot_names(guest.name) == []
    finally:
        domain({'name': guest.name, 'state': 'absent'})
        for path in (raw, overlay):
            if os.path.exists(path):
                os.remove(path)


def test_quiesce_without_guest_agent_fails_clearly(disk_guest):
    name = disk_guest()
    result = snapshot({'domain': name, 'name': 'frozen', 'disk_only': True, 'quiesce': True})
    assert result['failed'] is True
    assert result['msg'].startswith("cannot quiesce domain '%s': " % name), result['msg']
    assert 'QEMU guest agent' in result['msg']
    assert result['changed'] is False and result['actions'] == [], 'a snapshot libvirt refused changed nothing'
    assert snapshot_names(name) == []


@pytest.mark.parametrize('args, message', [
    ({'domain': PREFIX + 'nowhere', 'name': 's'}, "domain '%snowhere' does not exist at qemu:///system" % PREFIX),
    ({'domain': PREFIX + 'nowhere', 'name': 's', 'retain': 0, 'retain_prefix': 's'},
     'retain must be 1 or more, and works with state present only'),
    ({'domain': PREFIX + 'nowhere', 'name': 'x', 'retain': 2, 'retain_prefix': 'pre-'},
     "name 'x' does not start with retain_prefix 'pre-': the snapshot just taken would not count"),
])
def test_bad_input(args, message):
    result = snapshot(args)
    assert result['failed'] is True and result['msg'] == message


def test_revert_target_must_exist(disk_guest):
    name = disk_guest(state='present')
    snapshot({'domain': name, 'name': 'base'})
    result = snapshot({'domain': name, 'name': 'missing', 'state': 'reverted'})
    assert result['msg'] == "domain '%s' has no snapshot 'missing' to revert to (its snapshots: base)" % name


def test_info_returns_the_tree(disk_guest):
    name = disk_guest(state='present')
    for item in ('base', 'left'):
        snapshot({'domain': name, 'name': item})
    snapshot({'domain': name, 'name': 'base', 'state': 'reverted'})
    snapshot({'domain': name, 'name': 'right'})
    info = run_module('libvirt_snapshot_info', {'domain': name, 'xml': True})
    by_name = dict((item['name'], item) for item in info['snapshots'])
    assert info['roots'] == ['base'] and info['current'] == 'right'
    assert by_name['base']['children'] == ['left', 'right']
    assert by_name['left']['parent'] == 'base' and by_name['right']['parent'] == 'base'
    assert by_name['base']['xml'].startswith('<domainsnapshot>') and '<domain ' not in by_name['base']['xml']
    assert [item['name'] for item in info['snapshots']] == ['base', 'left', 'right']


def test_snapshot_before_change_playbook_reverts_a_failed_change(disk_guest):
    name = disk_guest()
    failed = run_playbook('snapshot_before_change.yml', {'vm': name, 'fail_change': True})
    assert failed['rc'] == 2
    messages = failed_messages(failed)
    assert len(messages) == 2 and messages[0] == 'the guest\'s service did not come back (fail_change is set)'
    assert messages[1].startswith('The change failed (Check the service in the guest: ')
    assert 'was reverted to snapshot before-change-' in messages[1] and messages[1].endswith('and is running.')
    assert 'CPU(s):         1' in virsh('dominfo', name), 'the revert brought back the definition with 1 vCPU'
    assert virsh('domstate', name) == 'running'

    done = run_playbook('snapshot_before_change.yml', {'vm': name, 'snapshot_keep': 1})
    assert done['rc'] == 0 and done['stats']['localhost']['failures'] == 0
    assert 'CPU(s):         2' in virsh('dominfo', name)
    assert len(snapshot_names(name)) == 1, 'snapshot_keep: 1 removed the older snapshot'
