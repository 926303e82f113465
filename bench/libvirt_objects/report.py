# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read an ansible-playbook JSON report (ansible.posix.json) on stdin; print one line per object kind:
"<kind> <seconds> <changed>", seconds summed over the kind's tasks, changed counted over their loop items
(a task without a loop counts as one). The kind is the word network, pool or volume in the task name."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tests' / 'lib'))
from virtops_playbook_report import changed_count, task_seconds  # noqa: E402 pylint: disable=wrong-import-position

KINDS = ('network', 'pool', 'volume')


def main():
    report = json.load(sys.stdin)
    totals = dict((kind, [0.0, 0]) for kind in KINDS)
    for task in report['plays'][-1]['tasks']:
        host = next(iter(task['hosts'].values()))
        if host.get('failed'):
            sys.exit('task %r failed: %s' % (task['task']['name'], host.get('msg')))
        kind = next(kind for kind in KINDS if kind in task['task']['name'].lower())
        totals[kind][0] += task_seconds(task)
        totals[kind][1] += changed_count(host)
    for kind in KINDS:
        print('%s %.3f %d' % (kind, totals[kind][0], totals[kind][1]))


if __name__ == '__main__':
    main()
