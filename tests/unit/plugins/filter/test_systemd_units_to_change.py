# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""systemd_units_to_change against `systemctl show` output captured on Debian 12 and 13 containers."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.virtops.hypervisor.plugins.filter.systemd_units_to_change import (
    FilterModule,
    parse_systemctl_show,
    systemd_units_to_change,
)

# Debian 13 after the kvm_host role: virtlockd is not installed (its own package there).
DEBIAN13_SHOW = """\
Id=virtlogd.socket
LoadState=loaded
ActiveState=active
UnitFileState=enabled

Id=virtlockd.socket
LoadState=not-found
ActiveState=inactive
UnitFileState=

Id=libvirtd.socket
LoadState=loaded
ActiveState=active
UnitFileState=enabled

Id=libvirtd-tcp.socket
LoadState=loaded
ActiveState=inactive
UnitFileState=disabled

Id=libvirtd.service
LoadState=loaded
ActiveState=inactive
UnitFileState=enabled
"""

WANTED = [
    {'unit': 'virtlogd.socket', 'enabled': True, 'state': 'started'},
    {'unit': 'virtlockd.socket', 'enabled': True, 'state': 'started', 'optional': True},
    {'unit': 'libvirtd.socket', 'enabled': True, 'state': 'started'},
    {'unit': 'libvirtd-tcp.socket', 'enabled': False, 'state': 'stopped'},
    {'unit': 'libvirtd.service', 'enabled': True},
]


def test_parse_keeps_every_unit_by_id():
    units = parse_systemctl_show(DEBIAN13_SHOW)
    assert sorted(units) == ['libvirtd-tcp.socket', 'libvirtd.service', 'libvirtd.socket', 'virtlockd.socket', 'virtlogd.socket']
    assert units['libvirtd-tcp.socket'] == {
        'Id': 'libvirtd-tcp.socket', 'LoadState': 'loaded', 'ActiveState': 'inactive', 'UnitFileState': 'disabled'}


def test_converged_host_needs_nothing():
    # libvirtd.service is inactive (socket activation, idle exit) but only its enablement is wanted.
    assert systemd_units_to_change(WANTED, DEBIAN13_SHOW) == []


def test_missing_required_unit_is_reported_but_missing_optional_one_is_not():
    wanted = [dict(WANTED[1], optional=False), WANTED[1]]
    assert systemd_units_to_change(wanted, DEBIAN13_SHOW) == [wanted[0]]


def test_listener_to_turn_on_is_reported():
    tcp_on = {'unit': 'libvirtd-tcp.socket', 'enabled': True, 'state': 'started'}
    assert systemd_units_to_change([tcp_on], DEBIAN13_SHOW) == [tcp_on]


def test_running_unit_to_stop_is_reported():
    stop_logd = {'unit': 'virtlogd.socket', 'state': 'stopped'}
    assert systemd_units_to_change([stop_logd], DEBIAN13_SHOW) == [stop_logd]


@pytest.mark.parametrize('unit_file_state', ['static', 'enabled-runtime', 'alias', 'indirect', 'generated'])
def test_states_systemctl_counts_as_enabled(unit_file_state):
    show = 'Id=x.socket\nLoadState=loaded\nActiveState=active\nUnitFileState=%s\n' % unit_file_state
    assert systemd_units_to_change([{'unit': 'x.socket', 'enabled': True, 'state': 'started'}], show) == []


def test_enabled_given_as_template_string():
    # Role variables templated into the list arrive as strings when templating is not native.
    wanted = [{'unit': 'libvirtd-tcp.socket', 'enabled': 'False', 'state': 'stopped'}]
    assert systemd_units_to_change(wanted, DEBIAN13_SHOW) == []


def test_unit_absent_from_output_is_reported():
    wanted = [{'unit': 'libvirtd-tls.socket', 'enabled': True, 'state': 'started'}]
    assert systemd_units_to_change(wanted, DEBIAN13_SHOW) == wanted


def test_wrong_input_type_names_the_filter():
    with pytest.raises(AnsibleFilterError, match='systemd_units_to_change expects a list'):
        systemd_units_to_change('libvirtd.socket', DEBIAN13_SHOW)


def test_registered_under_its_name():
    assert FilterModule().filters() == {'systemd_units_to_change': systemd_units_to_change}
