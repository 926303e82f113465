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

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure

DRIVER_DEVICE = '/dev/vboxdrv'
DRIVER_WARNING_START = 'WARNING: The character device /dev/vboxdrv does not exist.'
DRIVER_WARNING_END = 'You will not be able to start VMs until this problem is fixed.'
NOT_FOUND = 'VBOX_E_OBJECT_NOT_FOUND'


class VBoxFailure(ModuleFailure):
    """A VBoxManage call failed, or its output is not what was expected; the message is for the user."""


def about(what, work, *args):
    """Run work(*args); a VBoxFailure it raises that names no object is about `what` (``VM 'web1'``)."""
    try:
        return work(*args)
    except VBoxFailure as failure:
        if failure.about is None:
            failure.about = what
        raise


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


def read_tree(values):
    """The snapshot tree in showvminfo (or `snapshot list`) --machinereadable values.

    VBoxManage names nodes by path (`SnapshotName` the root, `SnapshotName-1-2` the second child of
    its first child). Every node is keyed by UUID: VirtualBox allows two snapshots of the same name.
    Returns {'roots': [uuid], 'children': {uuid: [uuid]},
    'info': {uuid: {'name', 'description'}}, 'current': uuid or None}.
    """
    nodes = {}
    for key in values:
        match = re.match(r'^SnapshotName((?:-\d+)*)$', key)
        if match:
            nodes[match.group(1)] = values.get('SnapshotUUID' + match.group(1))
    tree = {'roots': [], 'children': {}, 'info': {}, 'current': None}
    for suffix in sorted(nodes, key=lambda s: [int(part) for part in s.split('-')[1:]]):
        uuid = nodes[suffix]
        tree['info'][uuid] = {'name': values['SnapshotName' + suffix],
                              'description': values.get('SnapshotDescription' + suffix, '')}
        tree['children'][uuid] = []
        if suffix:
            tree['children'][nodes[suffix.rpartition('-')[0]]].append(uuid)
        else:
            tree['roots'].append(uuid)
        if values.get('CurrentSnapshotNode') == 'SnapshotName' + suffix:
            tree['current'] = uuid
    return tree


def walk(tree):
    """(uuid, depth) in tree order: parents before children, children in VirtualBox's order."""
    order = []

    def visit(uuids, depth):
        for uuid in uuids:
            order.append((uuid, depth))
            visit(tree['children'][uuid], depth + 1)
    visit(tree['roots'], 0)
    return order


def parent_of(tree, uuid):
    return next((parent for parent, children in tree['children'].items() if uuid in children), None)


def snapshot_entry(tree, uuid):
    """One snapshot of a read_tree() tree: name, uuid, description, parent and children (names), current."""
    parent = parent_of(tree, uuid)
    return {
        'name': tree['info'][uuid]['name'],
        'uuid': uuid,
        'description': tree['info'][uuid]['description'],
        'parent': tree['info'][parent]['name'] if parent else None,
        'children': [tree['info'][child]['name'] for child in tree['children'][uuid]],
        'current': tree['current'] == uuid,
    }


def parse_snapshots(values):
    """The snapshots of showvminfo (or `snapshot list`) --machinereadable values in tree order, parents
    before children (see snapshot_entry), and the current snapshot's name or None."""
    tree = read_tree(values)
    return [snapshot_entry(tree, uuid) for uuid, _depth in walk(tree)], values.get('CurrentSnapshotName')


def parse_ostypes(text):
    """`VBoxManage list ostypes`: [(id, description)] in VirtualBox's order."""
    found = []
    for line in text.splitlines():
        match = re.match(r'^ID / Description:\s+(\S+) -- (.*)$', line.strip())
        if match:
            found.append((match.group(1), match.group(2).strip()))
        else:
            # VirtualBox before 7.1 printed `ID:` and `Description:` on lines of their own.
            match = re.match(r'^ID:\s+(\S+)$', line.strip())
            if match:
                found.append((match.group(1), match.group(1)))
            match = re.match(r'^Description:\s+(.*)$', line.strip())
            if match and found:
                found[-1] = (found[-1][0], match.group(1).strip())
    return found


SIZE_UNITS = {'bytes': 1, 'kbytes': 1 << 10, 'mbytes': 1 << 20, 'gbytes': 1 << 30, 'tbytes': 1 << 40}


