# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""--check of a play on a fresh host: a pool an earlier task would create does not exist yet.

libvirt_volume plans the volumes of such a pool as if it were empty, and libvirt_domain plans disks on its
volumes and a cloud-init seed in it, each with a warning naming the pool; a real run still fails on it. (The
test driver, test:///default, has no pool of that name.)
"""

from __future__ import annotations

from virtops_unitlib import run_main

from ansible_collections.virtops.hypervisor.plugins.modules import libvirt_domain, libvirt_volume

URI = 'test:///default'
POOL = 'virtops-not-yet'
CHECKSUM = 'sha256:' + '0' * 64


def volumes_args():
    return {'uri': URI, 'pool': POOL, 'volumes': [
        {'name': 'base.qcow2', 'url': 'http://127.0.0.1:9/base.qcow2.xz', 'checksum': CHECKSUM},
        {'name': 'vm1.qcow2', 'backing': {'volume': 'base.qcow2'}, 'capacity': '4G'}]}


def test_check_mode_plans_volumes_of_a_pool_that_does_not_exist_yet(libvirt_test_conn, capsys):
    result = run_main(libvirt_volume, volumes_args(), capsys, check=True)
    assert result['changed'] is True and not result.get('failed'), result
    assert [item['actions'] for item in result['volumes']] == [['download', 'import'], ['create']]
    assert result['volumes'][1]['volume']['capacity'] == 4 << 30
    assert "storage pool '%s' does not exist" % POOL in result['warned'], result


def test_a_real_run_still_fails_on_the_missing_pool(libvirt_test_conn, capsys):
    result = run_main(libvirt_volume, volumes_args(), capsys)
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'].startswith("volumes[0]: storage pool '%s' does not exist" % POOL)


def domain_args():
    return {'uri': URI, 'state': 'running', 'domains': [{
        'name': 'virtops-fresh-vm1', 'domain_type': 'test', 'memory': 256, 'vcpus': 1,
        'disks': [{'volume': {'pool': POOL, 'name': 'vm1.qcow2'}}],
        'cloud_init': {'user_data': {'ssh_authorized_keys': ['ssh-ed25519 AAAAC3 test']}}}]}


def test_check_mode_plans_a_domain_on_volumes_and_a_seed_of_a_pool_not_made_yet(libvirt_test_conn, capsys):
    result = run_main(libvirt_domain, domain_args(), capsys, check=True)
    assert result['changed'] is True and not result.get('failed'), result
    assert result['domains'][0]['actions'] == ['create_seed', 'define', 'start']
    assert "volume 'vm1.qcow2' in pool '%s' cannot be read" % POOL in result['warned'], result['warned']
    assert "storage pool '%s' for the seed" % POOL in result['warned'], result['warned']
    assert 'virtops-fresh-vm1' not in [dom.name() for dom in libvirt_test_conn.listAllDomains(0)]


def test_a_real_domain_run_still_fails_on_the_missing_pool(libvirt_test_conn, capsys):
    result = run_main(libvirt_domain, domain_args(), capsys)
    assert result['failed'] is True and result['changed'] is False
    assert "pool '%s'" % POOL in result['msg']
