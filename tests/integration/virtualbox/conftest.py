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

import os
import uuid
from pathlib import Path

import pytest

from virtops_containers import PodmanHost, build_image, remove_container, start_container
from virtops_testlib import REPO

# A directory shared with the host: OVF/OVA files and disk images the tests hand to the modules.
SHARED = '/srv/virtops'


class Container(PodmanHost):
    """The running VirtualBox container: VBoxManage through podman exec, and what PodmanHost offers."""

    def __init__(self, name, shared, playbook_runner):
        super(Container, self).__init__(name, playbook_runner)
        self.shared = Path(shared)  # on the host; SHARED inside

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


@pytest.fixture(scope='session')
def vbox(tmp_path_factory, playbook_runner):
    """One container for the session; every test cleans up the VMs it made (names start with its prefix)."""
    image = build_image('build-vbox-image.sh', REPO)
    shared = tmp_path_factory.mktemp('vbox-shared')
    os.chmod(str(shared), 0o777)
    name = 'virtops-it-vbox-%s' % uuid.uuid4().hex[:8]
    start_container(name, image, ['-v', '/sys/fs/cgroup/unified:/sys/fs/cgroup:rw', '-v', '%s:%s' % (shared, SHARED)])
    try:
        yield Container(name, shared, playbook_runner)
    finally:
        remove_container(name)
