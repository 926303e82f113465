# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read an ansible-playbook JSON report (ansible.posix.json) on stdin; print one line per task of the last
play, "<seconds> <changed> <task name>" (changed counted over the loop items; a task without a loop counts as
one), then "<seconds> <changed> total"."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tests' / 'lib'))
from virtops_playbook_report import changed_count, task_seconds  # noqa: E402 pylint: disable=wrong-import-position


def main():
    report = json.load(sys.stdin)
    total = [0.0, 0]
    for task in report['plays'][-1]['tasks']:
        host = next(iter(task['hosts'].values()))
        if host.get('failed'):
            sys.exit('task %r failed: %s' % (task['task']['name'], host.get('msg')))
        took, count = task_seconds(task), changed_count(host)
        print('%.3f %d %s' % (took, count, task['task']['name']))
        total[0] += took
        total[1] += count
    print('%.3f %d total' % tuple(total))


if __name__ == '__main__':
    main()
