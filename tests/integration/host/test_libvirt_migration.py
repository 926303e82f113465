# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_migration between the three libvirt hosts of `migration_hosts` (conftest.py): containers on a podman
network of their own, set up for migration by the kvm_host role (TCP transport, distinct host UUIDs).

A cloud VM (scripts/build-cloud-image.sh) boots once on host A, reached over SSH through the namespace of the
host it runs on, and a counter runs in it from then on; every move checks that the guest kept running: the same
boot_id, the same counter process, a higher count. Its disk is an overlay on the cloud image in a directory all
three hosts share (a pool on each), its cloud-init seed and overlay are local to the host. Small guests (the
kernel of scripts/build-guest.sh, no disk to boot from) cover offline moves, shared storage and a batch. The
tests run in order: each starts where the one before left the guests.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from virtops_cloud import build_image, ssh_keypair
from virtops_testlib import PREFIX

NETWORK = PREFIX + 'mig'
LOCAL_POOL = PREFIX + 'mig-local'
SHARED_POOL = PREFIX + 'mig-shared'
LOCAL_DIR = '/var/lib/libvirt/images/' + LOCAL_POOL
SUBNET = '10.86.0'
VM = PREFIX + 'mig-cloud'
VM_MAC = '52:54:00:86:00:10'
VM_ADDRESS = SUBNET + '.10'
IMAGE = 'debian-12-virtops-genericcloud-amd64.qcow2'
# conftest.SHARED: the directory of the cluster that every host sees.
SHARED_MOUNT = '/srv/virtops/shared'
SMALL = [PREFIX + 'mig-small-%d' % number for number in (1, 2, 3, 4)]
OVERLAID = PREFIX + 'mig-overlaid'
BASE = PREFIX + 'mig-base.qcow2'


def ok(result):
    assert result.get('failed') is not True, result.get('msg', result)
    return result


class Guests(object):
    """The cluster as the tests use it: three hosts, their storage and network, and the cloud VM's view."""

    def __init__(self, hosts, key, shared_dir):
        self.a, self.b, self.c = hosts
        self.hosts = hosts
        self.key = key
        self.shared_dir = shared_dir

    def pid(self, host):
        return subprocess.run(['podman', 'inspect', '-f', '{{.State.Pid}}', host.name], capture_output=True,
                              text=True, check=True).stdout.strip()

    def ssh(self, host, command, attempts=12):
        # Under load (both lanes of make test) a moved TCG guest has answered late: nc gives up on a connection
        # after 20 s, and the guest gets attempts tries, 5 s apart; a failure shows what the host sees of it.
        options = ['-o', 'ProxyCommand=nsenter --net=/proc/%s/ns/net nc -w 20 %%h %%p' % self.pid(host),
                   '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
                   '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=30', '-i', str(self.key.private)]
        for _attempt in range(attempts):
            try:
                proc = subprocess.run(['ssh'] + options + ['debian@' + VM_ADDRESS, command], capture_output=True,
                                      text=True, check=False, timeout=90)
            except subprocess.TimeoutExpired as exc:
                proc = subprocess.CompletedProcess(exc.cmd, 255, '', 'timed out after 90 s')
            if proc.returncode != 255:
                break
            time.sleep(5)
        seen = host.sh('virsh domstate %s; ip neigh show %s; virsh net-dhcp-leases %s' % (VM, VM_ADDRESS, NETWORK),
                       check=False).stdout if proc.returncode != 0 else ''
        assert proc.returncode == 0, (host.name, command, proc.stderr, seen)
        return proc.stdout.strip()

    def liveness(self, host):
        """(boot_id, counter pid, count) of the cloud VM, read over SSH through host's namespace."""
        boot_id, pid, count = self.ssh(host, 'cat /proc/sys/kernel/random/boot_id; cat /dev/shm/counter.pid; '
                                             'cat /dev/shm/counter').splitlines()
        return boot_id, pid, int(count)

    def state(self, host, name):
        """virsh domstate and whether the domain is persistent on host, or (None, None)."""
        proc = host.exec(['virsh', 'domstate', name])
        if proc.returncode != 0:
            return None, None
        persistent = host.virsh('dominfo', name).split('Persistent:')[1].split()[0]
        return proc.stdout.strip(), persistent == 'yes'

    def volumes(self, host):
        listing = host.virsh('vol-list', '--pool', LOCAL_POOL).splitlines()[2:]
        return sorted(line.split()[0] for line in listing if line.strip())

    def migrate(self, host, check=False, **args):
        return host.run_module('libvirt_migration', args, check=check)


