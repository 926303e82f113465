# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The libvirt connection shared by the libvirt_* modules: import, connect, read host facts.

A libvirt module's ``main()`` is a few lines over :func:`run_libvirt_module`::

    def main():
        module = AnsibleModule(argument_spec=..., supports_check_mode=True)
        run_libvirt_module(module, lambda conn, result: SomeManager(conn, module, result).run())

It checks the bindings, connects to ``module.params['uri']`` and runs the work inside
:func:`libvirt_errors`, the one place where a ``libvirt.libvirtError`` the manager did not turn into a
:class:`LibvirtFailure` of its own becomes one; :func:`run_module` reports it. Managers that create or
change objects another run may change at the same time converge with :func:`retry_on_conflict`.
"""

from __future__ import annotations

import contextlib
import re
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure, run_module

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


def require_libvirt():
    """Raise a LibvirtFailure naming the package to install when the libvirt bindings are missing."""
    if libvirt is None:
        raise LibvirtFailure(
            missing_required_lib(
                'libvirt-python',
                reason='to talk to libvirt (on Debian and Ubuntu install python3-libvirt; on EL and Fedora '
                       'python3-libvirt; in a virtualenv pip install libvirt-python)'),
            exception=LIBVIRT_IMPORT_ERROR)


def run_libvirt_module(module, work):
    """The entry point of a libvirt module: ``run_module`` with ``work(conn, result)`` over one connection.

    ``work`` fills the Result (or returns a dict of facts, for ``*_info`` modules); a libvirt error it
    lets through is reported as a LibvirtFailure, with what had been recorded up to then.
    """
    def work_connected(result):
        require_libvirt()
        return with_connection(module.params['uri'], lambda conn: work(conn, result))
    run_module(module, work_connected)


def with_connection(uri, work):
    """Connect to uri and return work(conn); any libvirt error becomes a LibvirtFailure."""
    with libvirt_errors(uri):
        return work(connect(uri))


@contextlib.contextmanager
def libvirt_errors(uri):
    """Turn a ``libvirt.libvirtError`` raised inside into a LibvirtFailure naming the connection."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise LibvirtFailure('libvirt at %s: %s' % (uri, error_text(exc)))


# How often a change is tried on an object that another run changes at the same time.
CONFLICT_TRIES = 3
_UNREAD = object()


def retry_on_conflict(read, attempt, tries=CONFLICT_TRIES, seen=_UNREAD):
    """Optimistic concurrency: act on what was read, and when that fails because the object changed
    under us (another run defined, started or removed it in between), read again and act again.

    ``read()`` returns what the object looks like now: any value that compares equal when nothing
    changed (None for absent; see :func:`read_domain`). ``attempt(seen)`` compares ``seen`` with what
    was asked and acts on what differs, recording only what it did. When it raises a LibvirtFailure or
    a libvirt error and a new ``read()`` differs from ``seen``, the attempt runs again on the new
    reading, so it acts only on what still differs; up to ``tries`` attempts in all. A failure on an
    object that did not change in between is a real one and is raised at once, as is the failure of
    the last attempt. ``seen`` is the reading the first attempt acts on when it was made earlier (by
    default ``read()`` makes it). Returns what the successful attempt returned.
    """
    if seen is _UNREAD:
        seen = read()
    left = tries
    while True:
        left -= 1
        try:
            return attempt(seen)
        except (LibvirtFailure, libvirt.libvirtError):
            now = read() if left > 0 else seen
            if now == seen:
                raise
            seen = now


def lookup_domain(conn, name):
    """The domain named name, or None when there is none."""
    return lookup_by_name(conn.lookupByName, name, 'VIR_ERR_NO_DOMAIN')


def lookup_by_name(lookup, name, missing_code):
    """lookup(name) (conn.storagePoolLookupByName, conn.networkLookupByName ...), or None when libvirt
    answers missing_code (such as 'VIR_ERR_NO_STORAGE_POOL')."""
    try:
        return lookup(name)
    except libvirt.libvirtError as exc:
        if is_error(exc, missing_code):
            return None
        raise


class ObjectReading(object):
    """One read of a pool or network: what another run may change about it (``obj``, the handle, is not
    compared). ``xml`` is the stored definition, the one the next start uses; ``live_xml`` the one it runs
    on (``xml`` when it does not run). The test driver knows only the one definition."""

    def __init__(self, obj, inactive_flag):
        self.obj = obj
        self.uuid = obj.UUIDString()
        self.active = bool(obj.isActive())
        self.persistent = bool(obj.isPersistent())
        self.autostart = bool(obj.autostart()) if self.persistent else False
        try:
            self.xml = obj.XMLDesc(inactive_flag)
        except libvirt.libvirtError as exc:
            if not is_error(exc, 'VIR_ERR_INVALID_ARG', 'VIR_ERR_NO_SUPPORT'):
                raise
            self.xml = obj.XMLDesc(0)
        self.live_xml = obj.XMLDesc(0) if self.active else self.xml

    @property
    def state(self):
        return 'active' if self.active else 'inactive'

    def _key(self):
        return (self.uuid, self.active, self.persistent, self.autostart, self.xml, self.live_xml)

    def __eq__(self, other):
        return type(other) is type(self) and self._key() == other._key()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self._key())


def read_object(lookup, name, inactive_flag, missing_code):
    """An ObjectReading of the pool or network lookup(name) finds, or None when there is none (also when it
    is removed while being read)."""
    obj = lookup_by_name(lookup, name, missing_code)
    if obj is None:
        return None
    try:
        return ObjectReading(obj, inactive_flag)
    except libvirt.libvirtError as exc:
        if is_error(exc, missing_code):
            return None
        raise


class DomainReading(object):
    """One read of a domain: what another run may change about it.

    Two readings are equal when UUID, run state, autostart flag, managed save image and inactive
    definition are; ``dom`` (the handle to act on) is not compared.
    """

    def __init__(self, dom):
        self.dom = dom
        self.uuid = dom.UUIDString()
        self.state = STATE_NAMES.get(dom.state()[0], 'nostate')
        persistent = bool(dom.isPersistent())
        self.autostart = bool(dom.autostart()) if persistent else False
        self.managed_save = bool(dom.hasManagedSaveImage(0)) if persistent else False
        self.xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)

    @property
    def active(self):
        return self.state not in ('shutoff', 'crashed', 'nostate')

    def _key(self):
        return (self.uuid, self.state, self.autostart, self.managed_save, self.xml)

    def __eq__(self, other):
        return isinstance(other, DomainReading) and self._key() == other._key()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(self._key())


def read_domain(conn, name):
    """A DomainReading of the domain named name, or None when there is none (also when it is undefined
    while being read)."""
    dom = lookup_domain(conn, name)
    if dom is None:
        return None
    try:
        return DomainReading(dom)
    except libvirt.libvirtError as exc:
        if is_error(exc, 'VIR_ERR_NO_DOMAIN'):
            return None
        raise


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
