# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every role's meta/argument_specs.yml matches its defaults/main.yml: same variables, same defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[3] / 'roles').iterdir() if p.is_dir())


def load(path):
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize('role', ROLES, ids=[r.name for r in ROLES])
def test_defaults_and_argument_specs_agree(role):
    defaults = load(role / 'defaults' / 'main.yml')
    options = load(role / 'meta' / 'argument_specs.yml')['argument_specs']['main']['options']
    assert sorted(defaults) == sorted(options), 'variables in only one of defaults/main.yml and argument_specs.yml'
    for name, spec in options.items():
        assert name.startswith(role.name + '_'), name
        assert spec.get('description'), '%s has no description' % name
        # A null default means "unset": argument_specs then states no default.
        assert spec.get('default') == defaults[name], name