@pytest.fixture(scope='module')
def guests(migration_hosts, tmp_path_factory):
    hosts = migration_hosts
    cluster = hosts[0].cluster
    image = build_image()
    shared_dir = cluster.shared / 'cloud'
    shared_dir.mkdir(exist_ok=True)
    if not (shared_dir / IMAGE).exists():
        shutil.copyfile(str(image), str(shared_dir / IMAGE))
    key = ssh_keypair(tmp_path_factory.mktemp('migration-key'))
    view = Guests(hosts, key, shared_dir)
    for host in hosts:
        ok(host.run_module('libvirt_network', {
            'name': NETWORK, 'forward': 'nat', 'state': 'active',
            'ipv4': {'address': SUBNET + '.1', 'prefix': 24, 'dhcp': {
                'range': {'start': SUBNET + '.100', 'end': SUBNET + '.199'},
                'hosts': [{'mac': VM_MAC, 'ip': VM_ADDRESS, 'name': VM}]}}}))
        ok(host.run_module('libvirt_pool', {'pools': [
            {'name': LOCAL_POOL, 'type': 'dir', 'target': LOCAL_DIR, 'state': 'active'},
            {'name': SHARED_POOL, 'type': 'dir', 'target': SHARED_MOUNT + '/cloud', 'state': 'active'}]}))
    a = view.a
    ok(a.run_module('libvirt_volume', {'pool': LOCAL_POOL, 'name': VM + '.qcow2', 'capacity': '4G',
                                       'backing': {'volume': IMAGE, 'pool': SHARED_POOL}}))
    booted = ok(a.run_module('libvirt_domain', {
        'name': VM, 'domain_type': 'qemu', 'memory': 1024, 'vcpus': 1, 'serial_console': True, 'guest_agent': True,
        'disks': [{'volume': {'pool': LOCAL_POOL, 'name': VM + '.qcow2'}}],
        'interfaces': [{'type': 'network', 'network': NETWORK, 'mac': VM_MAC}],
        'cloud_init': {'user_data': {'users': ['default'], 'ssh_authorized_keys': [key.public]}},
        'state': 'running', 'wait_for': 'ssh', 'wait_timeout': 600}))
    assert booted['address'] == VM_ADDRESS, booted
    view.ssh(a, "nohup setsid sh -c 'echo $$ >/dev/shm/counter.pid; i=0; while :; do i=$((i+1)); "
                "echo $i >/dev/shm/counter; sleep 0.2; done' >/dev/null 2>&1 </dev/null & sleep 1")
    view.first_liveness = view.liveness(a)
    return view


def assert_kept_running(guests, host, before):
    boot_id, pid, count = guests.liveness(host)
    assert (boot_id, pid) == before[:2], 'the guest restarted: %s -> %s' % (before, (boot_id, pid, count))
    assert count > before[2]
    return boot_id, pid, count


def test_a_check_run_says_what_would_move_and_moves_nothing(guests):
    result = ok(guests.migrate(guests.a, check=True, name=VM, destination=guests.b.peer_uri, storage='copy'))
    assert result['changed'] is True
    assert result['actions'] == [
        'create an empty qcow2 image on %s for disk vda (%s/%s.qcow2)' % (guests.b.name, LOCAL_DIR, VM),
        'copy cdrom hda (%s/%s-cidata.iso) to %s' % (LOCAL_DIR, VM, guests.b.name),
        'migrate %s live to %s with storage copy' % (VM, guests.b.name)]
    assert result['migrations'][0]['status'] == 'moved'
    assert result['diff']['after'] == '%s: running on %s\n' % (VM, guests.b.name)
    assert guests.state(guests.a, VM) == ('running', True)
    assert guests.state(guests.b, VM) == (None, None)
    assert guests.volumes(guests.b) == []


