# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read virt-manager's main window through the accessibility bus (AT-SPI), the way virt-manager's own UI tests
(dogtail) see it, and print it as JSON: {"frames": [window titles], "cells": [the VM list's cells: a connection's name, or a
domain's "<name>\n<state>"]}.

Run with the system Python (/usr/bin/python3: python3-pyatspi) inside the test's D-Bus session and X display.
Waits until the VM list has rows for every name given on the command line (or timeout); exit status 1 if not.
Usage: virt_manager_window.py TIMEOUT NAME...
"""

import json
import sys
import time

import pyatspi


def nodes(accessible):
    """Every accessible below accessible, depth first (dead children skipped)."""
    stack = [accessible]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        try:
            stack.extend(node.getChildAtIndex(index) for index in reversed(range(node.childCount)))
        except Exception:  # pylint: disable=broad-except  # a widget gone while walking
            continue


def read_window():
    desktop = pyatspi.Registry.getDesktop(0)
    for index in range(desktop.childCount):
        app = desktop.getChildAtIndex(index)
        if app is None or app.name != 'virt-manager':
            continue
        frames = [node.name for node in nodes(app) if node.getRoleName() == 'frame']
        table = next((node for node in nodes(app) if node.getRoleName() == 'tree table' and node.name == 'vm-list'),
                     None)
        cells = [node.name for node in nodes(table) if node.getRoleName() == 'table cell'] if table else []
        return {'frames': frames, 'cells': cells}
    return {'frames': [], 'cells': []}


def main():
    timeout, names = float(sys.argv[1]), sys.argv[2:]
    deadline = time.monotonic() + timeout
    while True:
        window = read_window()
        shown = ' '.join(window['cells'])
        if window['frames'] and all(name in shown for name in names):
            print(json.dumps(window))
            return 0
        if time.monotonic() > deadline:
            print(json.dumps(window))
            return 1
        time.sleep(0.5)


if __name__ == '__main__':
    sys.exit(main())
