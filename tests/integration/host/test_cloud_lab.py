# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""End to end: playbooks/lab.yml makes three VMs from the cloud image in the lvhost container and reaches them.

The image of scripts/build-cloud-image.sh is served by an HTTP server on the container's loopback, so
libvirt_volume downloads it by URL (the .xz, checked against SHA512SUMS) as it would from a mirror. The VMs live
on a NAT network inside the container's network namespace; this machine reaches them only through that
namespace (`nsenter --net` in an SSH ProxyCommand), and reads the container's libvirtd through its socket
(/proc/<pid>/root/...), as the inventory plugin's guide describes. The VMs boot once (about two to three minutes
under TCG for the three) and every check that needs a booted guest runs against them, in order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from virtops_cloud import build_image, ssh_keypair
from virtops_playbook_report import task_seconds
from virtops_testlib import COLLECTIONS, PREFIX, REPO, ansible_inventory

LAB = PREFIX + 'lab'
GROUP = 'tag_' + LAB.replace('-', '_')
SUBNET = '10.83.0'
IMAGES = '/srv/virtops/cloud'
PORT = 8083
IMAGE = 'debian-12-virtops-genericcloud-amd64.qcow2'
VMS = ['%s-%d' % (LAB, number) for number in (1, 2, 3)]
ADDRESSES = {name: '%s.%d' % (SUBNET, 10 + index) for index, name in enumerate(VMS)}


def changed_tasks(report, play=0):
    """Names of the tasks of one play that reported a change on some host."""
    return sorted(task['task']['name'] for task in report['plays'][play]['tasks']
                  if any(host.get('changed') for host in task['hosts'].values()))


def task_result(report, name, play=0):
    for task in report['plays'][play]['tasks']:
        if task['task']['name'] == name:
            return list(task['hosts'].values())[0]
    raise AssertionError('no task %r in %s' % (name, [t['task']['name'] for t in report['plays'][play]['tasks']]))


def failures(report):
    return ['%s: %s' % (task['task']['name'], result.get('msg'))
            for play in report['plays'] for task in play['tasks'] for result in task['hosts'].values()
            if result.get('failed') or result.get('unreachable')]


class Lab(object):
    """playbooks/lab.yml against the lvhost container, with this machine's view of its VMs."""

    def __init__(self, lvhost, workdir, key):
        self.lvhost = lvhost
        self.key = key
        pid = subprocess.run(['podman', 'inspect', '-f', '{{.State.Pid}}', lvhost.name], capture_output=True,
                             text=True, check=True).stdout.strip()
        self.proxy = 'nsenter --net=/proc/%s/ns/net nc %%h %%p' % pid
        self.ssh_options = ['-o', 'ProxyCommand=' + self.proxy, '-o', 'StrictHostKeyChecking=no',
                            '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes',
                            '-o', 'ConnectTimeout=60', '-i', str(key.private)]
        self.hypervisors = workdir / 'hypervisors.yml'
        self.hypervisors.write_text(yaml.safe_dump({'kvm_hosts': {'hosts': {lvhost.name: {
            'ansible_connection': 'containers.podman.podman', 'ansible_python_interpreter': '/usr/bin/python3'}}}}))
        self.vms = workdir / 'lab.libvirt.yml'
        self.vms.write_text(yaml.safe_dump({
            'plugin': 'virtops.hypervisor.libvirt',
            'uris': ['qemu+unix:///system?socket=/proc/%s/root/run/libvirt/libvirt-sock' % pid],
            'address_sources': ['lease'],
            'filters': ['libvirt_name.startswith(%r)' % PREFIX],
            'compose': {
                'ansible_user': "'debian'",
                'ansible_python_interpreter': "'/usr/bin/python3'",
                'ansible_ssh_private_key_file': repr(str(key.private)),
                'ansible_ssh_common_args': repr(' '.join(
                    "'%s'" % option if ' ' in option else option for option in self.ssh_options[:-2]))}}))

    def play(self, check=False, **extra):
        extra_vars = dict({
            'lab_hosts': 'kvm_hosts', 'lab_name': LAB, 'lab_subnet': SUBNET, 'lab_vm_count': len(VMS),
            'lab_image_url': 'http://127.0.0.1:%d/%s.xz' % (PORT, IMAGE),
            'lab_image_checksum': 'http://127.0.0.1:%d/SHA512SUMS' % PORT,
            'lab_ssh_public_key': self.key.public, 'lab_domain_type': 'qemu', 'lab_disk_size': '4G',
            'lab_user_data': {'write_files': [{'path': '/etc/virtops-lab', 'content': 'round 1\n'}]}}, **extra)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK='json',
                   ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'),
                   ANSIBLE_HOST_KEY_CHECKING='false')
        argv = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', str(self.hypervisors),
                '-i', str(self.vms), '-e', json.dumps(extra_vars), str(REPO / 'playbooks' / 'lab.yml')]
        proc = subprocess.run(argv + (['--check'] if check else []), capture_output=True, text=True, check=False,
                              env=env)
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError('lab.yml printed no JSON report:\n%s\n%s' % (proc.stdout[-5000:], proc.stderr))
        assert proc.returncode == 0 and not failures(report), (failures(report), proc.stderr[-3000:])
        for play in report['plays']:
            for task in play['tasks']:
                print('lab.yml%s: %6.1f s  %s' % (' --check' if check else '', task_seconds(task), task['task']['name']))
        return report

    def ssh(self, address, command):
        # Three TCG guests on two cores: sshd may take longer than one connect timeout to answer.
        for _attempt in range(3):
            proc = subprocess.run(['ssh'] + self.ssh_options + ['debian@' + address, command], capture_output=True,
                                  text=True, check=False, timeout=180)
            if proc.returncode != 255:
                break
        assert proc.returncode == 0, (address, command, proc.stderr)
        return proc.stdout.strip()

    def volumes(self):
        listing = self.lvhost.virsh('vol-list', '--pool', LAB).splitlines()[2:]
        return sorted(line.split()[0] for line in listing if line.strip())


