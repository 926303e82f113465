# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_libvirt: libvirt errors become LibvirtFailure in one place; conflicts with another run are retried."""

from __future__ import annotations

import libvirt
import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _libvirt
from ansible_collections.virtops.hypervisor.plugins.module_utils._libvirt import (
    LibvirtFailure, read_domain, lookup_domain, retry_on_conflict, with_connection)

URI = 'test:///default'


@pytest.fixture(scope='module')
def conn():
    connection = libvirt.open(URI)
    yield connection
    connection.close()


def test_missing_bindings_fail_naming_the_package(monkeypatch):
    monkeypatch.setattr(_libvirt, 'libvirt', None)
    with pytest.raises(LibvirtFailure) as caught:
        _libvirt.require_libvirt()
    assert 'python3-libvirt' in caught.value.msg and 'pip install libvirt-python' in caught.value.msg
    assert 'exception' in caught.value.returns


def test_a_libvirt_error_becomes_a_failure_naming_the_connection():
    with pytest.raises(LibvirtFailure) as caught:
        with_connection(URI, lambda conn: conn.lookupByName('no-such-domain'))
    assert str(caught.value).startswith('libvirt at test:///default: Domain not found')


def test_a_conflict_is_read_again_and_acted_on_what_still_differs(conn):
    """The first attempt starts a domain that another run started in between; the second sees it running."""
    dom = conn.lookupByName('test')
    dom.destroy()
    calls = []

    def attempt(seen):
        calls.append(seen.state)
        if seen.state == 'shutoff':
            dom.create()  # the other run is faster ...
            dom.create()  # ... so this start fails: the domain is already running
        return 'done'
    assert retry_on_conflict(lambda: read_domain(conn, 'test'), attempt) == 'done'
    assert calls == ['shutoff', 'running']


def test_a_failure_on_an_unchanged_object_is_raised_at_once(conn):
    calls = []

    def attempt(seen):
        calls.append(seen)
        raise LibvirtFailure('refused')
    with pytest.raises(LibvirtFailure):
        retry_on_conflict(lambda: read_domain(conn, 'test'), attempt)
    assert len(calls) == 1


def test_retries_are_bounded(conn):
    readings = iter(range(10))
    calls = []

    def attempt(seen):
        calls.append(seen)
        raise LibvirtFailure('it changes every time')
    with pytest.raises(LibvirtFailure):
        retry_on_conflict(lambda: next(readings), attempt, tries=3)
    assert calls == [0, 1, 2]


def test_the_first_attempt_acts_on_an_earlier_reading(conn):
    """A reading made before (when the plan was made) is what a later failure is compared with."""
    earlier = read_domain(conn, 'test')
    calls = []

    def attempt(seen):
        calls.append(seen is earlier)
        if seen is earlier:
            raise LibvirtFailure('stale')
    conn.lookupByName('test').setAutostart(int(not earlier.autostart))
    retry_on_conflict(lambda: read_domain(conn, 'test'), attempt, seen=earlier)
    assert calls == [True, False]


def test_a_missing_domain_reads_as_none(conn):
    assert lookup_domain(conn, 'no-such-domain') is None
    assert read_domain(conn, 'no-such-domain') is None