def test_a_live_move_with_storage_copy_keeps_the_guest_running(guests):
    before = guests.liveness(guests.a)
    result = ok(guests.migrate(guests.a, name=VM, destination=guests.b.peer_uri, storage='copy'))
    assert result['changed'] is True and result['source'] == guests.a.name and result['destination'] == guests.b.name
    moved = result['migrations'][0]
    assert (moved['status'], moved['state'], moved['persistent']) == ('moved', 'running', True)
    job = moved['job']
    print('live move with storage copy: %s' % job)
    assert job['memory_iterations'] >= 1 and job['downtime_ms'] > 0 and job['data_transferred'] > 0
    assert guests.state(guests.b, VM) == ('running', True)
    assert guests.state(guests.a, VM) == (None, None)
    assert guests.volumes(guests.b) == sorted([VM + '.qcow2', VM + '-cidata.iso'])
    guests.last = assert_kept_running(guests, guests.b, before)
    # The flattened copy no longer needs the shared image.
    info = guests.b.sh('qemu-img info -U %s/%s.qcow2' % (LOCAL_DIR, VM)).stdout
    assert 'backing file' not in info


def test_a_rerun_and_a_check_rerun_find_it_moved(guests):
    for check in (False, True):
        result = ok(guests.migrate(guests.a, check=check, name=VM, destination=guests.b.peer_uri, storage='copy'))
        assert result['changed'] is False and result['actions'] == []
        assert result['migrations'][0]['status'] == 'present'


def test_a_move_that_times_out_is_aborted_and_the_guest_stays(guests):
    before = guests.liveness(guests.b)
    result = guests.migrate(guests.b, name=VM, destination=guests.c.peer_uri, storage='copy', bandwidth=1, timeout=3)
    assert result['failed'] is True and result['changed'] is False
    assert 'did not finish in 3 s: the job was aborted after' in result['msg']
    assert '%s is running on %s' % (VM, guests.b.name) in result['msg']
    failed = result['migrations'][0]
    assert failed['status'] == 'failed' and failed['actions'] == []
    assert failed['removed_again'] == [
        'create an empty qcow2 image on %s for disk vda (%s/%s.qcow2)' % (guests.c.name, LOCAL_DIR, VM),
        'copy cdrom hda (%s/%s-cidata.iso) to %s' % (LOCAL_DIR, VM, guests.c.name)]
    assert guests.state(guests.c, VM) == (None, None)
    # What the module had created on C for the move is gone again.
    assert guests.volumes(guests.c) == []
    guests.last = assert_kept_running(guests, guests.b, before)


def test_an_unreachable_or_refusing_destination_is_a_clear_error(guests):
    for uri, reason in (('qemu+tcp://%s.250/system' % guests.c.address.rsplit('.', 1)[0], ''),
                        ('qemu+tcp://%s:1/system' % guests.c.address, 'Connection refused')):
        result = guests.migrate(guests.b, name=VM, destination=uri)
        assert result['failed'] is True and result['changed'] is False
        assert result['msg'].startswith('cannot connect to the destination %s: ' % uri), result['msg']
        assert reason in result['msg'] and 'Nothing was moved' in result['msg']
    assert guests.state(guests.b, VM) == ('running', True)


def test_blocked_migration_ports_fail_the_preflight(guests):
    guests.c.sh('iptables -I INPUT -p tcp --dport 49152:49215 -j DROP')
    try:
        result = guests.migrate(guests.b, name=VM, destination=guests.c.peer_uri, storage='copy')
    finally:
        guests.c.sh('iptables -D INPUT -p tcp --dport 49152:49215 -j DROP')
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'].startswith('preflight from %s to %s failed, nothing was moved: ' % (guests.b.name, guests.c.name))
    assert 'the migration port %s:49152 on %s does not answer from %s' % (guests.c.address, guests.c.name,
                                                                          guests.b.name) in result['msg']
    assert guests.volumes(guests.c) == []


def set_host_uuid(host, value):
    host.sh("sed -i '/^host_uuid/d' /etc/libvirt/libvirtd.conf; echo 'host_uuid = \"%s\"' >> /etc/libvirt/libvirtd.conf;"
            " systemctl restart libvirtd; sleep 1; virsh uri >/dev/null" % value)


