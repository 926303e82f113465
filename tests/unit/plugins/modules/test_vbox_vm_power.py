# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vbox_vm's power states (running, paused, saved, poweroff, acpi_shutdown) against a stand-in VBoxManage.

Why a stand-in: no VirtualBox VM can run here. VirtualBox is only available in a container (Debian sid
contrib, see tests/integration/virtualbox), and there neither its kernel driver loads (no /dev/vboxdrv: the
driver cannot be built or loaded in a container) nor could a VM run without VT-x/AMD-V, which this CPU does not
offer. The integration tests cover everything VirtualBox does there, including the failure to start without the
driver; the transitions between running, paused and saved states can only be tested against a stand-in.

The stand-in (tests/unit/fixtures/vboxmanage/standin.py) records every call and answers like VBoxManage 7.2.22:
showvminfo is the real capture of a powered-off VM with VMState changed as VirtualBox changes it, and the calls
VirtualBox refuses in a state fail with its error lines and exit code. The module runs in-process as Ansible
starts it (its main(), run_module, JSON out), with the stand-in first on PATH; every VBoxManage call is a real
process. /dev/vboxdrv is a file of the test's own (the module's check of it is pointed there).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from virtops_unitlib import patch_module_args

from ansible_collections.virtops.hypervisor.plugins.module_utils import _vboxmanage
from ansible_collections.virtops.hypervisor.plugins.modules import vbox_vm

STANDIN = Path(__file__).resolve().parents[2] / 'fixtures' / 'vboxmanage' / 'standin.py'
UUID = '2b8f3c1e-5d1a-4c57-9a7e-0d3c6f1e9b42'
# The VBoxManage commands that only read.
READS = ('showvminfo', 'list')


class StandIn(object):
    """The stand-in's world (a JSON file) and the module run against it."""

    def __init__(self, tmp_path, monkeypatch, capsys):
        self.capsys = capsys
        self.world = tmp_path / 'world.json'
        self.driver = tmp_path / 'vboxdrv'
        self.driver.write_text('')
        bin_dir = tmp_path / 'bin'
        bin_dir.mkdir()
        launcher = bin_dir / 'VBoxManage'
        launcher.write_text('#!/bin/sh\nexec "%s" "%s" "$@"\n' % (sys.executable, STANDIN))
        launcher.chmod(0o755)
        monkeypatch.setenv('PATH', '%s:/usr/bin:/bin' % bin_dir)
        monkeypatch.setenv('VIRTOPS_VBOXMANAGE_STANDIN', str(self.world))
        monkeypatch.setattr(_vboxmanage, 'DRIVER_DEVICE', str(self.driver))
        self.save({'driver': str(self.driver), 'vms': {}, 'acpi_polls': 1, 'calls': []})

    def load(self):
        return json.loads(self.world.read_text())

    def save(self, world):
        self.world.write_text(json.dumps(world))

    def vm(self, name, state, **extra):
        world = self.load()
        world['vms'][name] = dict({'uuid': UUID, 'state': state}, **extra)
        self.save(world)

    def set(self, **settings):
        world = self.load()
        world.update(settings)
        self.save(world)

    def state(self, name):
        return self.load()['vms'][name]['state']

    def changes(self):
        """The calls since the last one of run() that change something (not showvminfo or list)."""
        return [call for call in self.load()['calls'] if call[0] not in READS]

    def run(self, args, check=False):
        self.set(calls=[])
        with patch_module_args(dict(args, _ansible_check_mode=check, _ansible_diff=True)):
            with pytest.raises(SystemExit):
                vbox_vm.main()
        return json.loads(self.capsys.readouterr().out)


@pytest.fixture
def vbox(tmp_path, monkeypatch, capsys):
    return StandIn(tmp_path, monkeypatch, capsys)


def four_ways(vbox, name, args, actions, argv, target):
    """Check run (changed, the planned actions, no call that changes anything), real run (the VBoxManage argv,
    the state reached), rerun and check rerun (no change, no call)."""
    before = vbox.state(name)
    check = vbox.run(args, check=True)
    assert (check['changed'], check['actions'], check['state']) == (True, actions, target), check
    assert check['diff'] == {'before': {'state': before}, 'after': {'state': target}}
    assert vbox.changes() == [] and vbox.state(name) == before
    real = vbox.run(args)
    assert (real['changed'], real['actions'], real['state']) == (True, actions, target), real
    assert real['diff'] == check['diff'] and real['vm']['state'] == target
    assert vbox.changes() == argv and vbox.state(name) == target
    for check_mode in (False, True):
        again = vbox.run(args, check=check_mode)
        assert (again['changed'], again['actions'], again['state']) == (False, [], target), again
        assert vbox.changes() == []


