# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Figures from an ansible-playbook JSON report (the json stdout callback): for the tests and for bench/."""

from __future__ import annotations

import datetime


def task_seconds(task):
    """How long a task of the report took; 0 for a meta task such as refresh_inventory, which has no end."""
    duration = task['task']['duration']
    if 'end' not in duration:
        return 0.0
    start, end = (datetime.datetime.fromisoformat(duration[key].replace('Z', '+00:00')) for key in ('start', 'end'))
    return (end - start).total_seconds()


def changed_count(host):
    """How many changes one host's result of a task reports: its changed loop items, else 0 or 1."""
    if 'results' in host:
        return sum(1 for item in host['results'] if item.get('changed'))
    return int(bool(host.get('changed')))