def test_hosts_with_the_same_host_uuid_are_refused(guests):
    config = guests.c.read_file('/etc/libvirt/libvirtd.conf')
    own = [line.split('"')[1] for line in config.splitlines() if line.startswith('host_uuid')][0]
    theirs = guests.b.virsh('capabilities').split('<uuid>')[1].split('<')[0]
    set_host_uuid(guests.c, theirs)
    try:
        result = guests.migrate(guests.b, name=VM, destination=guests.c.peer_uri, storage='copy', check=True)
    finally:
        set_host_uuid(guests.c, own)
    assert result['failed'] is True and result['changed'] is False
    assert 'report the same host UUID %s' % theirs in result['msg'] and 'host_uuid' in result['msg']


def test_the_cloud_vm_moves_back_into_the_copy_left_on_a(guests):
    before = guests.liveness(guests.b)
    # The first move left the overlay and the seed behind on A (a move never removes the source's files).
    assert guests.volumes(guests.a) == sorted([VM + '.qcow2', VM + '-cidata.iso'])
    refused = guests.migrate(guests.b, name=VM, destination=guests.a.peer_uri, storage='copy_incremental')
    assert refused['failed'] is True and refused['changed'] is False
    assert 'disk vda is a volume (%s/%s.qcow2): libvirt cannot copy a volume disk with copy_incremental' \
        % (LOCAL_POOL, VM) in refused['msg']
    # With storage copy the old files fit (same format and size): libvirt copies the whole disk into them.
    result = ok(guests.migrate(guests.b, name=VM, destination=guests.a.peer_uri, storage='copy'))
    assert result['actions'] == ['migrate %s live to %s with storage copy' % (VM, guests.a.name)]
    assert guests.state(guests.a, VM) == ('running', True)
    guests.last = assert_kept_running(guests, guests.a, before)


def small_guest(host, name, pool, guest_dir, state='running'):
    ok(host.run_module('libvirt_volume', {'pool': pool, 'name': name + '.qcow2', 'capacity': '64M'}))
    ok(host.run_module('libvirt_domain', {
        'name': name, 'domain_type': 'qemu', 'memory': 128, 'vcpus': 1,
        'boot': {'kernel': '%s/vmlinuz' % guest_dir, 'initrd': '%s/initrd.img' % guest_dir,
                 'cmdline': 'console=ttyS0 quiet'},
        'disks': [{'volume': {'pool': pool, 'name': name + '.qcow2'}}], 'state': state}))


def test_an_offline_move_copies_the_files_and_the_guest_starts_there(guests):
    a, c = guests.a, guests.c
    small_guest(a, SMALL[0], LOCAL_POOL, a.guest_dir, state='present')
    args = dict(name=SMALL[0], destination=c.peer_uri, mode='offline', storage='copy')
    first = ok(guests.migrate(a, check=True, **args))
    assert first['actions'] == ['copy disk vda (%s/%s.qcow2) to %s' % (LOCAL_DIR, SMALL[0], c.name),
                                'migrate %s offline to %s with storage copy' % (SMALL[0], c.name)]
    assert guests.state(c, SMALL[0]) == (None, None)
    real = ok(guests.migrate(a, **args))
    assert real['actions'] == first['actions']
    assert guests.state(c, SMALL[0]) == ('shut off', True) and guests.state(a, SMALL[0]) == (None, None)
    assert SMALL[0] + '.qcow2' in guests.volumes(c)
    c.virsh('start', SMALL[0])
    assert guests.state(c, SMALL[0])[0] == 'running'
    assert ok(guests.migrate(a, **args))['changed'] is False
    assert ok(guests.migrate(a, check=True, **args))['changed'] is False


def test_a_running_domain_is_refused_offline_and_a_shut_off_one_live(guests):
    a, c = guests.a, guests.c
    refused = guests.migrate(a, name=VM, destination=c.peer_uri, mode='offline', storage='copy')
    assert refused['failed'] is True and 'is running on %s: an offline move takes a shut-off domain' % a.name \
        in refused['msg']
    c.virsh('destroy', SMALL[0])
    refused = guests.migrate(c, name=SMALL[0], destination=a.peer_uri, storage='copy')
    assert refused['failed'] is True and 'is shutoff on %s: live migration moves running domains' % c.name \
        in refused['msg']