@pytest.fixture(scope='module')
def lab(lvhost, tmp_path_factory):
    """The image served on the container's loopback; the lab made once (after a check run), for all tests here."""
    image = build_image()
    lvhost.sh('mkdir -p %s' % IMAGES)
    for name in (image.name + '.xz', 'SHA512SUMS'):
        subprocess.run(['podman', 'cp', str(image.parent / name), '%s:%s/%s' % (lvhost.name, IMAGES, name)],
                       check=True)
    lvhost.sh('systemd-run --unit=%shttp python3 -m http.server %d --bind 127.0.0.1 --directory %s'
              % (PREFIX, PORT, IMAGES))
    workdir = tmp_path_factory.mktemp('lab')
    lab = Lab(lvhost, workdir, ssh_keypair(workdir))
    lab.check_first = lab.play(check=True)
    lab.first = lab.play()
    try:
        yield lab
    finally:
        lvhost.sh('systemctl stop %shttp || true' % PREFIX, check=False)


def test_the_check_run_on_a_fresh_host_predicts_what_the_first_run_changes(lab):
    changed = changed_tasks(lab.first)
    assert 'Converge the VMs and wait until each answers on SSH' in changed
    assert changed_tasks(lab.check_first) == changed
    # No VM exists yet when the check run reads the inventory again: its second play has no hosts.
    assert lab.check_first['plays'][1]['tasks'] == []


def test_each_vm_has_its_reserved_address_and_its_cloud_init_data(lab):
    converged = task_result(lab.first, 'Converge the VMs and wait until each answers on SSH')
    assert {item['name']: item['address'] for item in converged['domains']} == ADDRESSES
    for name, address in ADDRESSES.items():
        hostname, content, root_mib, status, sudo = lab.ssh(
            address, 'hostname; cat /etc/virtops-lab; df --output=size -B1M / | tail -n 1; '
                     'cloud-init status --wait | tail -n 1; sudo -n id -un').splitlines()
        assert (hostname, content, status, sudo) == (name, 'round 1', 'status: done', 'root')
        # cloud-init grew the root file system to the overlay's 4 GiB.
        assert int(root_mib.strip()) > 3000


def test_the_guest_agents_answer_and_report_the_addresses_too(lab):
    info = lab.lvhost.run_module('libvirt_domain_info', {'name': VMS})
    assert not info.get('failed'), info
    for domain in info['domains']:
        assert domain['guest_agent'] == 'connected', domain
        sources = {entry['source'] for interface in domain['interfaces'] for entry in interface['addresses']
                   if entry['address'] == ADDRESSES[domain['name']]}
        assert sources >= {'lease', 'agent'}, domain['interfaces']


def test_the_overlays_share_the_downloaded_image(lab):
    assert lab.volumes() == sorted([IMAGE] + ['%s.qcow2' % name for name in VMS] + ['%s-cidata.iso' % name for name in VMS])
    for name in VMS:
        info = json.loads(lab.lvhost.sh('qemu-img info -U --output=json /var/lib/libvirt/images/%s/%s.qcow2'
                                        % (LAB, name)).stdout)
        assert info['backing-filename'].endswith(IMAGE)
        assert info['virtual-size'] == 4 << 30


def test_the_inventory_plugin_lists_them_and_ansible_reaches_them(lab):
    inventory, stderr = ansible_inventory(lab.vms)[:2]
    assert 'WARNING' not in stderr, stderr
    assert sorted(inventory[GROUP]['hosts']) == VMS
    assert {name: inventory['_meta']['hostvars'][name]['ansible_host'] for name in VMS} == ADDRESSES
    pinged = task_result(lab.first, 'Ping each VM through Ansible\'s SSH connection', play=1)
    assert pinged['ping'] == 'pong'
    assert sorted(lab.first['plays'][1]['tasks'][0]['hosts']) == VMS


def test_a_rerun_and_a_check_rerun_change_nothing(lab):
    assert changed_tasks(lab.play()) == []
    assert changed_tasks(lab.play(check=True)) == []


def test_changed_user_data_waits_for_a_restart_then_the_guest_sees_it(lab):
    vms = [{'name': name} for name in VMS]
    vms[0]['user_data'] = {'write_files': [{'path': '/etc/virtops-lab', 'content': 'round 2\n'}]}
    pending = task_result(lab.play(lab_vms=vms), 'Converge the VMs and wait until each answers on SSH')
    first = pending['domains'][0]
    assert first['restart_required'] is True, first
    assert [item['name'] for item in pending['domains'] if item.get('restart_required')] == [VMS[0]]
    assert lab.ssh(ADDRESSES[VMS[0]], 'cat /etc/virtops-lab') == 'round 1'
    restarted = lab.play(lab_vms=vms, lab_apply='restart')
    assert 'Converge the VMs and wait until each answers on SSH' in changed_tasks(restarted)
    assert lab.ssh(ADDRESSES[VMS[0]], 'cat /etc/virtops-lab') == 'round 2'
    assert lab.ssh(ADDRESSES[VMS[1]], 'cat /etc/virtops-lab') == 'round 1'
    assert changed_tasks(lab.play(lab_vms=vms)) == []


def test_absent_removes_the_vms_overlays_and_seeds_but_keeps_the_image(lab):
    lab.play(lab_state='absent')
    assert [name for name in lab.lvhost.virsh('list', '--all', '--name').split() if name.startswith(LAB)] == []
    assert lab.volumes() == [IMAGE]
    assert changed_tasks(lab.play(lab_state='absent')) == []
