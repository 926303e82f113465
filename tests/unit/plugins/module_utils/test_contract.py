# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module contract: side effects only outside check mode, failures that report what was done."""

from __future__ import annotations

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure, Result, run_module


class Exited(Exception):
    def __init__(self, failed, report):
        super(Exited, self).__init__(report)
        self.failed = failed
        self.report = report


class RecordingModule(object):
    """Stands in for AnsibleModule: records what exit_json/fail_json/warn were given (no process to exit)."""

    def __init__(self, check_mode=False, diff=False):
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def exit_json(self, **report):
        raise Exited(False, report)

    def fail_json(self, **report):
        raise Exited(True, report)


def run(module, work):
    with pytest.raises(Exited) as exited:
        run_module(module, work)
    return exited.value


def test_check_mode_records_the_action_without_running_it():
    ran = []

    def work(result):
        result.perform('define', ran.append, 'x')

    exited = run(RecordingModule(check_mode=True), work)
    assert ran == []
    assert exited.report['changed'] is True
    assert exited.report['actions'] == ['define']


def test_a_side_effect_that_fails_records_no_change():
    def refuse():
        raise ModuleFailure("libvirt refused the definition of domain 'a/b'", about="domain 'a/b'")

    def work(result):
        result.perform('define', refuse)

    exited = run(RecordingModule(), work)
    assert exited.failed
    assert exited.report['changed'] is False
    assert exited.report['actions'] == []
    assert exited.report['failed_object'] == "domain 'a/b'"
    assert 'a/b' in exited.report['msg']


def test_a_failure_after_a_change_reports_the_change_done():
    def work(result):
        result.perform('create', lambda: None)
        raise ModuleFailure('resize failed', size=5)

    exited = run(RecordingModule(), work)
    assert exited.failed
    assert exited.report['changed'] is True
    assert exited.report['actions'] == ['create']
    assert exited.report['size'] == 5


def test_diff_only_in_diff_mode():
    def work(result):
        result.perform('grow')
        result.add_diff({'size': 1}, {'size': 2}, before_header='/img')

    plain = run(RecordingModule(), work)
    with_diff = run(RecordingModule(diff=True), work)
    assert 'diff' not in plain.report
    assert with_diff.report['diff'] == {'before': {'size': 1}, 'after': {'size': 2},
                                        'before_header': '/img', 'after_header': '/img'}


def test_batch_items_count_for_the_whole_call():
    def work(result):
        result.diff_as_list()
        first = result.item('domains', name='a')
        second = result.item('domains', name='b')
        second.perform('start')
        second.warn('b: the next run will report a change again')
        second.add_diff('off', 'on')
        assert not first.changed

    module = RecordingModule(diff=True)
    exited = run(module, work)
    report = exited.report
    assert report['changed'] is True
    assert [item['name'] for item in report['domains']] == ['a', 'b']
    assert [item['changed'] for item in report['domains']] == [False, True]
    assert 'diff' not in report['domains'][1]
    assert report['diff'] == [{'before': 'off', 'after': 'on'}]
    assert module.warnings == ['b: the next run will report a change again']


def test_info_work_returns_facts_unchanged():
    exited = run(RecordingModule(check_mode=True), lambda result: {'images': []})
    assert exited.report == {'changed': False, 'images': []}


def test_differences_and_fields_are_returned():
    def work(result):
        result.differ('memory: 1024 -> 2048')
        result.perform('modifyvm')
        result.set(state='poweroff')

    report = run(RecordingModule(), work).report
    assert report['differences'] == ['memory: 1024 -> 2048']
    assert report['state'] == 'poweroff'


def test_a_result_holds_items_under_one_key():
    result = Result()
    result.item('domains', name='a')
    with pytest.raises(ValueError):
        result.item('files', path='/etc/x')


def test_ansible_helpers_that_end_the_module_keep_the_result():
    """AnsibleModule's own helpers (atomic_move, set_owner_if_different) call fail_json themselves."""
    module = RecordingModule()

    def work(result):
        result.perform('write /etc/a', lambda: None)
        module.fail_json(msg='Could not replace file: /etc/b', exception='trace')

    exited = run(module, work)
    assert exited.failed and exited.report['msg'] == 'Could not replace file: /etc/b'
    assert exited.report['changed'] is True and exited.report['actions'] == ['write /etc/a']
    assert exited.report['exception'] == 'trace'
    assert module.fail_json.__name__ == 'fail_json', 'restored after the call'
