# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of _vbox_snapshot (tree reading, prediction, text) and the manager's decisions with a fake
VBoxManage. The trees and the orders predicted are the ones VBoxManage 7.2.22 produced."""

from __future__ import annotations

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _vbox_snapshot as vs
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import Result
from ansible_collections.virtops.hypervisor.plugins.module_utils._vboxmanage import (
    VBoxFailure, parse_machinereadable)

A, B, C, D = ('54ec30ed-fe3b-4d76-9ea5-ad42d92e28b0', '11aa10a8-6885-4add-b3e6-42d0afa9b423',
              '99c97be9-4975-4d5d-8b4b-dfa63d8802dc', 'fd343196-4800-47a1-83fa-174f3ad9cd90')

# `snapshot list --machinereadable` of a -> (b -> c, d), current d; note the current lines in the middle.
TREE = '''SnapshotName="a"
SnapshotUUID="%s"
SnapshotName-1="b"
SnapshotUUID-1="%s"
SnapshotDescription-1="two
lines"
SnapshotName-1-1="c"
SnapshotUUID-1-1="%s"
CurrentSnapshotName="d"
CurrentSnapshotUUID="%s"
CurrentSnapshotNode="SnapshotName-2"
SnapshotName-2="d"
SnapshotUUID-2="%s"
''' % (A, B, C, D, D)


def tree():
    return vs.read_tree(parse_machinereadable(TREE))


def test_read_tree():
    t = tree()
    assert t['roots'] == [A] and t['children'][A] == [B, D] and t['children'][B] == [C] and t['current'] == D
    assert vs.walk(t) == [(A, 0), (B, 1), (C, 2), (D, 1)]
    assert vs.describe(t, B) == {'name': 'b', 'uuid': B, 'description': 'two\nlines', 'parent': 'a',
                                 'children': ['c'], 'current': False}
    assert [item['name'] for item in vs.snapshots(t)] == ['a', 'b', 'c', 'd']
    assert vs.snapshots(t)[3]['current'] is True


def test_read_tree_without_snapshots():
    t = vs.read_tree({'name': 'vm', 'VMState': 'poweroff'})
    assert t == {'roots': [], 'children': {}, 'info': {}, 'current': None}
    assert vs.tree_text(t, 'poweroff') == '# VM state: poweroff\n'


def test_duplicate_names_keep_their_own_parents():
    values = parse_machinereadable('SnapshotName="s"\nSnapshotUUID="%s"\nSnapshotName-1="s"\nSnapshotUUID-1="%s"\n'
                                   'SnapshotName-1-1="x"\nSnapshotUUID-1-1="%s"\nCurrentSnapshotNode="SnapshotName-1-1"\n'
                                   % (A, B, C))
    t = vs.read_tree(values)
    assert vs.find(t, 's') == [A, B]
    assert vs.describe(t, C)['parent'] == 's' and t['children'][B] == [C] and t['children'][A] == [B]


@pytest.mark.parametrize('name, found', [
    ('b', [B]), (B, [B]), ('{%s}' % B.upper(), [B]), ('nope', []), ('00000000-0000-0000-0000-000000000000', []),
])
def test_find(name, found):
    assert vs.find(tree(), name) == found


def test_predict_take_appends_to_the_current_snapshot():
    after = vs.predict_take(tree(), 'e', 'desc')
    assert after['children'][D] == [vs.NEW] and after['current'] == vs.NEW
    assert vs.describe(after, vs.NEW) == {'name': 'e', 'uuid': None, 'description': 'desc', 'parent': 'd',
                                          'children': [], 'current': True}
    assert tree()['current'] == D, 'the tree read is not modified'
    first = vs.predict_take(vs.read_tree({}), 'base', None)
    assert first['roots'] == [vs.NEW] and vs.describe(first, vs.NEW)['description'] == ''


def test_predict_delete_moves_the_only_child_last():
    after = vs.predict_delete(tree(), B)
    assert after['children'][A] == [D, C] and after['current'] == D and B not in after['info']


def test_predict_delete_of_current_makes_the_parent_current():
    after = vs.predict_delete(tree(), D)
    assert after['children'][A] == [B] and after['current'] == A


def test_predict_delete_of_the_root_with_one_child():
    t = vs.predict_delete(tree(), D)
    t = vs.predict_delete(vs.predict_restore(t, C), B)
    t = vs.predict_delete(t, A)
    assert t['roots'] == [C] and t['current'] == C
    assert vs.predict_delete(t, C) == {'roots': [], 'children': {}, 'info': {}, 'current': None}


def test_delete_refusal():
    t = tree()
    assert "2 child snapshots ('b', 'd')" in vs.delete_refusal(t, A)
    assert vs.delete_refusal(t, B) is None and vs.delete_refusal(t, D) is None
    assert "current snapshot and has a child snapshot ('c')" in vs.delete_refusal(vs.predict_restore(t, B), B)


def test_tree_text():
    t = vs.predict_take(tree(), 'e', 'say "hi"')
    assert vs.tree_text(t, 'saved') == (
        '# VM state: saved\n'
        'a (%s)\n'
        '  b (%s) "two\\nlines"\n'
        '    c (%s)\n'
        '  d (%s)\n'
        '    e ((new)) "say \\"hi\\"" [current]\n' % (A, B, C, D))


# --- the manager with a fake VBoxManage -------------------------------------------------------------

class FakeVBox(object):
    """showvminfo answers from a text; every other call is recorded and answered from `answers`."""

    def __init__(self, showvminfo, answers=None):
        self.text = showvminfo
        self.calls = []
        self.answers = answers or {}

    def showvminfo(self, vm):
        return None if self.text is None else parse_machinereadable(self.text)

    def run(self, args, check=True):
        self.calls.append(list(args))
        return self.answers.get(args[2], (0, '', ''))


class Module(object):
    def __init__(self, params):
        self.params = params


class Manager(object):
    """The manager with its Result: run() returns what the module would return."""

    def __init__(self, params, check_mode):
        self.result = Result(check_mode, True)
        self.manager = vs.VBoxSnapshotManager(Module(params), self.result)

    def run(self):
        self.manager.run()
        return self.result.as_dict()


def manager(monkeypatch, showvminfo, check_mode=False, answers=None, **params):
    fake = FakeVBox(showvminfo, answers)
    monkeypatch.setattr(vs, 'VBoxManage', lambda module: fake)
    params = dict({'vm': 'vm1', 'state': 'present', 'description': None, 'live': False}, **params)
    return Manager(params, check_mode), fake


VM = 'name="vm1"\nUUID="dc0fd9fc-26da-413f-a7b4-def5c9bd181a"\nVMState="%s"\n'


def test_restore_of_a_running_vm_is_refused_with_what_to_do(monkeypatch):
    mgr, fake = manager(monkeypatch, VM % 'running' + TREE, name='b', state='restored')
    with pytest.raises(VBoxFailure) as err:
        mgr.run()
    assert "cannot restore snapshot 'b' of VM 'vm1': the VM is running" in str(err.value)
    assert 'VBoxManage controlvm vm1 poweroff' in str(err.value) and fake.calls == []


def test_restore_check_mode_predicts_saved_state(monkeypatch):
    answers = {'showvminfo': (0, 'Name:   vm1\nState:                       saved (since 2026)\n', '')}
    mgr, fake = manager(monkeypatch, VM % 'poweroff' + TREE, check_mode=True, answers=answers, name='b',
                        state='restored')
    result = mgr.run()
    assert result['changed'] is True and result['current'] == 'b' and result['vm_state'] == 'saved'
    assert fake.calls == [['snapshot', 'dc0fd9fc-26da-413f-a7b4-def5c9bd181a', 'showvminfo', B]]


def test_live_is_passed_for_a_running_vm_only(monkeypatch):
    taken = (0, 'Snapshot taken. UUID: %s\n' % C, '')
    for vm_state, live in (('running', ['--live']), ('paused', []), ('poweroff', [])):
        mgr, fake = manager(monkeypatch, VM % vm_state, answers={'take': taken}, name='new', live=True,
                            description='d')
        mgr.run()
        assert fake.calls[0] == ['snapshot', 'dc0fd9fc-26da-413f-a7b4-def5c9bd181a', 'take', 'new',
                                 '--description', 'd'] + live


def test_commands_address_the_snapshot_by_uuid(monkeypatch):
    mgr, fake = manager(monkeypatch, VM % 'poweroff' + TREE, name='b', state='absent')
    mgr.run()
    assert fake.calls == [['snapshot', 'dc0fd9fc-26da-413f-a7b4-def5c9bd181a', 'delete', B]]


def test_vboxmanage_failure_names_the_command_and_reports_no_change(monkeypatch):
    err = 'VBoxManage: error: Snapshot operation failed\nVBoxManage: error: Details: code E_FAIL\n'
    mgr, _fake = manager(monkeypatch, VM % 'poweroff' + TREE, answers={'delete': (1, '', err)}, name='c',
                         state='absent')
    with pytest.raises(VBoxFailure) as exc:
        mgr.run()
    assert str(exc.value) == ("cannot delete snapshot 'c' of VM 'vm1': VBoxManage snapshot vm1 delete %s failed: "
                              "Snapshot operation failed" % C)
    assert mgr.result.as_dict()['changed'] is False and mgr.result.actions == []
    assert exc.value.about == "snapshot 'c' of VM 'vm1'"


def test_missing_vm(monkeypatch):
    mgr, _fake = manager(monkeypatch, None, name='x', state='absent')
    with pytest.raises(VBoxFailure, match="VM 'vm1' is not registered with VirtualBox"):
        mgr.run()


def test_description_and_live_are_refused_outside_state_present(monkeypatch):
    for state in ('absent', 'restored'):
        for option, value in (('description', 'd'), ('live', True)):
            mgr, fake = manager(monkeypatch, VM % 'poweroff' + TREE, name='b', state=state, **{option: value})
            with pytest.raises(VBoxFailure) as err:
                mgr.run()
            assert str(err.value) == '%s applies to state present only (state is %s)' % (option, state)
            assert fake.calls == [] and mgr.result.as_dict()['changed'] is False
