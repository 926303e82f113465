# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/evacuate_host.yml and playbooks/rolling_maintenance.yml on the three libvirt hosts of
`migration_hosts` (conftest.py): containers on a podman network of their own, reaching each other's libvirtd over
TCP. Each host's `libvirt_migration_uri` is its qemu+tcp URI (a host variable of the inventory).

Small guests (the kernel of scripts/build-guest.sh, a 64 MiB disk in a dir pool of this file's own) start on host
A: three running, two of them in one anti-affinity group, and one shut off. The playbooks only look at domains
named PREFIX + 'evac-' (evacuate_name_pattern), so what test_libvirt_migration.py leaves on the hosts does not
move. The tests run in order: each starts where the one before left the guests.
"""

from __future__ import annotations

import re
import time

import pytest

from virtops_testlib import PREFIX, failed_messages

POOL = PREFIX + 'evac'
POOL_DIR = '/var/lib/libvirt/images/' + POOL
BIG = PREFIX + 'evac-big'
RED = [PREFIX + 'evac-red-1', PREFIX + 'evac-red-2']
OFF = PREFIX + 'evac-off'
RUNNING = {BIG: (192, []), RED[0]: (128, ['anti-affinity:red']), RED[1]: (128, ['anti-affinity:red'])}
ALL = sorted(list(RUNNING) + [OFF])
PATTERN = re.escape(PREFIX) + 'evac-'
MARKER = '/root/%sevac-maintained' % PREFIX


def ok(result):
    assert result.get('failed') is not True, result.get('msg', result)
    return result


def guest(host, name, memory, tags, state):
    ok(host.run_module('libvirt_volume', {'pool': POOL, 'name': name + '.qcow2', 'capacity': '64M'}))
    ok(host.run_module('libvirt_domain', {
        'name': name, 'domain_type': 'qemu', 'memory': memory, 'vcpus': 1, 'tags': tags,
        'boot': {'kernel': '%s/vmlinuz' % host.guest_dir, 'initrd': '%s/initrd.img' % host.guest_dir,
                 'cmdline': 'console=ttyS0 quiet'},
        'disks': [{'volume': {'pool': POOL, 'name': name + '.qcow2'}}], 'state': state}))


def remove_guests(host):
    host.sh('''
        for dom in $(virsh list --all --name | grep "^{prefix}evac-" || true); do
            virsh destroy "$dom" >/dev/null 2>&1 || true
            virsh undefine "$dom" >/dev/null 2>&1 || true
        done
        virsh pool-destroy {pool} >/dev/null 2>&1 || true
        virsh pool-undefine {pool} >/dev/null 2>&1 || true
        rm -rf {dir} {marker}'''.format(prefix=PREFIX, pool=POOL, dir=POOL_DIR, marker=MARKER), check=False)


class Evacuation(object):
    def __init__(self, hosts):
        self.a, self.b, self.c = hosts
        self.hosts = hosts
        self.cluster = hosts[0].cluster

    def run(self, playbook, check=False, **extra_vars):
        start = time.monotonic()
        report = self.cluster.run_playbook(playbook, dict({'evacuate_name_pattern': PATTERN}, **extra_vars),
                                           check=check)
        print('%s%s %s: rc %d in %.1f s' % (playbook, ' --check' if check else '', extra_vars, report['rc'],
                                            time.monotonic() - start))
        return report

    def where(self):
        """{guest: (host name, state)} for every guest of this file, wherever it is defined."""
        found = {}
        for host in self.hosts:
            for line in host.virsh('list', '--all', '--name').splitlines():
                if line.startswith(PREFIX + 'evac-'):
                    assert line not in found, '%s is defined on %s and %s' % (line, found[line][0], host.name)
                    found[line] = (host.name, host.virsh('domstate', line))
        return found


def messages(report, task):
    """The msg of every host's result of the tasks named `task` (a play per host with serial: 1)."""
    return [result.get('msg') for play in report['plays'] for item in play['tasks']
            if item['task']['name'] == task for result in item['hosts'].values() if not result.get('skipped')]


def changed(report):
    return sum(stats['changed'] for stats in report['stats'].values())


@pytest.fixture(scope='module')
def evac(migration_hosts):
    hosts = migration_hosts
    cluster = hosts[0].cluster
    cluster.write_inventory(host_vars={host.name: {'libvirt_migration_uri': host.peer_uri} for host in hosts})
    view = Evacuation(hosts)
    try:
        for host in hosts:
            remove_guests(host)
            ok(host.run_module('libvirt_pool', {'name': POOL, 'type': 'dir', 'target': POOL_DIR, 'state': 'active'}))
        for name, (memory, tags) in sorted(RUNNING.items()):
            guest(view.a, name, memory, tags, 'running')
        guest(view.a, OFF, 128, ['anti-affinity:red'], 'present')
        yield view
    finally:
        for host in hosts:
            remove_guests(host)
        cluster.write_inventory()


def test_a_check_run_shows_the_placement_and_moves_nothing(evac):
    before = evac.where()
    assert before == dict({name: (evac.a.name, 'running') for name in RUNNING}, **{OFF: (evac.a.name, 'shut off')})
    report = evac.run('evacuate_host.yml', check=True, evacuate_host=evac.a.name)
    assert report['rc'] == 0, failed_messages(report)
    [summary] = messages(report, 'Report what went where')
    assert summary.startswith('would move 3 guest(s) off %s: ' % evac.a.name), summary
    assert evac.where() == before


def test_the_running_guests_move_to_b_and_c_apart_by_anti_affinity(evac):
    report = evac.run('evacuate_host.yml', evacuate_host=evac.a.name)
    assert report['rc'] == 0, failed_messages(report)
    now = evac.where()
    for name in RUNNING:
        assert now[name][0] in (evac.b.name, evac.c.name) and now[name][1] == 'running', (name, now)
    assert now[RED[0]][0] != now[RED[1]][0], now
    # Not asked for: the shut-off guest stays.
    assert now[OFF] == (evac.a.name, 'shut off')
    [summary] = messages(report, 'Report what went where')
    assert summary.startswith('moved 3 guest(s) off %s: ' % evac.a.name), summary
    for name in RUNNING:
        assert '%s -> %s' % (name, now[name][0]) in summary


def test_a_rerun_and_a_check_rerun_change_nothing(evac):
    before = evac.where()
    for check in (False, True):
        report = evac.run('evacuate_host.yml', check=check, evacuate_host=evac.a.name)
        assert report['rc'] == 0 and changed(report) == 0, (failed_messages(report), report['stats'])
        assert messages(report, 'Report what went where') == ['%s: nothing to move' % evac.a.name]
    assert evac.where() == before


def test_a_guest_that_fits_nowhere_fails_the_run_before_anything_moves(evac):
    before = evac.where()
    # OFF is of the red group, and B and C hold a red guest each.
    for check in (True, False):
        report = evac.run('evacuate_host.yml', check=check, evacuate_host=evac.a.name, evacuate_include_defined=True)
        assert report['rc'] != 0 and changed(report) == 0, report['stats']
        [message] = failed_messages(report)
        assert message.startswith('Nothing was moved off %s: %s (128 MiB, anti-affinity:red) fits on no target: '
                                  % (evac.a.name, OFF)), message
        for host in (evac.b, evac.c):
            assert '%s holds a guest of anti-affinity:red' % host.name in message
        assert evac.where() == before
    # Memory: B's guests onto A alone, keeping more memory free than A has.
    source = before[BIG][0]
    report = evac.run('evacuate_host.yml', evacuate_host=source, evacuate_targets=[evac.a.name],
                      evacuate_reserve_mib=10 ** 8)
    assert report['rc'] != 0 and changed(report) == 0, report['stats']
    [message] = failed_messages(report)
    assert '%s (192 MiB) fits on no target: %s has ' % (BIG, evac.a.name) in message, message
    assert 'MiB left, keeping 100000000 free' in message
    assert evac.where() == before


def test_shut_off_guests_move_offline_when_asked(evac):
    ok(evac.a.run_module('libvirt_domain', {'name': OFF, 'tags': [], 'state': 'present'}))
    before = evac.where()
    report = evac.run('evacuate_host.yml', check=True, evacuate_host=evac.a.name, evacuate_include_defined=True)
    assert report['rc'] == 0, failed_messages(report)
    assert evac.where() == before
    report = evac.run('evacuate_host.yml', evacuate_host=evac.a.name, evacuate_include_defined=True)
    assert report['rc'] == 0, failed_messages(report)
    now = evac.where()
    assert now[OFF][0] in (evac.b.name, evac.c.name) and now[OFF][1] == 'shut off', now
    assert {name: now[name] for name in RUNNING} == {name: before[name] for name in RUNNING}
    report = evac.run('evacuate_host.yml', evacuate_host=evac.a.name, evacuate_include_defined=True)
    assert report['rc'] == 0 and changed(report) == 0, report['stats']


MAINTENANCE = """---
- name: List the guests running during the maintenance
  ansible.builtin.command: virsh list --name
  register: maintenance_running
  changed_when: false
- name: Fail here when asked
  ansible.builtin.fail:
    msg: maintenance failed on {{ inventory_hostname }}
  when: inventory_hostname == (maintenance_fail_on | default(''))
- name: Leave a marker with them
  ansible.builtin.copy:
    dest: %s
    content: "{{ maintenance_running.stdout }}\n"
    mode: '0644'
- name: Restart libvirt as a real maintenance would
  ansible.builtin.include_tasks: "%s"
""" % (MARKER, '{{ playbook_dir }}/tasks/maintenance_restart_libvirt.yml')


def maintenance_file(tmp_path):
    path = tmp_path / 'maintenance.yml'
    path.write_text(MAINTENANCE)
    return str(path)


def test_a_rolling_maintenance_empties_each_host_in_turn_and_brings_its_guests_back(evac, tmp_path):
    before = evac.where()
    # Every host holds a guest of this file now: A its own shut-off one again.
    holder = {host.name: host for host in evac.hosts}[before[OFF][0]]
    ok(holder.run_module('libvirt_migration', {'name': OFF, 'destination': evac.a.peer_uri, 'mode': 'offline',
                                               'storage': 'copy'}))
    before = evac.where()
    assert {host for host, _state in before.values()} == {evac.a.name, evac.b.name, evac.c.name}, before
    report = evac.run('rolling_maintenance.yml', check=True, rolling_maintenance_tasks=maintenance_file(tmp_path),
                      evacuate_include_defined=True)
    assert report['rc'] == 0, failed_messages(report)
    assert evac.where() == before
    assert not any(host.exists(MARKER) for host in evac.hosts)
    report = evac.run('rolling_maintenance.yml', rolling_maintenance_tasks=maintenance_file(tmp_path),
                      evacuate_include_defined=True)
    assert report['rc'] == 0, failed_messages(report)
    assert len(report['plays']) == 3
    for host in evac.hosts:
        running = host.read_file(MARKER).split()
        assert not [name for name in running if name.startswith(PREFIX + 'evac-')], (host.name, running)
    assert evac.where() == before
    summaries = messages(report, "Report the host's maintenance")
    assert len(summaries) == 3 and all('back on it' in text or 'it ran no guests' in text for text in summaries)


def test_a_failed_maintenance_stops_the_roll_with_every_guest_running(evac, tmp_path):
    for host in evac.hosts:
        host.sh('rm -f %s' % MARKER)
    before = evac.where()
    report = evac.run('rolling_maintenance.yml', rolling_maintenance_tasks=maintenance_file(tmp_path),
                      evacuate_include_defined=True, maintenance_fail_on=evac.b.name)
    assert report['rc'] != 0
    assert failed_messages(report) == ['maintenance failed on %s' % evac.b.name]
    assert evac.a.exists(MARKER) and not evac.b.exists(MARKER) and not evac.c.exists(MARKER)
    now = evac.where()
    for name, (host, state) in before.items():
        assert now[name][1] == state, (name, now[name])
        if host == evac.b.name:
            assert now[name][0] in (evac.a.name, evac.c.name), (name, now[name])
        else:
            assert now[name][0] == host, (name, now[name])
