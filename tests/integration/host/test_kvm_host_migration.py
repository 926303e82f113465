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


# A pair of fresh hosts, taken through these steps in order: check mode and refusals while nothing is set up,
# then the ssh transport, then tls (on top of ssh: both work afterwards).
SSH_VARS = {'kvm_host_migration': True, 'kvm_host_migration_transport': 'ssh'}


@pytest.fixture(scope='module')
def pair(libvirt_cluster, tmp_path_factory):
    with libvirt_cluster('pair', 2) as cluster:
        cluster.ca_dir = tmp_path_factory.mktemp('pair-ca') / 'ca'
        # Like a host in service (and molecule's prepare.yml): package lists present, so that check mode can
        # resolve the packages (the image ships none).
        for host in cluster.hosts:
            host.sh('apt-get update -qq')
        yield cluster


def snapshot(host):
    """What a run that must change nothing could touch: the config files, root's SSH files, the packages."""
    return host.sh('cat /etc/libvirt/libvirtd.conf /etc/libvirt/qemu.conf;'
                   ' find /root/.ssh /etc/pki /etc/ssh -printf "%p %m %s\\n" 2>&1 | sort || true;'
                   ' dpkg-query --show --showformat="\\${Package} \\${Status}\\n"').stdout


def test_check_run_on_fresh_hosts_reports_changes_and_changes_nothing(pair):
    before = [snapshot(host) for host in pair.hosts]
    report = pair.run_role(SSH_VARS, check=True)
    assert report['rc'] == 0, failed_messages(report)
    assert changes(report), 'a check run on fresh hosts reported no change'
    assert [snapshot(host) for host in pair.hosts] == before


@pytest.mark.parametrize('role_vars, variable', [
    ({'kvm_host_libvirtd_host_uuid': '5b4e3c1a-0f3e-4b55-9d43-2f1f8c6d7a10'}, 'kvm_host_libvirtd_host_uuid'),
    ({'kvm_host_libvirtd_host_uuid': 'not-a-uuid'}, 'kvm_host_libvirtd_host_uuid'),
    ({'kvm_host_migration_port_min': 49300, 'kvm_host_migration_port_max': 49200}, 'kvm_host_migration_port_min'),
    ({'kvm_host_migration_port_max': 70000}, 'kvm_host_migration_port_max'),
    ({'kvm_host_migration_transport': 'udp'}, 'kvm_host_migration_transport'),
    ({'kvm_host_migration_transport': 'tcp'}, 'kvm_host_libvirtd_allow_insecure'),
    ({'kvm_host_migration_peers': ['no-such-host']}, 'kvm_host_migration_peers'),
    ({'kvm_host_migration_transport': 'tls'}, 'kvm_host_migration_tls_ca_dir'),
], ids=['duplicate-host-uuid', 'invalid-host-uuid', 'port-min-above-max', 'port-out-of-range', 'unknown-transport',
        'tcp-without-allow-insecure', 'unknown-peer', 'tls-without-ca'])
def test_bad_input_is_refused_before_anything_changes(pair, role_vars, variable):
    before = [snapshot(host) for host in pair.hosts]
    report = pair.run_role(dict(SSH_VARS, **role_vars))
    messages = failed_messages(report)
    assert report['rc'] != 0 and messages, report['rc']
    assert all(variable in message for message in messages), messages
    assert [snapshot(host) for host in pair.hosts] == before


def test_ssh_transport(pair):
    report = pair.run_role(SSH_VARS)
    assert report['rc'] == 0, failed_messages(report)
    pair.set_peer_uris('ssh')
    assert_peers_reach_each_other(pair.hosts)
    first, second = pair.hosts
    # The peer's real host key is pinned; the key opens libvirt's helper only, not a shell.
    host_key = second.read_file('/etc/ssh/ssh_host_ed25519_key.pub').split()[:2]
    assert ' '.join(host_key) in first.read_file('/etc/ssh/ssh_known_hosts.virtops-migration')
    shell = first.exec(['ssh', 'root@' + second.address, 'id'], input='')
    assert 'uid=0' not in shell.stdout, shell.stdout
    assert first.exec(['stat', '--format=%a', '/root/.ssh/id_ed25519_virtops_migration']).stdout.strip() == '600'
    for check in (False, True):
        again = pair.run_role(SSH_VARS, check=check)
        assert again['rc'] == 0, failed_messages(again)
        assert changes(again) == [], (check, changes(again))


def test_tls_transport(pair):
    role_vars = dict(SSH_VARS, kvm_host_migration_transport='tls', kvm_host_migration_tls_ca_dir=str(pair.ca_dir))
    report = pair.run_role(role_vars)
    assert report['rc'] == 0, failed_messages(report)
    pair.set_peer_uris('tls')
    assert_peers_reach_each_other(pair.hosts)
    for host in pair.hosts:
        modes = host.exec(['stat', '--format=%n %a', '/etc/pki/CA/cacert.pem', '/etc/pki/libvirt/servercert.pem',
                           '/etc/pki/libvirt/private/serverkey.pem', '/etc/pki/libvirt/clientcert.pem',
                           '/etc/pki/libvirt/private/clientkey.pem'], check=True).stdout.split('\n')
        assert [line.split()[1] for line in modes if line] == ['644', '644', '600', '644', '600'], modes
    assert sorted(path.name for path in pair.ca_dir.iterdir()) == ['ca-cert.pem', 'ca-key.pem']
    for check in (False, True):
        again = pair.run_role(role_vars, check=check)
        assert again['rc'] == 0, failed_messages(again)
        assert changes(again) == [], (check, changes(again))
