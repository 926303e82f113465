# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest plugin: a skip is a failure unless tests/allowed_skips.yml lists it with its reason.

A skipped test claims that the thing cannot be tested here; a missing mount, binding or package
must show up as a failure, not as a green run. Every pytest run of `make test` loads this plugin
(`-p virtops_skips` in PYTEST_ADDOPTS, tests/lib on PYTHONPATH): unit tests, integration tests and
molecule's testinfra verify steps.

Each entry of the allow-list names a test id (`*` matches any text, nothing else is special) and
the exact skip reason, and says why that skip is legitimate:

    - test: molecule/kvm_host/tests/test_kvm_host.py::test_daemons_run_without_systemd[podman://*]
      reason: systemd runs the daemons here
      why: the plain-daemon path is verified on this machine (localhost scenario)

An unlisted skip (of a test, or of a whole module at collection) is reported as a failure that
names the test, its reason and the file to add it to. VIRTOPS_ALLOWED_SKIPS names another list.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ALLOW_LIST = Path(os.environ.get('VIRTOPS_ALLOWED_SKIPS', str(Path(__file__).resolve().parents[1] / 'allowed_skips.yml')))


def _pattern(text):
    return re.compile('.*'.join(re.escape(part) for part in text.split('*')) + r'\Z', re.DOTALL)


def load(path=ALLOW_LIST):
    """The allow-list as [(test pattern, reason)]; a malformed entry is an error, not a silent allowance."""
    entries = yaml.safe_load(path.read_text()) or []
    allowed = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) != {'test', 'reason', 'why'} or not all(
                isinstance(entry[key], str) and entry[key].strip() for key in entry):
            raise pytest.UsageError('%s, entry %d: needs exactly the keys test, reason and why, each a '
                                    'non-empty string' % (path, number))
        allowed.append((_pattern(entry['test']), entry['reason']))
    return allowed


def skip_reason(report):
    """The reason pytest recorded for a skip (without its 'Skipped: ' prefix), or an expected failure's."""
    if hasattr(report, 'wasxfail'):  # an xfail passes as silently as a skip: it must be listed as well
        return report.wasxfail
    longrepr = report.longrepr
    message = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return message[len('Skipped: '):] if message.startswith('Skipped: ') else message


def is_allowed(allowed, nodeid, reason):
    return any(reason == wanted and pattern.match(nodeid) for pattern, wanted in allowed)


def _refuse(report):
    reason = skip_reason(report)
    report.outcome = 'failed'
    report.longrepr = ('skipped, and the skip is not on the allow-list %s: a skip is a failure unless it is listed '
                       'there with its reason.\n  test: %s\n  reason: %s' % (ALLOW_LIST, report.nodeid, reason))


def pytest_configure(config):
    config.stash[_ALLOWED] = load()


_ALLOWED = pytest.StashKey()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and not is_allowed(
            item.config.stash[_ALLOWED], report.nodeid, skip_reason(report)):
        _refuse(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.skipped and not is_allowed(collector.config.stash[_ALLOWED], report.nodeid, skip_reason(report)):
        _refuse(report)
    return report
