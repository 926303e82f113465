# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtops.hypervisor.libvirt inventory through the real ansible-inventory, against qemu:///system.

A running tiny guest with tags and metadata (written by libvirt_domain) and a shut-off one are listed with their
state, tags and groups; an unreachable second hypervisor is a warning, not a failure. Only this run's domains
(PREFIX) are looked at: other tests may have domains of their own on the host.
"""

from __future__ import annotations

import yaml

from virtops_testlib import PREFIX, URI, ansible_inventory, run_module, serial_log, virsh

UNREACHABLE = 'qemu+tcp://127.0.0.1:1/system'  # nothing listens on port 1


def test_domains_of_this_host_are_listed_with_state_tags_and_groups(guest, tmp_path):
    tagged = guest(state='running', tags=['web', 'zone-a'], metadata={'role': 'frontend'})
    result = run_module('libvirt_domain', tagged)
    assert not result.get('failed'), result
    stopped = guest.name + '-off'
    result = run_module('libvirt_domain', guest(name=stopped, serial_log=serial_log(stopped)))
    assert not result.get('failed'), result
    try:
        source = tmp_path / 'host.libvirt.yml'
        source.write_text(yaml.safe_dump({
            'plugin': 'virtops.hypervisor.libvirt',
            'uris': [URI, UNREACHABLE],
            'filters': ['libvirt_name.startswith(%r)' % PREFIX],
            'keyed_groups': [{'key': "libvirt_metadata.role | default('none')", 'prefix': 'role'}],
            'compose': {'ansible_connection': "'local'"},
        }))
        inventory, stderr, seconds = ansible_inventory(source)
        print('ansible-inventory --list took %.2f s' % seconds)
        hostvars = inventory['_meta']['hostvars']
        assert sorted(hostvars) == sorted([guest.name, stopped])
        running = hostvars[guest.name]
        size = (running['libvirt_state'], running['libvirt_vcpus'], running['libvirt_memory_mib'])
        assert size == ('running', 1, 128)
        assert running['libvirt_tags'] == ['web', 'zone-a']
        assert running['libvirt_metadata'] == {'role': 'frontend'}
        assert running['libvirt_hypervisor'] == URI
        assert running['libvirt_uuid'] == virsh('domuuid', guest.name)
        assert running['ansible_connection'] == 'local'
        assert hostvars[stopped]['libvirt_state'] == 'shutoff'
        assert guest.name in inventory['libvirt_running']['hosts']
        assert stopped in inventory['libvirt_shutoff']['hosts']
        assert inventory['tag_web']['hosts'] == [guest.name]
        assert inventory['tag_zone_a']['hosts'] == [guest.name]
        assert inventory['role_frontend']['hosts'] == [guest.name]
        assert inventory['role_none']['hosts'] == [stopped]
        hypervisor_groups = [group for group in inventory if group.startswith('libvirt_hypervisor_')]
        assert len(hypervisor_groups) == 1 and sorted(inventory[hypervisor_groups[0]]['hosts']) == sorted(hostvars)
        assert 'cannot read hypervisor %s' % UNREACHABLE in ' '.join(stderr.split())
    finally:
        run_module('libvirt_domain', {'name': stopped, 'state': 'absent'})
