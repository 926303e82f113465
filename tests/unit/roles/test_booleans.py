# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Boolean role variables given on the command line (`-e kvm_host_allow_emulation=true`) are strings.

ansible-core 2.19 refuses a conditional whose result is a string ("Conditionals must have a boolean
result"), and a string "false" is true in a template. So every boolean variable of a role is read
through `| bool` wherever a task, a vars file or a template uses it in an expression. This reads the
roles' files; molecule/*/tests/test_role_reruns.py runs the roles with each boolean as a string.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[3] / 'roles').iterdir() if p.is_dir())
# Keys whose value is a bare Jinja expression, not a string with {{ }} in it.
EXPRESSION_KEYS = frozenset(('when', 'that', 'failed_when', 'changed_when', 'until'))
TEMPLATED = re.compile(r'{{(.*?)}}|{%(.*?)%}', re.DOTALL)
STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def boolean_variables(role):
    defaults = yaml.safe_load((role / 'defaults' / 'main.yml').read_text()) or {}
    return sorted(name for name, value in defaults.items() if isinstance(value, bool))


def expressions_in(value, bare=False):
    """The Jinja expressions in a loaded YAML value: whole strings under `when` and friends, {{ }}/{% %} elsewhere."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from expressions_in(item, bare=key in EXPRESSION_KEYS)
    elif isinstance(value, list):
        for item in value:
            yield from expressions_in(item, bare=bare)
    elif isinstance(value, str):
        if bare:
            yield value
        else:
            yield from (match.group(1) or match.group(2) for match in TEMPLATED.finditer(value))


def role_expressions(role):
    """(file, expression) for every expression in the role's tasks, vars, defaults-free files and templates."""
    for path in sorted(role.rglob('*')):
        relative = path.relative_to(role)
        if relative.parts[0] in ('tasks', 'vars', 'handlers') and path.suffix == '.yml':
            for expression in expressions_in(yaml.safe_load(path.read_text())):
                yield str(relative), expression
        elif relative.parts[0] == 'templates' and path.is_file():
            for match in TEMPLATED.finditer(path.read_text()):
                yield str(relative), match.group(1) or match.group(2)


def unconverted_uses(role):
    names = boolean_variables(role)
    found = []
    for where, expression in role_expressions(role):
        code = STRING_LITERAL.sub("''", expression)  # names inside messages are text, not reads
        for name in names:
            for use in re.finditer(r'\b%s\b(?!\s*\|\s*bool\b)' % re.escape(name), code):
                found.append('%s: %s in %r' % (where, name, ' '.join(expression.split())[:120]))
    return found


@pytest.mark.parametrize('role', ROLES, ids=[r.name for r in ROLES])
def test_every_boolean_variable_is_read_through_bool(role):
    assert boolean_variables(role), 'the role has no boolean variable: the test would check nothing'
    assert unconverted_uses(role) == []


def test_the_check_finds_a_boolean_read_as_it_is(tmp_path):
    role = tmp_path / 'demo_role'
    (role / 'defaults').mkdir(parents=True)
    (role / 'tasks').mkdir()
    (role / 'defaults' / 'main.yml').write_text('demo_role_flag: false\n')
    (role / 'tasks' / 'main.yml').write_text(
        '- name: Fine\n'
        '  ansible.builtin.debug:\n'
        '    msg: "{{ \'demo_role_flag is off\' if not demo_role_flag | bool else \'on\' }}"\n'
        '  when: demo_role_flag | bool\n'
        '- name: Not fine\n'
        '  ansible.builtin.debug:\n'
        '    msg: "{{ demo_role_flag | ternary(1, 0) }}"\n'
    )
    assert unconverted_uses(role) == ["tasks/main.yml: demo_role_flag in 'demo_role_flag | ternary(1, 0)'"]
