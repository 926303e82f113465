# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which operating system does this host run, and how are packages and services managed?

Private to virtops.hypervisor. ``parse_os_release()``, ``os_family()`` and ``distribution()`` are
pure functions; ``gather_os()`` is the only part that touches the filesystem, and it reads below a
root directory so tests can point it at a fake tree. The names follow Ansible's facts
(``ansible_os_family``, ``ansible_distribution``) so roles can drop ``ansible.builtin.setup``.
"""

from __future__ import annotations

import os
import re

from ansible_collections.virtops.hypervisor.plugins.module_utils._host_files import read_text

# Where os-release(5) says to look, in order.
OS_RELEASE_PATHS = ('etc/os-release', 'usr/lib/os-release')

# KEY=value, the value optionally in matching single or double quotes (os-release(5)).
_LINE = re.compile(r'^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<quote>["\']?)(?P<value>.*)(?P=quote)$')
# Shell escapes os-release(5) allows in values: \\ \$ \" \' \`
_ESCAPE = re.compile(r'\\([\\$"\'`])')

# ID / ID_LIKE words and the Ansible OS family they belong to.
FAMILIES = {
    'debian': 'Debian', 'ubuntu': 'Debian',
    'rhel': 'RedHat', 'fedora': 'RedHat', 'centos': 'RedHat',
    'suse': 'Suse', 'opensuse': 'Suse',
    'arch': 'Archlinux',
}

# os-release ID and the name Ansible's ansible_distribution uses for it, where that is not just the ID capitalized.
DISTRIBUTIONS = {
    'debian': 'Debian', 'ubuntu': 'Ubuntu', 'fedora': 'Fedora', 'rocky': 'Rocky', 'almalinux': 'AlmaLinux',
    'rhel': 'RedHat', 'centos': 'CentOS', 'ol': 'OracleLinux', 'amzn': 'Amazon', 'arch': 'Archlinux',
    'sles': 'SLES', 'opensuse-leap': 'openSUSE Leap', 'opensuse-tumbleweed': 'openSUSE Tumbleweed',
}

# First binary found wins. apt before the rest: Debian hosts sometimes carry other package tools.
# dnf5 before dnf: on Fedora 41+ /usr/bin/dnf is a symlink to dnf5.
PACKAGE_MANAGERS = (
    ('apt', ('usr/bin/apt-get',)),
    ('dnf5', ('usr/bin/dnf5',)),
    ('dnf', ('usr/bin/dnf',)),
    ('zypper', ('usr/bin/zypper', 'usr/sbin/zypper')),
    ('pacman', ('usr/bin/pacman',)),
    ('apk', ('sbin/apk', 'usr/sbin/apk', 'usr/bin/apk')),
)


def parse_os_release(text):
    """Parse os-release(5) text into a dict of KEY: value.

    Blank lines, ``#`` comments and lines that are not assignments are skipped; single or double
    quotes around a value are removed, and so are the backslashes of shell escapes. A later
    assignment of the same key wins, as it would when a shell sources the file.
    """
    info = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        value = match.group('value')
        if match.group('quote') != "'":  # the shell takes single-quoted text literally
            value = _ESCAPE.sub(r'\1', value)
        info[match.group('key')] = value
    return info


def _words(info):
    """ID followed by the ID_LIKE words, lower case."""
    words = [info.get('ID', '').strip().lower()]
    words += info.get('ID_LIKE', '').lower().split()
    return [w for w in words if w]


def os_family(info):
    """Ansible-style OS family (``Debian``, ``RedHat``, ``Suse``, ``Archlinux``, ...) for parsed os-release.

    ID is looked at first, then ID_LIKE in order. A distribution unrelated to those families gets its
    ID capitalized (``Alpine``); without an ID (no os-release) the family is an empty string.
    """
    words = _words(info)
    for word in words:
        if word in FAMILIES:
            return FAMILIES[word]
        if word.startswith('opensuse') or word in ('sles', 'sled', 'sles_sap'):
            return 'Suse'
    return words[0].capitalize() if words else ''


def distribution(info):
    """Ansible-style distribution name (``Debian``, ``Ubuntu``, ``RedHat`` for rhel, ...) for parsed os-release."""
    os_id = info.get('ID', '').strip().lower()
    return DISTRIBUTIONS.get(os_id, os_id.capitalize())


def read_os_release(root='/'):
    """Parsed /etc/os-release below ``root``, else /usr/lib/os-release; an empty dict when neither can be read."""
    for name in OS_RELEASE_PATHS:
        text = read_text(os.path.join(root, name))
        if text is not None:
            return parse_os_release(text)
    return {}


def package_manager(root='/'):
    """``apt``, ``dnf5``, ``dnf``, ``zypper``, ``pacman`` or ``apk``, by the first binary found; else ``unknown``."""
    for name, paths in PACKAGE_MANAGERS:
        if any(os.path.exists(os.path.join(root, path)) for path in paths):
            return name
    return 'unknown'


def service_manager(root='/'):
    """``systemd`` when it was booted with (sd_booted(): /run/systemd/system is a directory), else PID 1's name."""
    if os.path.isdir(os.path.join(root, 'run/systemd/system')):
        return 'systemd'
    comm = (read_text(os.path.join(root, 'proc/1/comm')) or '').strip()
    return comm or 'unknown'


def gather_os(root='/'):
    """Read the host's OS facts below ``root`` and return the ``virt_host.os`` dict."""
    info = read_os_release(root)
    return {
        'id': info.get('ID', '').strip().lower(),
        'id_like': info.get('ID_LIKE', '').lower().split(),
        'version_id': info.get('VERSION_ID', ''),
        'version_codename': info.get('VERSION_CODENAME') or info.get('UBUNTU_CODENAME', ''),
        'pretty_name': info.get('PRETTY_NAME', ''),
        'family': os_family(info),
        'distribution': distribution(info),
        'package_manager': package_manager(root),
        'service_manager': service_manager(root),
    }
