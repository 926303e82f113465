# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Move 3 running VMs off a host: one virtops.hypervisor.libvirt_migration task (a batch, all three at once, and
one at a time) against a loop of `virsh migrate --live --copy-storage-all` (one after the other), side by side.

Two libvirt hosts in privileged containers of scripts/build-libvirt-image.sh on a podman network of their own
(tests/lib/virtops_cluster.py), set up for migration over TCP by the kvm_host role. Three guests of 256 MiB (the
kernel of scripts/build-guest.sh, TCG), each with a 256 MiB qcow2 disk holding 64 MiB of random data, run on the
first host. Each round runs the three variants, each moving the guests to the other host, in an order that
rotates every round. Measured per variant: the time of the move task (from the JSON report) and the guests'
downtime (libvirt's job statistics: the module's `job.downtime_ms`, `virsh domjobinfo --completed` for the
loop). Medians of BENCH_RUNS rounds (default 3) as a markdown table; Ratio = loop time / module time.

Usage (root, from the repo root, after make collection): BENCH_RUNS=3 .venv/bin/python bench/migration/run.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / 'tests' / 'lib'))
# pylint: disable=wrong-import-position
from virtops_cluster import Cluster  # noqa: E402
from virtops_containers import PodmanHost, build_image  # noqa: E402
from virtops_playbook_report import task_seconds  # noqa: E402
from virtops_testlib import failed_messages  # noqa: E402

GUESTS = ['bench-mig-%d' % number for number in (1, 2, 3)]
POOL = 'bench-mig'
POOL_DIR = '/var/lib/libvirt/images/bench-mig'
GUEST_DIR = '/srv/virtops/guest'
ROLE_VARS = {'kvm_host_migration': True, 'kvm_host_migration_transport': 'tcp',
             'kvm_host_libvirtd_allow_insecure': True}
VARIANTS = {  # name: (playbook, concurrency, the task that moves)
    'module': ('module', len(GUESTS), 'Move every bench guest live with its disk'),
    'module-serial': ('module', 1, 'Move every bench guest live with its disk'),
    'loop': ('loop', None, 'Move each bench guest live with its disk'),
}


def check(result, what):
    if result.get('failed'):
        sys.exit('bench/migration: %s failed: %s' % (what, result.get('msg')))
    return result


def set_up_guests(source, hosts):
    for host in hosts:
        check(host.run_module('libvirt_pool', {'name': POOL, 'type': 'dir', 'target': POOL_DIR, 'state': 'active'}),
              'the pool on %s' % host.name)
    source.sh('for guest in %s; do head -c 64M /dev/urandom >/tmp/$guest.raw; '
              'qemu-img convert -q -O qcow2 /tmp/$guest.raw %s/$guest.qcow2; rm /tmp/$guest.raw; '
              'qemu-img resize -q %s/$guest.qcow2 256M; done; virsh -q pool-refresh %s >/dev/null'
              % (' '.join(GUESTS), POOL_DIR, POOL_DIR, POOL))
    check(source.run_module('libvirt_domain', {'domains': [{
        'name': guest, 'domain_type': 'qemu', 'memory': 256, 'vcpus': 1,
        'boot': {'kernel': GUEST_DIR + '/vmlinuz', 'initrd': GUEST_DIR + '/initrd.img',
                 'cmdline': 'console=ttyS0 quiet'},
        'disks': [{'volume': {'pool': POOL, 'name': guest + '.qcow2'}}]} for guest in GUESTS], 'state': 'running'}),
        'the guests')


def move(cluster, variant, source, destination):
    """Run the variant's playbook on source; (seconds of the move task, [downtime ms per guest])."""
    playbook, concurrency, move_task = VARIANTS[variant]
    report = cluster.playbook_runner(str(TOP / 'bench' / 'migration' / (playbook + '.yml')), {
        'bench_source': source.name, 'bench_guests': GUESTS, 'bench_destination_uri': destination.peer_uri,
        'bench_destination_address': destination.address, 'bench_concurrency': concurrency},
        host=source.name, inventory=cluster.inventory)
    if report['rc'] != 0:
        sys.exit('bench/migration: %s.yml from %s failed: %s' % (variant, source.name, failed_messages(report)))
    tasks = {task['task']['name']: task for task in report['plays'][0]['tasks']}
    downtimes = [int(item['msg'].split()[-1]) for item in
                 next(iter(tasks['Report each guest\'s downtime']['hosts'].values()))['results']]
    running = destination.exec(['virsh', 'list', '--name']).stdout.split()
    if sorted(running) != GUESTS:
        sys.exit('bench/migration: after %s the destination runs %s' % (variant, running))
    return task_seconds(tasks[move_task]), downtimes


def main():
    runs = int(os.environ.get('BENCH_RUNS', '3'))
    image = build_image('build-libvirt-image.sh', TOP)
    guest_dir = subprocess.run([str(TOP / 'scripts' / 'build-guest.sh')], capture_output=True, text=True,
                               check=True).stdout.split()[-1]
    results = dict((variant, []) for variant in VARIANTS)
    with tempfile.TemporaryDirectory(prefix='virtops-bench-migration-') as tmpdir, \
            Cluster('bench-mig', 2, image, host_class=PodmanHost, tmpdir=Path(tmpdir),
                    options=['--privileged', '-v', '%s:%s:ro' % (guest_dir, GUEST_DIR)]) as cluster:
        report = cluster.run_role(ROLE_VARS)
        if report['rc'] != 0:
            sys.exit('bench/migration: the kvm_host role failed: %s' % failed_messages(report))
        cluster.set_peer_uris('tcp')
        a, b = cluster.hosts
        set_up_guests(a, cluster.hosts)
        here, there = a, b
        names = list(VARIANTS)
        for number in range(runs):
            for variant in names[number % 3:] + names[:number % 3]:
                seconds, downtimes = move(cluster, variant, here, there)
                results[variant].append((seconds, downtimes))
                print('round %d: %-13s %s -> %s: %.2f s, downtime %s ms' % (
                    number + 1, variant, here.name, there.name, seconds, downtimes), file=sys.stderr)
                here, there = there, here
    seconds = dict((variant, statistics.median(took for took, _downtimes in results[variant])) for variant in VARIANTS)
    downtime = dict((variant, statistics.median(ms for _took, downtimes in results[variant] for ms in downtimes))
                    for variant in VARIANTS)
    print('| Move 3 running VMs (256 MiB, 64 MiB of disk data each), median of %d | Move task | Ratio | '
          'Downtime per guest |' % runs)
    print('| --- | --- | --- | --- |')
    labels = (('module', 'libvirt_migration, concurrency 3'), ('module-serial', 'libvirt_migration, concurrency 1'),
              ('loop', 'virsh migrate loop'))
    for variant, label in labels:
        print('| %s | %.2f s | %.2f | %d ms |' % (label, seconds[variant], seconds['loop'] / seconds[variant],
                                                  downtime[variant]))


if __name__ == '__main__':
    main()
