# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read an ansible-playbook JSON report (ansible.posix.json) on stdin; print "seconds changed" of its last task."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tests' / 'lib'))
from virtops_playbook_report import task_seconds  # noqa: E402 pylint: disable=wrong-import-position


def main():
    report = json.load(sys.stdin)
    task = report['plays'][-1]['tasks'][-1]
    host = next(iter(task['hosts'].values()))
    if host.get('failed'):
        sys.exit('task failed: %s' % host.get('msg'))
    print('%.3f %d' % (task_seconds(task), int(bool(host.get('changed')))))


if __name__ == '__main__':
    main()
