# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test hosts in podman containers: modules of the checkout run inside them the way Ansible runs a module on
a target (a fresh `python3 -m` process, JSON in and out), with the collection and this Python's ansible package
mounted read-only. Used by the VirtualBox tests and by the libvirt host tests (networks and pools live in the
container's namespaces, never on the machine running the tests)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import ansible

from virtops_testlib import COLLECTIONS

# The checkout itself (COLLECTIONS links to it), or what VIRTOPS_COLLECTIONS points at.
COLLECTION = (COLLECTIONS / 'ansible_collections' / 'virtops' / 'hypervisor').resolve()
ANSIBLE_PACKAGE = Path(ansible.__file__).resolve().parent
MOUNTED_PYTHON = '/opt/virtops/python'
MOUNTED_COLLECTIONS = '/opt/virtops/collections'
# The mounts every test host gets: the collection and the ansible package its modules import.
CODE_MOUNTS = ['-v', '%s:%s/ansible:ro' % (ANSIBLE_PACKAGE, MOUNTED_PYTHON),
               '-v', '%s:%s/ansible_collections/virtops/hypervisor:ro' % (COLLECTION, MOUNTED_COLLECTIONS)]


class PodmanHost(object):
    """A running container: commands and module calls through podman exec."""

    def __init__(self, name, playbook_runner=None):
        self.name = name
        self._playbook_runner = playbook_runner

    def exec(self, argv, check=False, input=None):
        proc = subprocess.run(['podman', 'exec', '-i', '-w', '/tmp', self.name] + [str(arg) for arg in argv],
                              capture_output=True, text=True, check=False, input=input)
        if check and proc.returncode != 0:
            command = ' '.join(str(arg) for arg in argv)
            raise AssertionError('%s failed (rc %d):\n%s\n%s' % (command, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def sh(self, script, check=True):
        """A bash script inside (bash -euc)."""
        return self.exec(['bash', '-euc', script], check=check)

    def read_file(self, path):
        return self.exec(['cat', path], check=True).stdout

    def exists(self, path):
        return self.exec(['test', '-e', path]).returncode == 0

    def run_module(self, name, args, check=False, diff=True):
        """Run a module of the mounted collection inside: JSON arguments in, JSON result out."""
        args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        # On stdin: as an argument, JSON longer than a file name (255 bytes) makes ansible's os.stat() of it
        # fail with ENAMETOOLONG before it tries the text as JSON.
        proc = subprocess.run(
            ['podman', 'exec', '-i', '-w', '/tmp', '-e', 'PYTHONPATH=%s:%s' % (MOUNTED_PYTHON, MOUNTED_COLLECTIONS),
             self.name, 'python3', '-m', 'ansible_collections.virtops.hypervisor.plugins.modules.%s' % name],
            capture_output=True, text=True, check=False, input=json.dumps({'ANSIBLE_MODULE_ARGS': args}))
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise AssertionError('%s printed no JSON:\n%s\n%s' % (name, proc.stdout, proc.stderr))

    def four_ways(self, name, args, verify=None):
        """Check run (changed, nothing done), real run (changed), rerun and check rerun (unchanged); verify()
        runs after the real run. Returns the four results."""
        first = self.run_module(name, args, check=True)
        assert first.get('failed') is not True and first['changed'] is True, first
        real = self.run_module(name, args)
        assert real.get('failed') is not True and real['changed'] is True, real
        assert real['actions'] == first['actions'], (first['actions'], real['actions'])
        if verify is not None:
            verify()
        rerun = self.run_module(name, args)
        assert rerun.get('failed') is not True and rerun['changed'] is False, rerun
        check_rerun = self.run_module(name, args, check=True)
        assert check_rerun.get('failed') is not True and check_rerun['changed'] is False, check_rerun
        return first, real, rerun, check_rerun

    def run_playbook(self, playbook, extra_vars, check=False):
        """Run a playbook of this repository against the container (podman connection, the checkout's
        collection on the controller side); returns the JSON report with `rc`."""
        return self._playbook_runner(playbook, extra_vars, check=check, host=self.name,
                                     connection='containers.podman.podman', python='/usr/bin/python3')


def start_container(name, image, options=()):
    """podman run -d a systemd container with the code mounts, and wait until it has booted."""
    if not (COLLECTION / 'plugins' / 'modules').is_dir():
        raise AssertionError('no collection at %s (check VIRTOPS_COLLECTIONS)' % COLLECTION)
    subprocess.run(['podman', 'run', '-d', '--name', name] + CODE_MOUNTS + list(options) + [image],
                   capture_output=True, text=True, check=True)
    try:
        wait_booted(name)
    except AssertionError:
        remove_container(name)
        raise


def wait_booted(name, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run(['podman', 'exec', name, 'systemctl', 'is-system-running', '--wait'],
                              capture_output=True, text=True, check=False)
        if proc.stdout.strip() in ('running', 'degraded'):
            return
        time.sleep(1)
    raise AssertionError('container %s did not finish booting' % name)


def remove_container(name):
    subprocess.run(['podman', 'rm', '-f', '-t', '0', name], capture_output=True, check=False)


def build_image(script, repo):
    """Run one of the repository's image build scripts (cached by content hash); returns the image tag."""
    proc = subprocess.run([str(repo / 'scripts' / script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]