START = ['startvm', 'web1', '--type', 'headless']


@pytest.mark.parametrize('have, state, actions, argv', [
    ('poweroff', 'running', ['start'], [START]),
    ('aborted', 'running', ['start'], [START]),
    ('saved', 'running', ['start'], [START]),
    ('paused', 'running', ['resume'], [['controlvm', 'web1', 'resume']]),
    ('running', 'paused', ['pause'], [['controlvm', 'web1', 'pause']]),
    ('poweroff', 'paused', ['start', 'pause'], [START, ['controlvm', 'web1', 'pause']]),
    ('saved', 'paused', ['start', 'pause'], [START, ['controlvm', 'web1', 'pause']]),
    ('running', 'saved', ['save'], [['controlvm', 'web1', 'savestate']]),
    ('paused', 'saved', ['save'], [['controlvm', 'web1', 'savestate']]),
    ('running', 'poweroff', ['poweroff'], [['controlvm', 'web1', 'poweroff']]),
    ('paused', 'poweroff', ['poweroff'], [['controlvm', 'web1', 'poweroff']]),
    ('saved', 'poweroff', ['discard_saved_state'], [['discardstate', 'web1']]),
    ('saved', 'acpi_shutdown', ['discard_saved_state'], [['discardstate', 'web1']]),
    ('running', 'acpi_shutdown', ['acpi_shutdown'], [['controlvm', 'web1', 'acpipowerbutton']]),
    ('paused', 'acpi_shutdown', ['resume', 'acpi_shutdown'],
     [['controlvm', 'web1', 'resume'], ['controlvm', 'web1', 'acpipowerbutton']]),
])
def test_power_state_changes_check_real_rerun(vbox, have, state, actions, argv):
    vbox.vm('web1', have)
    target = 'poweroff' if state == 'acpi_shutdown' else state
    four_ways(vbox, 'web1', {'name': 'web1', 'state': state}, actions, argv, target)


def test_acpi_shutdown_waits_until_the_guest_has_powered_off(vbox):
    vbox.vm('web1', 'running')
    vbox.set(acpi_polls=3)
    result = vbox.run({'name': 'web1', 'state': 'acpi_shutdown', 'timeout': 60})
    assert (result['changed'], result['actions'], result['state']) == (True, ['acpi_shutdown'], 'poweroff'), result
    calls = vbox.load()['calls']
    pressed = calls.index(['controlvm', 'web1', 'acpipowerbutton'])
    # It read the state until the guest was off (the third read after the press), and did not force it.
    assert [call[0] for call in calls[pressed + 1:pressed + 4]] == ['showvminfo'] * 3
    assert ['controlvm', 'web1', 'poweroff'] not in calls and vbox.state('web1') == 'poweroff'


def test_acpi_shutdown_ignored_by_the_guest_is_forced_after_the_timeout(vbox):
    vbox.vm('web1', 'running')
    vbox.set(acpi_polls=None)
    args = {'name': 'web1', 'state': 'acpi_shutdown', 'timeout': 1, 'force': True}
    check = vbox.run(args, check=True)
    assert (check['changed'], check['actions']) == (True, ['acpi_shutdown']) and vbox.changes() == []
    result = vbox.run(args)
    assert (result['changed'], result['actions'], result['state']) == (
        True, ['acpi_shutdown', 'poweroff'], 'poweroff'), result
    assert vbox.changes() == [['controlvm', 'web1', 'acpipowerbutton'], ['controlvm', 'web1', 'poweroff']]
    assert vbox.state('web1') == 'poweroff'
    assert not vbox.run(args)['changed']


def test_acpi_shutdown_ignored_without_force_fails_naming_the_vm_and_timeout(vbox):
    vbox.vm('web1', 'running')
    vbox.set(acpi_polls=None)
    result = vbox.run({'name': 'web1', 'state': 'acpi_shutdown', 'timeout': 1})
    assert result['failed'] is True
    assert result['msg'].startswith("VM 'web1' did not power off within 1 seconds of the ACPI power button")
    assert 'force: true' in result['msg'] and result['failed_object'] == "VM 'web1'"
    # The button was pressed: that much changed, and is reported.
    assert (result['changed'], result['actions']) == (True, ['acpi_shutdown'])
    assert vbox.changes() == [['controlvm', 'web1', 'acpipowerbutton']] and vbox.state('web1') == 'running'


