# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration tests: the modules of the installed collection against the real libvirtd (qemu:///system).

libvirtd is set up by the kvm_host role (`make molecule` runs it on this machine in the localhost
scenario). Guests are tiny and emulated (TCG): the Debian cloud kernel with a busybox initramfs
built by scripts/build-guest.sh, which prints "virtops-guest: ready" on its serial console and
powers off on the ACPI power button.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The installed collection (make collection); VIRTOPS_COLLECTIONS points elsewhere while developing.
COLLECTIONS = Path(os.environ.get('VIRTOPS_COLLECTIONS', str(REPO / '.build' / 'collections')))
URI = 'qemu:///system'
# Every object a test makes is named with this prefix (and removed by it): parallel runs set their own.
PREFIX = os.environ.get('VIRTOPS_IT_PREFIX', 'virtops-it-')
READY = 'virtops-guest: ready'

libvirt = pytest.importorskip('libvirt')


@pytest.fixture(scope='session')
def conn():
    try:
        connection = libvirt.open(URI)
    except libvirt.libvirtError as exc:
        pytest.fail('libvirtd does not answer at %s (%s): run `make molecule` first, its localhost scenario sets '
                    'up libvirtd on this machine' % (URI, exc))
    yield connection
    for dom in connection.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    connection.close()


@pytest.fixture(scope='session')
def guest_dir():
    proc = subprocess.run([str(REPO / 'scripts' / 'build-guest.sh')], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def run_module(name, args, check=False, diff=True):
    """Run a module of the installed collection the way ansible does: a fresh process, JSON in and out."""
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


@pytest.fixture
def domain(conn):
    def call(args, check=False, diff=True):
        return run_module('libvirt_domain', args, check, diff)
    return call


@pytest.fixture
def guest(guest_dir, conn, request):
    """Options of a tiny guest named after the test; removed afterwards."""
    name = PREFIX + request.node.name.replace('test_', '').replace('_', '-')[:40]

    def options(cmdline='', **extra):
        base = {
            'name': name, 'memory': 128, 'vcpus': 1,
            'boot': {'kernel': '%s/vmlinuz' % guest_dir, 'initrd': '%s/initrd.img' % guest_dir,
                     'cmdline': ('console=ttyS0 quiet no_timer_check ' + cmdline).strip()},
            'serial_console': True, 'serial_log': serial_log(name),
        }
        base.update(extra)
        return base
    options.name = name
    yield options
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)


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


def run_playbook(playbook, extra_vars, check=False, host='localhost', connection='local', python=sys.executable):
    """Run a playbook of this repository on one host (this machine by default) with the installed collection;
    returns the JSON report with `rc`."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK='json',
               ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_INVENTORY_UNPARSED_WARNING='false', ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'))
    argv = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', host + ',', '-c', connection,
            '-e', json.dumps(dict(extra_vars, target_hosts=host, ansible_python_interpreter=python)),
            str(REPO / 'playbooks' / playbook)] + (['--check'] if check else [])
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('%s printed no JSON report:\n%s\n%s' % (playbook, proc.stdout, proc.stderr))
    report['rc'] = proc.returncode
    return report


@pytest.fixture(scope='session')
def playbook_runner():
    """run_playbook for conftests of subdirectories, which cannot import this module by name."""
    return run_playbook


def failed_messages(report):
    return [host['msg'] for play in report['plays'] for task in play['tasks']
            for host in task['hosts'].values() if host.get('failed') and not host.get('ignore_errors')]
