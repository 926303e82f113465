# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""kvm_host_migration: the kvm_host role sets up the hosts of a group for migration between them.

Real libvirtd in libvirt host containers on a podman network the tests make (tests/lib/virtops_cluster.py): the
three hosts of `migration_hosts` (transport tcp, as the migration tests use them), and a pair of fresh hosts that
first see the role's check mode and its refusals, then get the ssh transport, then tls. Every address lives on
that network only; root on each host reaches every peer's libvirtd the way the libvirt_migration module does.
"""

from __future__ import annotations

import pytest

from virtops_playbook_report import changed_count
from virtops_testlib import failed_messages

LIBVIRTD_CONF = '/etc/libvirt/libvirtd.conf'
QEMU_CONF = '/etc/libvirt/qemu.conf'


def changes(report):
    """'task name: host' for every change a run reports."""
    return ['%s: %s' % (task['task']['name'], name) for play in report['plays'] for task in play['tasks']
            for name, host in task['hosts'].items() if changed_count(host)]


def host_uuid(host):
    return host.virsh('capabilities').split('<uuid>', 1)[1].split('</uuid>', 1)[0]


def conf_values(host, path, *keys):
    """key -> value (as written) of the uncommented lines of a libvirt config file."""
    values = {}
    for line in host.read_file(path).splitlines():
        key, sep, value = line.partition('=')
        if sep and not line.lstrip().startswith('#') and key.strip() in keys:
            values[key.strip()] = value.strip()
    return values


def assert_peers_reach_each_other(hosts):
    """virsh as root on every host, over the transport's URI of every other host: it answers with that host's name."""
    for host in hosts:
        for peer in hosts:
            if peer is not host:
                assert host.virsh('-c', peer.peer_uri, 'hostname') == peer.name, (host.name, peer.peer_uri)


def test_every_host_has_its_own_host_uuid(migration_hosts):
    uuids = [host_uuid(host) for host in migration_hosts]
    assert len(set(uuids)) == len(migration_hosts), uuids
    for host, uuid in zip(migration_hosts, uuids):
        assert conf_values(host, LIBVIRTD_CONF, 'host_uuid') == {'host_uuid': '"%s"' % uuid}


def test_root_reaches_every_peer_over_tcp(migration_hosts):
    assert_peers_reach_each_other(migration_hosts)
    for host in migration_hosts:
        assert host.peer_uri == 'qemu+tcp://%s/system' % host.address


def test_qemu_migration_port_range(migration_hosts):
    for host in migration_hosts:
        assert conf_values(host, QEMU_CONF, 'migration_port_min', 'migration_port_max', 'remember_owner') == {
            'migration_port_min': '49152', 'migration_port_max': '49215', 'remember_owner': '0'}


@pytest.mark.parametrize('check', [False, True], ids=['rerun', 'check-rerun'])
def test_rerun_changes_nothing(migration_hosts, check):
    cluster = migration_hosts[0].cluster
    report = cluster.run_role(cluster.role_vars, check=check)
    assert report['rc'] == 0, failed_messages(report)
    assert changes(report) == []
