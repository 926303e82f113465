# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the integration tests (import them from here, not from a conftest).

Every subdirectory's conftest.py is imported under the module name ``conftest``, so
``from conftest import ...`` picks whichever was loaded last; this module has a name of its own.
pytest.ini puts tests/lib on sys.path.

The modules and playbooks run from the CHECKOUT, never from an installed copy that may be stale:
COLLECTIONS is a directory whose ansible_collections/virtops/hypervisor is a symlink to this
checkout (made here, inside the checkout's git-ignored .build/). VIRTOPS_COLLECTIONS points
elsewhere, e.g. at an installed tarball (.build/collections after `make collection`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
URI = 'qemu:///system'
# Every object a test makes is named with this prefix (and removed by it): parallel runs set their own.
PREFIX = os.environ.get('VIRTOPS_IT_PREFIX', 'virtops-it-')
READY = 'virtops-guest: ready'


def checkout_collections(repo=REPO):
    """A collections directory whose virtops/hypervisor is a symlink to the checkout (created when missing)."""
    root = repo / '.build' / 'checkout'
    link = root / 'ansible_collections' / 'virtops' / 'hypervisor'
    if not link.is_symlink() or link.resolve() != repo.resolve():
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name('.hypervisor.%d' % os.getpid())
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(repo.resolve())
        os.replace(str(tmp), str(link))
    return root


COLLECTIONS = Path(os.environ['VIRTOPS_COLLECTIONS']) if os.environ.get('VIRTOPS_COLLECTIONS') else checkout_collections()


def import_libvirt():
    """libvirt-python, or a failure that says how to get it (a missing binding is not a reason to skip)."""
    try:
        import libvirt  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        import pytest  # pylint: disable=import-outside-toplevel
        pytest.fail('libvirt-python is not importable from %s (%s): run `make venv` (it installs '
                    'requirements-dev.txt)' % (sys.executable, exc), pytrace=False)
    return libvirt


def run_module(name, args, check=False, diff=True):
    """Run a module of the collection the way ansible does: a fresh process, JSON in and out."""
    args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
    try:
        proc = subprocess.run(
            [sys.executable, '-m', 'ansible_collections.virtops.hypervisor.plugins.modules.%s' % name, handle.name],
            capture_output=True, text=True, check=False, cwd=tempfile.gettempdir(),
            env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)))
    finally:
        os.unlink(handle.name)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('%s printed no JSON:\n%s\n%s' % (name, proc.stdout, proc.stderr))


def serial_log(name):
    return '/var/log/libvirt/qemu/%s-serial.log' % name


def wait_for_console(name, text=READY, timeout=90):
    """Wait until the guest printed a line on its serial console; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if text in Path(serial_log(name)).read_text(errors='replace'):
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError('%s did not print %r within %d s' % (name, text, timeout))


def virsh(*args):
    return subprocess.run(['virsh', '-c', URI] + list(args), capture_output=True, text=True, check=True).stdout.strip()


def run_playbook(playbook, extra_vars, check=False, host='localhost', connection='local', python=sys.executable,
                 inventory=None):
    """Run a playbook of this repository on one host (this machine by default) with the collection of
    COLLECTIONS; returns the JSON report with `rc`. With an inventory file, `host` is a host or group of it and
    the inventory says how to connect."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK='json',
               ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'))
    if inventory is None:
        target = ['-i', host + ',', '-c', connection]
        extra_vars = dict(extra_vars, ansible_python_interpreter=python)
    else:
        target = ['-i', str(inventory)]
    argv = [str(Path(sys.executable).with_name('ansible-playbook'))] + target + [
        '-e', json.dumps(dict(extra_vars, target_hosts=host)),
        str(REPO / 'playbooks' / playbook)] + (['--check'] if check else [])
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('%s printed no JSON report:\n%s\n%s' % (playbook, proc.stdout, proc.stderr))
    report['rc'] = proc.returncode
    return report


def failed_messages(report):
    return [host['msg'] for play in report['plays'] for task in play['tasks']
            for host in task['hosts'].values() if host.get('failed') and not host.get('ignore_errors')]


def ansible_inventory(source):
    """`ansible-inventory -i source --list` with the collection of COLLECTIONS: (inventory, stderr, seconds), the
    inventory as plain JSON (without ansible-core 2.19's markers of untrusted strings)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR='1',
               ANSIBLE_INVENTORY_ENABLED='auto')
    start = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).with_name('ansible-inventory')), '-i', str(source), '--list'],
                          capture_output=True, text=True, check=False, env=env)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    return _trusted_json(json.loads(proc.stdout)), proc.stderr, seconds


def _trusted_json(value):
    if isinstance(value, dict):
        if set(value) == {'__ansible_unsafe'}:
            return value['__ansible_unsafe']
        return {key: _trusted_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted_json(item) for item in value]
    return value
