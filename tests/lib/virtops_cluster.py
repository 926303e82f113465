# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Several libvirt host containers on a podman network of their own, set up as one inventory by the kvm_host role.

For migration: every container runs libvirtd (scripts/build-libvirt-image.sh, privileged, systemd as PID 1) and
has a fixed address on a podman network whose name starts with the test PREFIX and whose subnet (10.90.<n>.0/24)
no other podman network uses. The containers reach each other over that network only; libvirt's objects and the
guests live in the containers' namespaces. The role runs on all of them in one ansible-playbook run (podman
connection), from a small inventory file, so that it sees every peer as a migration transport needs.

    with Cluster('mig', 3, image, host_class=LibvirtHost, mounts=[...]) as cluster:
        report = cluster.run_role({'kvm_host_migration': True, ...})
        cluster.hosts[0].virsh('-c', cluster.hosts[1].peer_uri, 'hostname')
"""

from __future__ import annotations

import ipaddress
import json
import random
import subprocess
import time
import uuid

import yaml

from virtops_containers import PodmanHost, remove_container, start_container
from virtops_testlib import PREFIX, run_playbook

GROUP = 'kvm_hosts'
# Where the free /24 for a cluster is looked for.
SUBNET_POOL = ipaddress.ip_network('10.90.0.0/16')
# What the kvm_host role needs in these containers (privileged, but no KVM that runs guests: TCG).
CONTAINER_ROLE_VARS = {
    'kvm_host_allow_emulation': True,
    # The image's qemu.conf settings: the role owns the file once it writes migration ports into it.
    'kvm_host_qemu_conf': {'remember_owner': 0, 'cgroup_controllers': []},
}
URI_FORMATS = {
    'tcp': 'qemu+tcp://{address}/system',
    'tls': 'qemu+tls://{address}/system',
    'ssh': 'qemu+ssh://root@{address}/system',
}


def podman_subnets():
    """The IPv4 subnets of every podman network on this machine."""
    names = subprocess.run(['podman', 'network', 'ls', '--format', '{{.Name}}'], capture_output=True, text=True,
                           check=True).stdout.split()
    if not names:
        return []
    inspected = json.loads(subprocess.run(['podman', 'network', 'inspect'] + names, capture_output=True, text=True,
                                          check=True).stdout)
    subnets = []
    for network in inspected:
        # podman 4 prints "subnets" (netavark and CNI alike); keep the IPv4 ones.
        for entry in network.get('subnets') or []:
            subnet = ipaddress.ip_network(entry['subnet'], strict=False)
            if subnet.version == 4:
                subnets.append(subnet)
    return subnets


def free_subnet():
    used = podman_subnets()
    for candidate in SUBNET_POOL.subnets(new_prefix=24):
        if not any(candidate.overlaps(subnet) for subnet in used):
            return candidate
    raise AssertionError('no free /24 in %s for a test network' % SUBNET_POOL)


class Cluster(object):
    """N containers of one image on a podman network made for them; a context manager that removes both."""

    def __init__(self, tag, size, image, host_class=PodmanHost, options=(), host_args=(), tmpdir=None,
                 playbook_runner=None):
        suffix = uuid.uuid4().hex[:6]
        self.tag = tag
        self.network = '%s%s-net-%s' % (PREFIX, tag, suffix)
        self.names = ['%s%s-%d-%s' % (PREFIX, tag, index + 1, suffix) for index in range(size)]
        self.image = image
        self.options = list(options)
        self.host_class = host_class
        self.host_args = tuple(host_args)
        self.tmpdir = tmpdir
        self.playbook_runner = playbook_runner or run_playbook
        self.subnet = None
        self.hosts = []
        self.inventory = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc):
        self.remove()

    def start(self):
        self.create_network()
        for index, name in enumerate(self.names):
            address = str(self.subnet.network_address + 10 + index)
            start_container(name, self.image, ['--network', self.network, '--ip', address, '--hostname', name]
                            + self.options)
            host = self.host_class(name, *self.host_args, playbook_runner=self.playbook_runner)
            host.address = address
            self.hosts.append(host)
        self.write_inventory()

    def create_network(self, tries=5):
        """The podman network on a free /24; another cluster started at the same moment may take the one found
        first, so a refused subnet is looked for again."""
        for _attempt in range(tries):
            self.subnet = free_subnet()
            gateway = str(self.subnet.network_address + 1)
            proc = subprocess.run(['podman', 'network', 'create', '--subnet', str(self.subnet), '--gateway', gateway,
                                   self.network], capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                return
            time.sleep(random.uniform(0.5, 2))
        raise AssertionError('podman network create %s failed %d times: %s' % (self.network, tries, proc.stderr))

    def write_inventory(self, host_vars=None):
        """The inventory file: every container in the group kvm_hosts, reached through podman."""
        host_vars = host_vars or {}
        hosts = {}
        for host in self.hosts:
            hosts[host.name] = dict({'ansible_connection': 'containers.podman.podman',
                                     'ansible_python_interpreter': '/usr/bin/python3'}, **host_vars.get(host.name, {}))
        self.inventory = self.tmpdir / ('%s.inventory.yml' % self.network)
        self.inventory.write_text(yaml.safe_dump({GROUP: {'hosts': hosts}}))
        return self.inventory

    def run_playbook(self, playbook, extra_vars, check=False):
        """A playbook of this repository on all the containers at once; the JSON report with `rc`."""
        return self.playbook_runner(playbook, extra_vars, check=check, host=GROUP, inventory=self.inventory)

    def run_role(self, role_vars, check=False):
        """playbooks/kvm_hosts.yml on every container, with CONTAINER_ROLE_VARS under role_vars."""
        return self.run_playbook('kvm_hosts.yml', dict(CONTAINER_ROLE_VARS, **role_vars), check=check)

    def set_peer_uris(self, transport):
        for host in self.hosts:
            host.peer_uri = URI_FORMATS[transport].format(address=host.address)

    def remove(self):
        for name in self.names:
            remove_container(name)
        subprocess.run(['podman', 'network', 'rm', '-f', self.network], capture_output=True, check=False)
