# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the molecule scenarios' rerun tests (molecule/*/tests/test_role_reruns.py).

pytest.ini puts tests/lib on sys.path, for molecule's testinfra runs too (their rootdir is the checkout).
"""

from __future__ import annotations

from pathlib import Path

import yaml

TOP = Path(__file__).resolve().parents[2]


def role_defaults(role):
    return yaml.safe_load((TOP / "roles" / role / "defaults" / "main.yml").read_text())


def boolean_strings(role, value, **others):
    """Every boolean variable of the role as "name=<value>" for `-e` (a string, as from a command line).

    `others` gives some of them another value.
    """
    return ["%s=%s" % (name, others.get(name, value)) for name, default in role_defaults(role).items() if isinstance(default, bool)]


def assert_no_conditional_error(output):
    """ansible-core 2.19 refuses a conditional whose result is not a boolean (a string "true", say)."""
    assert "must have a boolean result" not in output, output
    assert "The conditional check" not in output, output
