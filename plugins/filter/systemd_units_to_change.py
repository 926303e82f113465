# Copyright: virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

# UnitFileState values for which `systemctl is-enabled` succeeds.
ENABLED_STATES = frozenset(('enabled', 'enabled-runtime', 'static', 'alias', 'indirect', 'generated', 'transient', 'linked'))
RUNNING_STATES = frozenset(('active', 'activating', 'reloading'))


def parse_systemctl_show(output):
    """Turn `systemctl show --property=Id,LoadState,...` output for several units into {Id: {property: value}}."""
    units = {}
    for block in output.strip().split('\n\n'):
        properties = dict(line.split('=', 1) for line in block.splitlines() if '=' in line)
        if 'Id' in properties:
            units[properties['Id']] = properties
    return units


def needs_change(wanted, current):
    if current.get('LoadState') == 'not-found' and boolean(wanted.get('optional', False)):
        return False
    unit_file_state = current.get('UnitFileState', '')
    active_state = current.get('ActiveState', 'inactive')
    if 'enabled' in wanted and boolean(wanted['enabled']) != (unit_file_state in ENABLED_STATES):
        return True
    if wanted.get('state') == 'started':
        return active_state not in RUNNING_STATES
    if wanted.get('state') == 'stopped':
        return active_state in RUNNING_STATES
    return False


def systemd_units_to_change(units, systemctl_show_output):
    """The units (dicts with unit, enabled, state, optional) whose systemd state differs from the wanted one."""
    if not isinstance(units, list):
        raise AnsibleFilterError('systemd_units_to_change expects a list of unit dicts, got %s' % type(units).__name__)
    current = parse_systemctl_show(systemctl_show_output)
    return [unit for unit in units if needs_change(unit, current.get(unit['unit'], {}))]


class FilterModule:
    def filters(self):
        return {'systemd_units_to_change': systemd_units_to_change}
