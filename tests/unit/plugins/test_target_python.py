# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Modules and module_utils run on the managed hosts' Python, which can be older than this one.

meta/runtime.yml accepts ansible-core 2.17, whose oldest target Python is 3.7; ansible-test sanity here
only compiles with the Python it has (3.11). This parses every module and module_util with 3.7's grammar
and rejects the newer standard-library methods that would still parse.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / 'plugins'
TARGET_CODE = sorted(PLUGINS.glob('modules/*.py')) + sorted(PLUGINS.glob('module_utils/*.py'))
OLDEST_TARGET = (3, 7)
# Methods added after 3.7 that a 3.7 grammar check cannot see.
NEWER_METHODS = {'removeprefix': '3.9', 'removesuffix': '3.9', 'is_relative_to': '3.9', 'with_stem': '3.9',
                 'bit_count': '3.10'}


def test_there_is_target_code():
    assert len(TARGET_CODE) > 10


@pytest.mark.parametrize('path', TARGET_CODE, ids=lambda path: '%s/%s' % (path.parent.name, path.name))
def test_parses_with_the_oldest_target_grammar(path):
    source = path.read_text()
    try:
        tree = ast.parse(source, filename=str(path), feature_version=OLDEST_TARGET)
    except SyntaxError as exc:
        pytest.fail('%s:%s: not Python %d.%d syntax: %s' % (path, exc.lineno, OLDEST_TARGET[0], OLDEST_TARGET[1],
                                                            exc.msg))
    newer = ['%s:%d: .%s() needs Python %s' % (path.name, node.lineno, node.attr, NEWER_METHODS[node.attr])
             for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr in NEWER_METHODS]
    assert newer == []
