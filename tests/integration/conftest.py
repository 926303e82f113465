# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration tests: the modules of the checkout against the real libvirtd (qemu:///system).

libvirtd is set up by the kvm_host role (`make molecule` runs it on this machine in the localhost
scenario). Guests are tiny and emulated (TCG): the Debian cloud kernel with a busybox initramfs
built by scripts/build-guest.sh, which prints "virtops-guest: ready" on its serial console and
powers off on the ACPI power button.
"""

from __future__ import annotations

import subprocess

import pytest

from virtops_testlib import PREFIX, REPO, URI, import_libvirt, run_module, run_playbook, serial_log


@pytest.fixture(scope='session')
def conn():
    libvirt = import_libvirt()
    try:
        connection = libvirt.open(URI)
    except libvirt.libvirtError as exc:
        pytest.fail('libvirtd does not answer at %s (%s): run `make molecule` first, its localhost scenario sets '
                    'up libvirtd on this machine' % (URI, exc))
    # Also before: a run that was stopped (make test stops the other lane when one fails) left its guests.
    remove_test_domains(libvirt, connection)
    yield connection
    remove_test_domains(libvirt, connection)
    connection.close()


def remove_test_domains(libvirt, connection):
    for dom in connection.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)


@pytest.fixture(scope='session')
def guest_dir():
    proc = subprocess.run([str(REPO / 'scripts' / 'build-guest.sh')], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


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
    libvirt = import_libvirt()
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)


@pytest.fixture(scope='session')
def playbook_runner():
    """virtops_testlib.run_playbook as a fixture (the VirtualBox conftest takes it this way)."""
    return run_playbook
