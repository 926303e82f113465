# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for unit tests that must run on every ansible-core the collection supports (2.17 and later).

`make unit` runs the unit tests with the newest ansible-core (.venv) and the oldest that
meta/runtime.yml accepts (.venv-core217); import version-dependent test helpers from here.
"""

from __future__ import annotations

import contextlib
import json
from unittest import mock

from ansible.release import __version__

try:
    from ansible.module_utils.testing import patch_module_args  # ansible-core 2.19 and later
except ImportError:  # ansible-core 2.17, 2.18: AnsibleModule reads basic._ANSIBLE_ARGS
    from ansible.module_utils import basic as _basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        """Expose the given module args to `AnsibleModule` instances created within this context."""
        if not isinstance(args, (dict, type(None))):
            raise TypeError('The `args` arg must be a dict or None.')
        encoded = json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}).encode()
        with mock.patch.object(_basic, '_ANSIBLE_ARGS', encoded):
            yield


def run_main(module, args, capsys, check=False, diff=True):
    """Run a module's main() in-process with args (and the check and diff flags); its JSON result. capsys is
    pytest's fixture, which holds what main() printed.

    The result gets `warned`: the module's warnings as one text. Once controller code is imported in the
    process (the filter and inventory plugin tests import it), ansible-core shows module warnings on stderr
    instead of returning them; the warnings a user sees are either.
    """
    with patch_module_args(dict(args, _ansible_check_mode=check, _ansible_diff=diff)):
        try:
            module.main()
        except SystemExit:
            pass
        else:
            raise AssertionError('%s.main() returned without exit_json or fail_json' % module.__name__)
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    result['warned'] = json.dumps(result.get('warnings', [])) + captured.err
    return result


TEST_DRIVER_URI = 'test:///default'


def on_test_driver(module, capsys):
    """A function that runs module's main() against libvirt's test driver (run_main's result), taking the module
    arguments as a dict, as keywords or both: call({'name': 'a'}, check=True), call(name='a')."""
    def call(args=None, check=False, diff=True, **more):
        return run_main(module, dict(args or {}, uri=TEST_DRIVER_URI, **more), capsys, check, diff)
    return call


# A stdout callback that prints the run as one JSON document: ansible.builtin.json from 2.19 on; before
# that ansible.posix.json (make venv copies ansible.posix into .venv-core217 from the pinned ansible package).
JSON_STDOUT_CALLBACK = 'ansible.builtin.json' if tuple(int(part) for part in __version__.split('.')[:2]) >= (2, 19) \
    else 'ansible.posix.json'

__all__ = ['JSON_STDOUT_CALLBACK', 'TEST_DRIVER_URI', 'on_test_driver', 'patch_module_args', 'run_main']
