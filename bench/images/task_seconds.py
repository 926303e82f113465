# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read an ansible-playbook JSON report (ansible.posix.json) on stdin; print "seconds changed" of its last task."""

from __future__ import annotations

import datetime
import json
import sys


def main():
    report = json.load(sys.stdin)
    task = report['plays'][-1]['tasks'][-1]
    host = next(iter(task['hosts'].values()))
    if host.get('failed'):
        sys.exit('task failed: %s' % host.get('msg'))
    times = [datetime.datetime.fromisoformat(task['task']['duration'][key].rstrip('Z'))
             for key in ('start', 'end')]
    print('%.3f %d' % ((times[1] - times[0]).total_seconds(), int(bool(host.get('changed')))))


if __name__ == '__main__':
    main()