def parse_size(text):
    """`64 MBytes` (showmediuminfo, list hdds) in bytes; None when it is not a size."""
    match = re.match(r'^\s*(\d+(?:\.\d+)?)\s*([KMGT]?Bytes)\s*$', text or '', re.I)
    if not match:
        return None
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


def parse_hdds(text):
    """`VBoxManage list --long hdds`: the registered hard disk media, each a dict with uuid, parent (uuid or
    None for a base image), location, format, state, type, virtual_size (bytes), in_use_by (VM UUIDs of the
    current states and snapshots using it) and children (uuids)."""
    media, medium, last_key = [], None, None
    for line in text.splitlines():
        if not line.strip():
            continue
        match = re.match(r'^([A-Za-z][A-Za-z /]*?):\s+(.*)$', line)
        if match:
            key, value = match.group(1), match.group(2).strip()
            last_key = key
            if key == 'UUID':
                medium = {'uuid': value, 'parent': None, 'location': None, 'format': None, 'state': None,
                          'type': None, 'virtual_size': None, 'in_use_by': [], 'children': []}
                media.append(medium)
            elif medium is None:
                continue
            elif key == 'Parent UUID':
                medium['parent'] = None if value == 'base' else value
            elif key == 'Location':
                medium['location'] = value
            elif key == 'Storage format':
                medium['format'] = value
            elif key == 'State':
                medium['state'] = value
            elif key == 'Type':
                medium['type'] = value
            elif key == 'Capacity':
                medium['virtual_size'] = parse_size(value)
            elif key == 'In use by VMs':
                medium['in_use_by'] = _vm_uuids(value)
            elif key == 'Child UUIDs':
                medium['children'] = [value]
        elif medium is not None and line.startswith(' ') and last_key in ('Child UUIDs', 'In use by VMs'):
            # Continuation lines: further children, or further VMs using the medium.
            if last_key == 'Child UUIDs':
                medium['children'].append(line.strip())
            else:
                medium['in_use_by'].extend(_vm_uuids(line))
    return media


def _vm_uuids(text):
    """The VM UUIDs in an `In use by VMs:` value: `web (UUID: <vm>) [snap (UUID: <snapshot>)]`."""
    found = []
    for match in re.finditer(r'\(UUID: ([0-9a-fA-F-]+)\)(?: \[[^\]]*\])?', text):
        found.append(match.group(1))
    # The bracketed snapshot UUIDs are not VMs: keep only those outside brackets.
    outside = re.sub(r'\[[^\]]*\]', '', text)
    return [uuid for uuid in found if uuid in outside]


def parse_import_dry_run(text):
    """What `VBoxManage import <appliance> -n` says it would create for virtual system 0: a dict with
    ostype, name, memory (MiB), cpus, description, base_folder (the keys it printed)."""
    found = {}
    patterns = (
        ('ostype', r'^\s*\d+: Suggested OS type: "(.*)"'),
        ('name', r'^\s*\d+: Suggested VM name "(.*)"'),
        ('base_folder', r'^\s*\d+: Suggested VM base folder "(.*)"'),
        ('cpus', r'^\s*\d+: Number of CPUs: (\d+)'),
        ('memory', r'^\s*\d+: Guest memory: (\d+) MB'),
    )
    lines = text.split('\n')
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith('Virtual system 1:'):
            break
        for key, pattern in patterns:
            match = re.match(pattern, line)
            if match:
                found[key] = int(match.group(1)) if key in ('cpus', 'memory') else match.group(1)
        match = re.match(r'^\s*\d+: Description "(.*)$', line)
        if match:
            value = match.group(1)
            while not value.endswith('"') and i + 1 < len(lines):
                i += 1
                value += '\n' + lines[i]
            found['description'] = value[:-1]
        i += 1
    return found


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

    def ostypes(self):
        """The guest OS types this VirtualBox knows: [(id, description)]."""
        return parse_ostypes(self.run(['list', 'ostypes'])[1])

    def hdds(self):
        """The registered hard disk media (see parse_hdds)."""
        return parse_hdds(self.run(['list', '--long', 'hdds'])[1])

    @staticmethod
    def driver_present():
        """Whether the VirtualBox kernel driver's device exists (VMs can start)."""
        return os.path.exists(DRIVER_DEVICE)

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
