# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The libvirt_snapshot manager against libvirt's test driver (test:///default).

The runs that race here are interleaved by hand: one run reads the tree, another run changes it, then
the first one acts. That is the interleaving two concurrent module runs can meet; the integration test
(tests/integration/test_libvirt_snapshot.py) runs two real module processes at once on qemu:///system.
"""

from __future__ import annotations

import itertools

import libvirt  # requirements-dev.txt installs libvirt-python: a missing binding is a failure, not a skip
import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure, Result
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import LibvirtFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._snapshot import SnapshotManager

URI = 'test:///default'
DEFAULTS = {
    'uri': URI, 'state': 'present', 'description': None, 'disk_only': None, 'disks': None, 'quiesce': False,
    'atomic': False, 'retain': None, 'retain_prefix': None, 'children': False, 'children_only': False,
    'metadata_only': False, 'after_revert': 'snapshot', 'force': False,
}
_names = itertools.count()


@pytest.fixture(scope='module')
def conn():
    """The test driver forgets its domains when its last connection closes: hold one open."""
    connection = libvirt.open(URI)
    yield connection
    connection.close()


@pytest.fixture
def domain(conn):
    """A defined domain of the test driver on a qcow2 disk (the test driver does not open it)."""
    name = 'virtops-snap-%d' % next(_names)
    dom = conn.defineXML(
        "<domain type='test'><name>%s</name><memory>131072</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
        "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source file='/var/lib/libvirt/images/%s.qcow2'/><target dev='vda' bus='virtio'/></disk></devices>"
        "</domain>" % (name, name))
    yield name
    for snap in dom.listAllSnapshots(0):
        snap.delete(0)
    dom.undefine()


def manager(conn, check=False, **params):
    return SnapshotManager(conn, dict(DEFAULTS, **params), Result(check_mode=check, diff_mode=True))


def run(conn, check=False, **params):
    snapshots = manager(conn, check, **params)
    snapshots.run()
    return snapshots.result.as_dict()


def names(conn, domain):
    return sorted(snap.getName() for snap in conn.lookupByName(domain).listAllSnapshots(0))


def test_a_run_that_finds_its_snapshot_taken_meanwhile_reports_no_change(conn, domain):
    late = manager(conn, domain=domain, name='base')
    late.prepare()  # reads: no snapshot 'base'
    assert run(conn, domain=domain, name='base')['actions'] == ['create']  # another run takes it
    late.converge()  # libvirt: "domain moment base already exists"; read again, compare again
    late.report()
    result = late.result.as_dict()
    assert result['changed'] is False and result['actions'] == [] and result['differences'] == []
    assert result['snapshot']['name'] == 'base' and names(conn, domain) == ['base']


def test_a_run_that_finds_its_snapshot_deleted_meanwhile_reports_no_change(conn, domain):
    run(conn, domain=domain, name='base')
    late = manager(conn, domain=domain, name='base', state='absent')
    late.prepare()  # reads: 'base' exists
    assert run(conn, domain=domain, name='base', state='absent')['removed'] == ['base']
    late.converge()  # libvirt: "no domain snapshot with matching name"; read again, nothing left to do
    late.report()
    result = late.result.as_dict()
    assert result['changed'] is False and result['actions'] == [] and result['removed'] == []
    assert result['snapshot'] is None and names(conn, domain) == []


def test_a_snapshot_another_run_took_with_other_settings_is_reported_not_taken_again(conn, domain):
    late = manager(conn, domain=domain, name='base', description='mine')
    late.prepare()
    run(conn, domain=domain, name='base', description='theirs')
    late.converge()
    result = late.result.as_dict()
    assert result['changed'] is False and result['differences'] == ["description is 'theirs'"]
    assert "exists and differs from what was asked (description is 'theirs')" in late.result.warnings[0]


def test_a_create_libvirt_refuses_reports_no_change(conn, domain):
    refused = manager(conn, domain=domain, name='outside', disk_only=True)  # the test driver has no disk-only
    with pytest.raises(LibvirtFailure) as failure:
        refused.run()
    assert str(failure.value).startswith("cannot create snapshot 'outside' of domain '%s': " % domain)
    assert failure.value.about == "snapshot 'outside' of domain '%s'" % domain
    result = refused.result.as_dict()
    assert result['changed'] is False and result['actions'] == []
    assert names(conn, domain) == []


def test_retain_options_are_checked_before_the_domain_is_read(conn):
    with pytest.raises(ModuleFailure) as failure:
        run(conn, domain='virtops-snap-nowhere', name='pre-1', retain=0, retain_prefix='pre-')
    assert str(failure.value) == 'retain must be 1 or more, and works with state present only'
    with pytest.raises(ModuleFailure) as failure:
        run(conn, domain='virtops-snap-nowhere', name='x', retain=2, retain_prefix='pre-')
    assert str(failure.value) == ("name 'x' does not start with retain_prefix 'pre-': the snapshot just taken "
                                  "would not count")


def test_check_mode_predicts_create_and_retain(conn, domain):
    for index in (1, 2):
        run(conn, domain=domain, name='pre-%d' % index, retain=2, retain_prefix='pre-')
    check = run(conn, check=True, domain=domain, name='pre-3', retain=2, retain_prefix='pre-')
    assert check['actions'] == ['create', 'retain'] and check['removed'] == ['pre-1']
    assert names(conn, domain) == ['pre-1', 'pre-2']
    real = run(conn, domain=domain, name='pre-3', retain=2, retain_prefix='pre-')
    assert real['actions'] == check['actions'] and real['removed'] == check['removed']
    assert real['diff']['after'] == check['diff']['after'].replace('(now)', real['snapshot']['created'])
    assert names(conn, domain) == ['pre-2', 'pre-3']
