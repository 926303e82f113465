# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration tests of the vbox_* modules against a real VirtualBox 7.2 (Debian sid contrib).

VirtualBox is not packaged for this machine's Debian 12, so the modules run inside a podman
container of the image scripts/build-vbox-image.sh builds (sid + virtualbox, cached by hash). The
installed collection and this Python's ansible package are mounted read-only into it, and each
module call is a fresh `python3 -m` process in the container, JSON in and out, the way Ansible runs
a module on a target. VBoxManage works there; starting a VM does not (no /dev/vboxdrv in a
container), which the tests use for the start-without-driver error.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import ansible
import pytest

from virtops_testlib import COLLECTIONS, REPO

# The checkout itself (COLLECTIONS links to it), or what VIRTOPS_COLLECTIONS points at.
COLLECTION = (COLLECTIONS / 'ansible_collections' / 'virtops' / 'hypervisor').resolve()
ANSIBLE_PACKAGE = Path(ansible.__file__).resolve().parent
MOUNTED_PYTHON = '/opt/virtops/python'
MOUNTED_COLLECTIONS = '/opt/virtops/collections'
# A directory shared with the host: OVF/OVA files and disk images the tests hand to the modules.
SHARED = '/srv/virtops'


class Container(object):
    """The running VirtualBox container: VBoxManage and module calls through podman exec."""

    def __init__(self, name, shared, playbook_runner):
        self.name = name
        self.shared = Path(shared)  # on the host; SHARED inside
        self._playbook_runner = playbook_runner

    def exec(self, argv, check=False, input=None):
        proc = subprocess.run(['podman', 'exec', '-i', '-w', '/tmp', self.name] + list(argv), capture_output=True,
                              text=True, check=False, input=input)
        if check and proc.returncode != 0:
            command = ' '.join(argv)
            raise AssertionError('%s failed (rc %d):\n%s\n%s' % (command, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def vboxmanage(self, *args, check=True):
        return self.exec(['VBoxManage'] + [str(arg) for arg in args], check=check)

    def machinereadable(self, vm):
        """showvminfo --machinereadable as a dict (values unquoted), read with VBoxManage itself."""
        values = {}
        for line in self.vboxmanage('showvminfo', vm, '--machinereadable').stdout.splitlines():
            key, sep, value = line.partition('=')
            if sep:
                values[key.strip('"')] = value[1:-1] if value.startswith('"') and value.endswith('"') else value
        return values

    def settings(self, vm):
        """machinereadable() without VMStateChangeTime: VBoxSVC holds it in milliseconds while it runs, the
        settings file in seconds, so it changes when an idle VBoxSVC exits and the next call reloads the VM."""
        values = self.machinereadable(vm)
        values.pop('VMStateChangeTime', None)
        return values

    def run_module(self, name, args, check=False, diff=True):
        """Run a module of the mounted collection in the container: JSON arguments in, JSON result out."""
        args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        proc = subprocess.run(
            ['podman', 'exec', '-w', '/tmp', '-e', 'PYTHONPATH=%s:%s' % (MOUNTED_PYTHON, MOUNTED_COLLECTIONS),
             self.name, 'python3', '-m', 'ansible_collections.virtops.hypervisor.plugins.modules.%s' % name,
             json.dumps({'ANSIBLE_MODULE_ARGS': args})],
            capture_output=True, text=True, check=False)
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise AssertionError('%s printed no JSON:\n%s\n%s' % (name, proc.stdout, proc.stderr))

    def run_playbook(self, playbook, extra_vars, check=False):
        """Run a playbook of this repository against the container (podman connection, the installed
        collection on the controller side); returns the JSON report with `rc`."""
        return self._playbook_runner(playbook, extra_vars, check=check, host=self.name,
                                     connection='containers.podman.podman', python='/usr/bin/python3')


def _wait_running(name):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        proc = subprocess.run(['podman', 'exec', name, 'systemctl', 'is-system-running', '--wait'],
                              capture_output=True, text=True, check=False)
        if proc.stdout.strip() in ('running', 'degraded'):
            return
        time.sleep(1)
    raise AssertionError('container %s did not finish booting' % name)


@pytest.fixture(scope='session')
def vbox(tmp_path_factory, playbook_runner):
    """One container for the session; every test cleans up the VMs it made (names start with its prefix)."""
    if not (COLLECTION / 'plugins' / 'modules').is_dir():
        pytest.fail('no collection at %s (check VIRTOPS_COLLECTIONS)' % COLLECTION)
    build = subprocess.run([str(REPO / 'scripts' / 'build-vbox-image.sh')], capture_output=True, text=True,
                           check=False)
    assert build.returncode == 0, build.stderr
    image = build.stdout.strip().splitlines()[-1]
    shared = tmp_path_factory.mktemp('vbox-shared')
    os.chmod(str(shared), 0o777)
    name = 'virtops-it-vbox-%s' % uuid.uuid4().hex[:8]
    subprocess.run(
        ['podman', 'run', '-d', '--name', name, '-v', '/sys/fs/cgroup/unified:/sys/fs/cgroup:rw',
         '-v', '%s:%s/ansible:ro' % (ANSIBLE_PACKAGE, MOUNTED_PYTHON),
         '-v', '%s:%s/ansible_collections/virtops/hypervisor:ro' % (COLLECTION, MOUNTED_COLLECTIONS),
         '-v', '%s:%s' % (shared, SHARED), image],
        capture_output=True, text=True, check=True)
    try:
        _wait_running(name)
        yield Container(name, shared, playbook_runner)
    finally:
        subprocess.run(['podman', 'rm', '-f', '-t', '0', name], capture_output=True, check=False)
