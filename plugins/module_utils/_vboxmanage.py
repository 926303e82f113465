# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""VBoxManage: argv lists through module.run_command, and the parsers of its --machinereadable output.

Facts about VBoxManage 7.2 this relies on:
- `/usr/bin/VBoxManage` is a shell wrapper; when /dev/vboxdrv is missing it prints a 5-line WARNING
  on *stdout* before running the real binary. The runner removes it and remembers it
  (`VBoxManage.driver_missing`).
- `--machinereadable` prints `key=value` lines; keys may be quoted ("SATA-0-0"), string values are
  double-quoted and may span lines (a description with newlines), numbers are bare.
- Errors go to stderr as `VBoxManage: error: <text>` lines, then Details/Context lines.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

DRIVER_WARNING_START = 'WARNING: The character device /dev/vboxdrv does not exist.'
DRIVER_WARNING_END = 'You will not be able to start VMs until this problem is fixed.'
NOT_FOUND = 'VBOX_E_OBJECT_NOT_FOUND'


class VBoxFailure(Exception):
    """A VBoxManage call failed, or its output is not what was expected; the message is for the user."""


def strip_driver_warning(text):
    """(text without the wrapper's /dev/vboxdrv warning, whether it was there)."""
    start = text.find(DRIVER_WARNING_START)
    if start < 0:
        return text, False
    end = text.find(DRIVER_WARNING_END, start)
    if end < 0:
        return text, False
    end += len(DRIVER_WARNING_END)
    while end < len(text) and text[end] in '\r\n':
        end += 1
    return text[:start] + text[end:], True


def error_text(stderr):
    """The `VBoxManage: error:` lines of stderr without the prefix (Details and Context dropped);
    the whole stderr, stripped, when there are none."""
    lines = []
    for line in stderr.splitlines():
        match = re.match(r'^VBoxManage: error: (.*)$', line)
        if match and not match.group(1).startswith(('Details: ', 'Context: ')):
            lines.append(match.group(1).strip())
    return '; '.join(lines) if lines else stderr.strip()


def _unquote(value):
    return value[1:-1].replace('\\"', '"').replace('\\\\', '\\') if value.startswith('"') else value


def parse_machinereadable(text):
    """`key=value` lines of --machinereadable output into a dict, keeping the order.

    Quoted keys lose their quotes; quoted values lose theirs and may continue over several lines until
    the closing quote; bare values (numbers) stay strings. Lines without `=` (e.g. ` rec_screen0`)
    are skipped.
    """
    values = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        match = re.match(r'^("(?:[^"\\]|\\.)*"|[^=\s"][^=]*)=(.*)$', line)
        if not match:
            continue
        key, value = _unquote(match.group(1)), match.group(2)
        if value.startswith('"'):
            # A quoted value ends at a line whose last unescaped character is a quote.
            while not _closed(value) and i < len(lines):
                value += '\n' + lines[i]
                i += 1
            value = _unquote(value)
        values[key] = value
    return values


def _closed(value):
    if len(value) < 2 or not value.endswith('"'):
        return False
    backslashes = len(value) - 1 - len(value[:-1].rstrip('\\'))
    return backslashes % 2 == 0


def parse_list(text):
    """`VBoxManage list vms` (and runningvms): [(name, uuid)]."""
    found = []
    for line in text.splitlines():
        match = re.match(r'^"(.*)" \{([0-9a-fA-F-]+)\}$', line.strip())
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def parse_snapshots(values):
    """The snapshot tree in showvminfo (or `snapshot list`) --machinereadable values.

    VBoxManage names the nodes by path: `SnapshotName` is the root, `SnapshotName-1` its first child,
    `SnapshotName-1-2` that child's second child. Returns (snapshots in tree order, each a dict with
    name, uuid, description, parent (name or None), children (names), current), current name or None).
    """
    nodes = {}
    for key, value in values.items():
        match = re.match(r'^SnapshotName((?:-\d+)*)$', key)
        if match:
            nodes[match.group(1)] = value
    current_node = values.get('CurrentSnapshotNode')
    current = values.get('CurrentSnapshotName')
    snapshots, by_name = [], {}
    for suffix in sorted(nodes, key=lambda s: [int(part) for part in s.split('-')[1:]]):
        parent = nodes.get(suffix.rpartition('-')[0]) if suffix else None
        snapshot = {'name': nodes[suffix], 'uuid': values.get('SnapshotUUID' + suffix),
                    'description': values.get('SnapshotDescription' + suffix, ''), 'parent': parent,
                    'children': [], 'current': current_node == 'SnapshotName' + suffix}
        snapshots.append(snapshot)
        by_name.setdefault(snapshot['name'], snapshot)
        if parent is not None:
            by_name[parent]['children'].append(snapshot['name'])
    return snapshots, current


class VBoxManage(object):
    """VBoxManage through module.run_command with argv lists only, C locale, the driver warning removed."""

    def __init__(self, module):
        self.module = module
        self.driver_missing = False
        self.binary = module.get_bin_path('VBoxManage')
        if self.binary is None:
            raise VBoxFailure('VBoxManage was not found on %s: install VirtualBox first (the virtops.hypervisor.'
                              'virtualbox_host role does)' % (os.uname()[1]))

    def run(self, args, check=True):
        """(rc, stdout, stderr); with check, a failure raises VBoxFailure naming the command."""
        rc, out, err = self.module.run_command([self.binary] + [str(arg) for arg in args],
                                               environ_update={'LC_ALL': 'C', 'LANG': 'C'})
        out, missing = strip_driver_warning(out)
        err, missing_err = strip_driver_warning(err)
        self.driver_missing = self.driver_missing or missing or missing_err
        if check and rc != 0:
            raise VBoxFailure('VBoxManage %s failed: %s' % (' '.join(str(arg) for arg in args[:2]), error_text(err)))
        return rc, out, err

    def machinereadable(self, args):
        """Run a command with --machinereadable and parse its output."""
        _rc, out, _err = self.run(list(args) + ['--machinereadable'])
        return parse_machinereadable(out)

    def vms(self):
        """Registered VMs: [(name, uuid)]."""
        return parse_list(self.run(['list', 'vms'])[1])

    def showvminfo(self, vm):
        """showvminfo --machinereadable of a VM (name or UUID), or None when it is not registered."""
        rc, out, err = self.run(['showvminfo', vm, '--machinereadable'], check=False)
        if rc != 0:
            if NOT_FOUND in err or 'Could not find a registered machine' in err:
                return None
            raise VBoxFailure('cannot read VM %s: %s' % (vm, error_text(err)))
        return parse_machinereadable(out)
