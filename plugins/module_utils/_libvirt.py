# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The libvirt connection shared by the libvirt_* modules: import, connect, read host facts."""

from __future__ import annotations

import re
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure

try:
    import libvirt
except ImportError:
    libvirt = None
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()
else:
    LIBVIRT_IMPORT_ERROR = None
    # libvirt prints every error to stderr unless a handler takes it; the modules report errors themselves.
    libvirt.registerErrorHandler(lambda context, error: None, None)

URI_OPTION = {'type': 'str', 'default': 'qemu:///system'}

STATE_NAMES = {
    0: 'nostate', 1: 'running', 2: 'running', 3: 'paused', 4: 'shutdown', 5: 'shutoff', 6: 'crashed', 7: 'pmsuspended',
}


class LibvirtFailure(ModuleFailure):
    """A libvirt call failed; the message names the object and what to check."""


def require_libvirt(module):
    if libvirt is None:
        module.fail_json(
            msg=missing_required_lib(
                'libvirt-python',
                reason='to talk to libvirt (on Debian and Ubuntu install python3-libvirt; on EL and Fedora '
                       'python3-libvirt; in a virtualenv pip install libvirt-python)'),
            exception=LIBVIRT_IMPORT_ERROR)


def run_with_connection(module, work):
    """Connect to module.params['uri'] and return work(conn); a failure ends the module with its message."""
    require_libvirt(module)
    try:
        return work(connect(module.params['uri']))
    except LibvirtFailure as exc:
        module.fail_json(msg=str(exc))
    except libvirt.libvirtError as exc:
        module.fail_json(msg='libvirt at %s: %s' % (module.params['uri'], error_text(exc)))


def connect(uri):
    """Open a read-write connection or raise LibvirtFailure saying what to check."""
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        hint = ('Check that the libvirt daemon runs on the host (systemctl status libvirtd.socket, or '
                'pgrep libvirtd without systemd) and that the user running the module may use its socket: '
                'a member of the group set by unix_sock_group (usually libvirt), or use become.')
        if uri.startswith('test:'):
            hint = ''
        raise LibvirtFailure(('cannot connect to libvirt at %s: %s. %s' % (uri, error_text(exc), hint)).strip())


def error_text(exc):
    return (exc.get_error_message() or str(exc)).strip()


def is_error(exc, *codes):
    return exc.get_error_code() in [getattr(libvirt, code) for code in codes if hasattr(libvirt, code)]


class HostCapabilities(object):
    """What the connected hypervisor offers, from one getCapabilities() call."""

    def __init__(self, conn):
        xml = conn.getCapabilities()
        self.arch = _first(r'<host>.*?<arch>([^<]+)</arch>', xml) or 'x86_64'
        host_cpu = _first(r'<host>(.*?)</host>', xml) or ''
        self.hardware_virtualization = bool(re.search(r"<feature name='(vmx|svm)'/>", host_cpu))
        self.domain_types = []
        self.machine_aliases = {}
        for guest in re.findall(r'<guest>(.*?)</guest>', xml, re.S):
            if "<arch name='%s'>" % self.arch not in guest:
                continue
            for domain_type in re.findall(r"<domain type='(\w+)'", guest):
                if domain_type not in self.domain_types:
                    self.domain_types.append(domain_type)
            for canonical, alias in re.findall(r"<machine canonical='([^']+)'[^>]*>([^<]+)</machine>", guest):
                self.machine_aliases.setdefault(alias, canonical)

    def default_domain_type(self):
        """kvm when the host can accelerate guests, else qemu (TCG); the test driver offers only test."""
        if 'kvm' in self.domain_types and self.hardware_virtualization:
            return 'kvm'
        if 'qemu' in self.domain_types:
            return 'qemu'
        return self.domain_types[0] if self.domain_types else 'qemu'


def _first(pattern, text):
    found = re.search(pattern, text, re.S)
    return found.group(1).strip() if found else None