def test_storage_shared_moves_a_guest_whose_disk_all_hosts_see(guests):
    a, c = guests.a, guests.c
    small_guest(a, SMALL[1], SHARED_POOL, a.guest_dir)
    # The shared directory is a bind mount libvirt cannot tell from local storage: it refuses without unsafe.
    refused = guests.migrate(a, name=SMALL[1], destination=c.peer_uri, storage='shared')
    assert refused['failed'] is True and 'use storage copy, or unsafe=true' in refused['msg']
    result = ok(guests.migrate(a, name=SMALL[1], destination=c.peer_uri, storage='shared', unsafe=True))
    assert result['actions'] == ['migrate %s live to %s' % (SMALL[1], c.name)]
    assert guests.state(c, SMALL[1]) == ('running', True)


def test_copy_incremental_moves_the_overlay_onto_the_backing_file_there(guests):
    a, c = guests.a, guests.c
    ok(a.run_module('libvirt_volume', {'volumes': [
        {'pool': SHARED_POOL, 'name': BASE, 'capacity': '64M'},
        {'pool': LOCAL_POOL, 'name': OVERLAID + '.qcow2', 'capacity': '64M',
         'backing': {'volume': BASE, 'pool': SHARED_POOL}}]}))
    overlay = '%s/%s.qcow2' % (LOCAL_DIR, OVERLAID)
    ok(a.run_module('libvirt_domain', {
        'name': OVERLAID, 'domain_type': 'qemu', 'memory': 128, 'vcpus': 1,
        'boot': {'kernel': '%s/vmlinuz' % a.guest_dir, 'initrd': '%s/initrd.img' % a.guest_dir,
                 'cmdline': 'console=ttyS0 quiet'},
        'disks': [{'path': overlay}], 'state': 'running'}))
    base = '%s/cloud/%s' % (SHARED_MOUNT, BASE)
    first, real, _rerun, _check_rerun = a.four_ways('libvirt_migration', dict(
        name=OVERLAID, destination=c.peer_uri, storage='copy_incremental'))
    assert real['actions'] == ['create an overlay on %s on %s for disk vda (%s)' % (base, c.name, overlay),
                               'migrate %s live to %s with storage copy_incremental' % (OVERLAID, c.name)]
    assert guests.state(c, OVERLAID) == ('running', True)
    assert 'backing file: %s' % base in c.sh('qemu-img info -U %s' % overlay).stdout


def test_a_batch_moves_guests_at_once_and_a_guest_on_both_hosts_is_refused(guests):
    a, b, c = guests.a, guests.b, guests.c
    batch = SMALL[2:]
    for name in batch:
        small_guest(b, name, LOCAL_POOL, b.guest_dir)
    result = ok(guests.migrate(b, domains=batch, destination=a.peer_uri, storage='copy', concurrency=2))
    assert [item['status'] for item in result['migrations']] == ['moved', 'moved']
    assert all(item['job']['memory_iterations'] >= 1 for item in result['migrations'])
    for name in batch:
        assert guests.state(a, name) == ('running', True) and guests.state(b, name) == (None, None)
    rerun = ok(guests.migrate(b, domains=batch, destination=a.peer_uri, storage='copy', concurrency=2))
    assert rerun['changed'] is False and [item['status'] for item in rerun['migrations']] == ['present', 'present']
    # A stale definition on the destination: refused, naming both hosts, and nothing of the batch moves.
    xml = a.virsh('dumpxml', '--inactive', batch[1])
    c.exec(['virsh', 'define', '/dev/stdin'], check=True, input=xml)
    refused = guests.migrate(a, domains=batch, destination=c.peer_uri, storage='copy')
    assert refused['failed'] is True and refused['changed'] is False
    assert '%s: defined on both %s (running) and %s (shutoff)' % (batch[1], a.name, c.name) in refused['msg']
    assert guests.state(c, batch[0]) == (None, None)
