# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The warn action, run through the real ansible CLI on the controller."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_warn(collections_root, args):
    ansible = str(Path(sys.executable).with_name('ansible'))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_root), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_INVENTORY_UNPARSED_WARNING='false')
    return subprocess.run([ansible, 'localhost', '-m', 'virtops.hypervisor.warn', '-a', args],
                          capture_output=True, text=True, env=env, check=False)


def test_warning_is_shown_and_nothing_changes(collections_root):
    result = run_warn(collections_root, 'msg="guests will be emulated"')
    assert result.returncode == 0, result.stderr
    assert '[WARNING]: guests will be emulated' in result.stdout + result.stderr
    assert '"changed": false' in result.stdout or 'changed: false' in result.stdout


def test_empty_message_is_refused(collections_root):
    result = run_warn(collections_root, 'msg=""')
    assert result.returncode != 0
    assert 'warn needs msg, a non-empty string' in result.stdout + result.stderr
