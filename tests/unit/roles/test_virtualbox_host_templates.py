# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The repository files the virtualbox_host role writes, rendered from its templates and variables.

Oracle's repository is not reachable from the test machines, so its apt and dnf files are checked here
(and the task sequence in check mode by molecule/virtualbox_host), not by installing from it.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
import yaml

ROLE = Path(__file__).resolve().parents[3] / 'roles' / 'virtualbox_host'
DEFAULTS = yaml.safe_load((ROLE / 'defaults' / 'main.yml').read_text())


# OS family and the distributions of each; the role loads vars/<family>.yml, then <distribution>.yml.
FAMILIES = {'Debian': 'Debian', 'Ubuntu': 'Debian', 'RedHat': 'RedHat', 'Rocky': 'RedHat', 'Fedora': 'RedHat'}


def os_vars(distribution):
    """The variables the role has on a distribution: its family's file, then its own (each optional)."""
    merged = {}
    for name in dict.fromkeys((FAMILIES[distribution], distribution)):
        path = ROLE / 'vars' / (name + '.yml')
        if path.exists():
            merged.update(yaml.safe_load(path.read_text()))
    return merged


def render(template, **variables):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / 'templates')), keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters['regex_replace'] = lambda value, pattern, repl: re.sub(pattern, repl, value)
    return env.get_template(template).render(**variables)


def stanzas(text):
    """deb822 stanzas as lists of "Key: value" lines, comments dropped."""
    blocks = [[line for line in block.splitlines() if not line.startswith('#')] for block in re.split(r'\n\s*\n', text)]
    return [block for block in blocks if block]


def oracle_sources(**overrides):
    variables = {
        'virtualbox_host_oracle_repo_url': DEFAULTS['virtualbox_host_oracle_repo_url'],
        '__virtualbox_host_oracle_suite': 'bookworm',
        '__virtualbox_host_facts': {'architecture': 'x86_64'},
        '__virtualbox_host_oracle_key_path': os_vars('Debian')['__virtualbox_host_oracle_key_path'],
    }
    variables.update(overrides)
    return render('virtualbox-oracle.sources.j2', **variables)


def test_oracle_apt_source_is_deb822_signed_by_its_own_key():
    assert stanzas(oracle_sources()) == [[
        'Types: deb',
        'URIs: %s/debian' % DEFAULTS['virtualbox_host_oracle_repo_url'],
        'Suites: bookworm',
        'Components: contrib',
        'Architectures: amd64',
        'Signed-By: /etc/apt/keyrings/virtualbox-oracle.asc',
    ]]


def test_oracle_apt_source_follows_a_mirror_suite_and_architecture():
    text = oracle_sources(virtualbox_host_oracle_repo_url='https://mirror.example.test/vbox/',
                          __virtualbox_host_oracle_suite='noble', __virtualbox_host_facts={'architecture': 'aarch64'})
    assert 'URIs: https://mirror.example.test/vbox/debian\n' in text
    assert 'Suites: noble\n' in text
    assert 'Architectures: arm64\n' in text


def test_the_keyring_is_not_a_global_one():
    for family in ('Debian', 'Ubuntu'):
        path = os_vars(family)['__virtualbox_host_oracle_key_path']
        assert path.startswith('/etc/apt/keyrings/'), path
    assert os_vars('RedHat')['__virtualbox_host_oracle_key_path'].startswith('/etc/pki/rpm-gpg/')


@pytest.mark.parametrize('rpm_dir', ['el', 'fedora'])
def test_oracle_dnf_repository(rpm_dir):
    redhat = os_vars('RedHat')
    text = render('virtualbox-oracle.repo.j2',
                  virtualbox_host_oracle_repo_url=DEFAULTS['virtualbox_host_oracle_repo_url'],
                  __virtualbox_host_oracle_rpm_dir=rpm_dir,
                  __virtualbox_host_oracle_key_path=redhat['__virtualbox_host_oracle_key_path'])
    lines = [line for line in text.splitlines() if line and not line.startswith('#')]
    assert lines[0] == '[virtualbox-oracle]'
    settings = dict(line.split('=', 1) for line in lines[1:])
    assert settings['baseurl'] == '%s/rpm/%s/$releasever/$basearch' % (DEFAULTS['virtualbox_host_oracle_repo_url'], rpm_dir)
    assert settings['gpgcheck'] == '1' and settings['repo_gpgcheck'] == '1' and settings['enabled'] == '1'
    assert settings['gpgkey'] == 'file:///etc/pki/rpm-gpg/RPM-GPG-KEY-virtualbox-oracle'


def test_component_sources_group_suites_by_mirror():
    text = render('component.sources.j2', __virtualbox_host_distro_component='contrib', __virtualbox_host_component_entries=[
        ['http://mirror.example.test/debian/', 'bookworm'],
        ['http://mirror.example.test/debian/', 'bookworm-updates'],
        ['http://security.example.test/debian-security/', 'bookworm-security'],
    ])
    assert stanzas(text) == [
        ['Types: deb', 'URIs: http://mirror.example.test/debian/', 'Suites: bookworm bookworm-updates', 'Components: contrib'],
        ['Types: deb', 'URIs: http://security.example.test/debian-security/', 'Suites: bookworm-security',
         'Components: contrib'],
    ]


def test_os_files_hold_only_what_differs_from_their_family():
    family = os_vars('Debian')
    assert os_vars('Ubuntu') == dict(family, __virtualbox_host_distro_component='multiverse')
    assert os_vars('Fedora') == dict(os_vars('RedHat'), __virtualbox_host_oracle_rpm_dir='fedora')
    assert os_vars('Rocky')['__virtualbox_host_oracle_rpm_dir'] == 'el'


def test_package_names_by_source():
    assert os_vars('Debian')['__virtualbox_host_distro_packages'] == ['virtualbox']
    assert os_vars('Ubuntu')['__virtualbox_host_distro_component'] == 'multiverse'
    assert os_vars('Debian')['__virtualbox_host_oracle_package_prefix'] + DEFAULTS['virtualbox_host_version'] == 'virtualbox-7.1'
    assert os_vars('RedHat')['__virtualbox_host_oracle_package_prefix'] + DEFAULTS['virtualbox_host_version'] == 'VirtualBox-7.1'
    # RHEL and Fedora ship no VirtualBox: the role refuses source distro there.
    assert os_vars('RedHat')['__virtualbox_host_distro_packages'] == []
