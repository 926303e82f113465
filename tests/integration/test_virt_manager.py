# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The GUI the course opens: virt-manager, installed by kvm_host with kvm_host_install_gui (the localhost
molecule scenario sets it for this machine), started under Xvfb against this machine's libvirt, shows the
host's VMs in its main window.

The window is read through the accessibility bus (tests/lib/virt_manager_window.py, AT-SPI as virt-manager's own
UI tests read it), and a screenshot of the screen is kept (VIRTOPS_SCREENSHOT, default in the test's tmp dir;
docs/images/virt-manager.png was taken this way).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from virtops_testlib import REPO, wait_for_console

READER = REPO / 'tests' / 'lib' / 'virt_manager_window.py'
SESSION = r'''
Xvfb -displayfd 3 -screen 0 1024x640x24 -nolisten tcp 3>"$1/display" >"$1/xvfb.log" 2>&1 &
xvfb=$!
for _ in $(seq 50); do [ -s "$1/display" ] && break; sleep 0.1; done
export DISPLAY=":$(cat "$1/display")"
virt-manager --no-fork --connect qemu:///system >"$1/virt-manager.log" 2>&1 &
gui=$!
rc=0
/usr/bin/python3 "$2" 60 "${@:4}" >"$1/window.json" || rc=$?
import -window "Virtual Machine Manager" "$3" || rc=$?
kill "$gui" "$xvfb"
exit "$rc"
'''


def test_virt_manager_shows_the_hosts_vms(domain, guest, tmp_path):
    assert shutil.which('virt-manager'), ('virt-manager is not installed: the localhost molecule scenario '
                                          '(make molecule) installs it with kvm_host_install_gui: true')
    running = guest.name
    stopped = running + '-off'
    result = domain(dict(guest(), state='running'))
    assert result.get('failed') is not True, result
    wait_for_console(running)
    result = domain(dict(guest(), name=stopped, state='present'))
    assert result.get('failed') is not True, result
    screenshot = Path(os.environ.get('VIRTOPS_SCREENSHOT', str(tmp_path / 'virt-manager.png')))
    try:
        proc = subprocess.run(['dbus-run-session', '--', 'bash', '-c', SESSION, 'session', str(tmp_path), str(READER),
                               str(screenshot), running, stopped],
                              capture_output=True, text=True, check=False, timeout=120)
        logs = '\n'.join('%s:\n%s' % (name, (tmp_path / name).read_text(errors='replace')[-2000:])
                         for name in ('window.json', 'virt-manager.log', 'xvfb.log') if (tmp_path / name).exists())
        assert proc.returncode == 0, '%s\n%s\n%s' % (proc.stdout, proc.stderr, logs)
        window = json.loads((tmp_path / 'window.json').read_text())
        assert 'Virtual Machine Manager' in window['frames'], window
        assert 'QEMU/KVM' in window['cells'], window
        assert '%s\nRunning' % running in window['cells'], window
        assert '%s\nShutoff' % stopped in window['cells'], window
        assert screenshot.stat().st_size > 10000
    finally:
        domain({'name': stopped, 'state': 'absent'})