@pytest.mark.parametrize('have, state', [('poweroff', 'running'), ('saved', 'running'), ('poweroff', 'paused'),
                                         ('aborted', 'paused')])
def test_starting_without_the_driver_fails_before_any_change(vbox, have, state):
    vbox.driver.unlink()
    vbox.vm('web1', have)
    for check in (True, False):
        result = vbox.run({'name': 'web1', 'state': state, 'memory': 2048}, check=check)
        assert result['failed'] is True, result
        assert "cannot bring VM 'web1' to state %s: /dev/vboxdrv does not exist" % state in result['msg']
        assert 'virtualbox-dkms' in result['msg'] and 'Nothing was changed' in result['msg']
        assert (result['changed'], result['actions']) == (False, [])
        assert vbox.changes() == [] and vbox.state('web1') == have


def test_stopping_needs_no_driver(vbox):
    vbox.driver.unlink()
    vbox.vm('web1', 'saved')
    result = vbox.run({'name': 'web1', 'state': 'poweroff'})
    assert (result['changed'], result['actions'], vbox.state('web1')) == (True, ['discard_saved_state'], 'poweroff')


def test_a_call_virtualbox_refuses_reports_no_change(vbox):
    """The guest powers off by itself right after the module read it as running: VirtualBox refuses the pause."""
    vbox.vm('web1', 'running', stops_after_read=1)
    result = vbox.run({'name': 'web1', 'state': 'paused'})
    assert result['failed'] is True
    assert result['msg'] == "VBoxManage controlvm web1 failed: Machine 'web1' is not currently running."
    assert (result['changed'], result['actions'], result['failed_object']) == (False, [], "VM 'web1'")
    assert vbox.changes() == [['controlvm', 'web1', 'pause']]


def test_a_start_virtualbox_refuses_reports_no_change(vbox):
    vbox.vm('web1', 'poweroff')
    vbox.set(start_fails=True)
    for state in ('running', 'paused'):
        result = vbox.run({'name': 'web1', 'state': state})
        assert result['failed'] is True
        assert result['msg'] == ("VBoxManage startvm web1 failed: The virtual machine 'web1' has terminated "
                                 "unexpectedly during startup with exit code 1 (0x1)")
        assert (result['changed'], result['actions']) == (False, [])
        assert vbox.changes() == [START] and vbox.state('web1') == 'poweroff'


def test_settings_of_a_running_vm_change_after_it_is_powered_off(vbox):
    vbox.vm('web1', 'running')
    args = {'name': 'web1', 'state': 'poweroff', 'memory': 2048}
    check = vbox.run(args, check=True)
    assert (check['changed'], check['actions']) == (True, ['poweroff', 'modify']) and vbox.changes() == []
    assert check['differences'] == ['memory: 1024 -> 2048']
    result = vbox.run(args)
    assert (result['changed'], result['actions']) == (True, ['poweroff', 'modify'])
    assert vbox.changes() == [['controlvm', 'web1', 'poweroff'], ['modifyvm', 'web1', '--memory', '2048']]


def test_settings_of_a_running_vm_are_refused_unless_it_is_stopped(vbox):
    vbox.vm('web1', 'running')
    for state in ('running', 'present', 'paused', 'saved'):
        result = vbox.run({'name': 'web1', 'state': state, 'memory': 2048})
        assert result['failed'] is True and "VM 'web1' is running: its settings can only change while it is " \
            "powered off (memory: 1024 -> 2048)" in result['msg'], result
        assert (result['changed'], result['actions']) == (False, []) and vbox.changes() == []


def test_absent_powers_a_running_vm_off_then_unregisters_it(vbox):
    vbox.vm('web1', 'paused')
    args = {'name': 'web1', 'state': 'absent'}
    check = vbox.run(args, check=True)
    assert (check['changed'], check['actions']) == (True, ['poweroff', 'unregister']) and vbox.changes() == []
    result = vbox.run(args)
    assert (result['changed'], result['actions'], result['state']) == (True, ['poweroff', 'unregister'], 'absent')
    assert vbox.changes() == [['controlvm', 'web1', 'poweroff'], ['unregistervm', 'web1']]
    assert vbox.load()['vms'] == {}
    assert not vbox.run(args)['changed']
