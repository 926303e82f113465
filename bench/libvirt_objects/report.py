# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read an ansible-playbook JSON report (ansible.posix.json) on stdin; print one line per object kind:
"<kind> <seconds> <changed>", seconds summed over the kind's tasks, changed counted over their loop items
(a task without a loop counts as one). The kind is the word network, pool or volume in the task name."""

from __future__ import annotations

import datetime
import json
import sys

KINDS = ('network', 'pool', 'volume')


def seconds(task):
    start, end = (datetime.datetime.fromisoformat(task['task']['duration'][key].rstrip('Z')) for key in ('start', 'end'))
    return (end - start).total_seconds()


def changed(host):
    if 'results' in host:
        return sum(1 for item in host['results'] if item.get('changed'))
    return int(bool(host.get('changed')))


def main():
    report = json.load(sys.stdin)
    totals = dict((kind, [0.0, 0]) for kind in KINDS)
    for task in report['plays'][-1]['tasks']:
        host = next(iter(task['hosts'].values()))
        if host.get('failed'):
            sys.exit('task %r failed: %s' % (task['task']['name'], host.get('msg')))
        kind = next(kind for kind in KINDS if kind in task['task']['name'].lower())
        totals[kind][0] += seconds(task)
        totals[kind][1] += changed(host)
    for kind in KINDS:
        print('%s %.3f %d' % (kind, totals[kind][0], totals[kind][1]))


if __name__ == '__main__':
    main()
