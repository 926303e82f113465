# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration tests that need a libvirt host of their own: networks (bridges, dnsmasq, NAT rules) and pools
on loop devices.

They run in one privileged container of the image scripts/build-libvirt-image.sh builds (Debian 12, libvirtd,
TCG guests, dnsmasq, LVM), so every bridge, address and firewall rule a test makes lives in the container's
network namespace, never in the namespace of the machine running the tests. Modules run inside the container
(PodmanHost.run_module); the guest kernel of scripts/build-guest.sh is mounted read-only at GUEST_DIR. Loop
devices are the host kernel's: tests that attach one detach it in their teardown.
"""

from __future__ import annotations

import os
import uuid

import pytest

from virtops_cluster import Cluster
from virtops_containers import PodmanHost, build_image, remove_container, start_container
from virtops_testlib import PREFIX, REPO, failed_messages

GUEST_DIR = '/srv/virtops/guest'
SHARED = '/srv/virtops/shared'


class LibvirtHost(PodmanHost):
    """The libvirt host container: virsh and module calls inside it."""

    uri = 'qemu:///system'

    def __init__(self, name, shared, playbook_runner):
        super(LibvirtHost, self).__init__(name, playbook_runner)
        self.shared = shared  # on the host; SHARED inside
        self.guest_dir = GUEST_DIR

    def virsh(self, *args, check=True):
        return self.exec(['virsh', '-c', self.uri] + list(args), check=check).stdout.strip()

    def remove_test_objects(self):
        """Remove what tests left behind: domains, networks and pools whose names start with the prefix."""
        self.sh('''
            for dom in $(virsh list --all --name | grep "^{prefix}" || true); do
                virsh destroy "$dom" >/dev/null 2>&1 || true
                virsh undefine --nvram --managed-save "$dom" >/dev/null 2>&1 || virsh undefine "$dom" >/dev/null || true
            done
            for net in $(virsh net-list --all --name | grep "^{prefix}" || true); do
                virsh net-destroy "$net" >/dev/null 2>&1 || true
                virsh net-undefine "$net" >/dev/null 2>&1 || true
            done
            for pool in $(virsh pool-list --all --name | grep "^{prefix}" || true); do
                virsh pool-destroy "$pool" >/dev/null 2>&1 || true
                virsh pool-undefine "$pool" >/dev/null 2>&1 || true
            done'''.format(prefix=PREFIX), check=False)


@pytest.fixture(scope='session')
def lvhost(tmp_path_factory, playbook_runner, guest_dir):
    """One libvirt host container for the session (guest_dir: tests/integration/conftest.py)."""
    image = build_image('build-libvirt-image.sh', REPO)
    shared = tmp_path_factory.mktemp('lvhost-shared')
    os.chmod(str(shared), 0o777)
    name = '%shost-%s' % (PREFIX, uuid.uuid4().hex[:8])
    start_container(name, image, ['--privileged', '-v', '%s:%s:ro' % (guest_dir, GUEST_DIR),
                                  '-v', '%s:%s' % (shared, SHARED)])
    host = LibvirtHost(name, shared, playbook_runner)
    try:
        host.virsh('uri')
        yield host
    finally:
        host.remove_test_objects()
        remove_container(name)


# The role variables migration_hosts is set up with (its cluster's `role_vars`, for tests that run the role again).
MIGRATION_ROLE_VARS = {'kvm_host_migration': True, 'kvm_host_migration_transport': 'tcp',
                       'kvm_host_libvirtd_allow_insecure': True}


@pytest.fixture(scope='session')
def libvirt_cluster(tmp_path_factory, guest_dir, playbook_runner):
    """Makes a Cluster (tests/lib/virtops_cluster.py) of libvirt host containers, not set up yet: each with the
    guest kernel at GUEST_DIR and one directory shared by all of them at SHARED (on the host: `.shared`).
    Use it as a context manager: `with libvirt_cluster('tag', 2) as cluster:`."""
    image = build_image('build-libvirt-image.sh', REPO)

    def make(tag, size):
        shared = tmp_path_factory.mktemp('%s-shared' % tag)
        os.chmod(str(shared), 0o777)
        cluster = Cluster(tag, size, image, host_class=LibvirtHost, host_args=(shared,),
                          options=['--privileged', '-v', '%s:%s:ro' % (guest_dir, GUEST_DIR),
                                   '-v', '%s:%s' % (shared, SHARED)],
                          tmpdir=tmp_path_factory.mktemp('%s-inventory' % tag), playbook_runner=playbook_runner)
        cluster.shared = shared
        return cluster
    return make


@pytest.fixture(scope='session')
def migration_hosts(libvirt_cluster):
    """Three libvirt hosts on a podman network of their own, set up by the kvm_host role for migration over TCP
    (kvm_host_migration_transport tcp, no authentication: test containers only): distinct host UUIDs, every
    libvirtd listening on 16509, QEMU's migration ports 49152-49215. A list of LibvirtHost with `.address` (on
    that network), `.peer_uri` (qemu+tcp://<address>/system, for the others to connect to) and `.cluster` (its
    `run_role(cluster.role_vars)` runs the role again); one directory is shared by all of them at SHARED. Each
    host's test objects (PREFIX) are removed at the end."""
    with libvirt_cluster('mig', 3) as cluster:
        cluster.role_vars = dict(MIGRATION_ROLE_VARS)
        cluster.report = cluster.run_role(cluster.role_vars)
        assert cluster.report['rc'] == 0, failed_messages(cluster.report)
        cluster.set_peer_uris('tcp')
        for host in cluster.hosts:
            host.cluster = cluster
        try:
            yield cluster.hosts
        finally:
            for host in cluster.hosts:
                host.remove_test_objects()
