# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import platform

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _os_release

# /etc/os-release (or /usr/lib/os-release) as the distributions ship it.
DEBIAN_12 = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

DEBIAN_13 = """\
PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.1
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

# unstable has no VERSION_ID and no VERSION
DEBIAN_SID = """\
PRETTY_NAME="Debian GNU/Linux forky/sid"
NAME="Debian GNU/Linux"
VERSION_CODENAME=forky
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

UBUNTU_2404 = """\
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
"""

ROCKY_9 = """\
NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.4"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
"""

# unquoted VERSION_ID, and an empty quoted VERSION_CODENAME
FEDORA_41 = """\
NAME="Fedora Linux"
VERSION="41 (Server Edition)"
RELEASE_TYPE=stable
ID=fedora
VERSION_ID=41
VERSION_CODENAME=""
PLATFORM_ID="platform:f41"
PRETTY_NAME="Fedora Linux 41 (Server Edition)"
ANSI_COLOR="0;38;2;60;110;180"
LOGO=fedora-logo-icon
CPE_NAME="cpe:/o:fedoraproject:fedora:41"
HOME_URL="https://fedoraproject.org/"
DOCUMENTATION_URL="https://docs.fedoraproject.org/en-US/fedora/f41/system-administrators-guide/"
SUPPORT_URL="https://ask.fedoraproject.org/"
BUG_REPORT_URL="https://bugzilla.redhat.com/"
REDHAT_BUGZILLA_PRODUCT="Fedora"
REDHAT_BUGZILLA_PRODUCT_VERSION=41
REDHAT_SUPPORT_PRODUCT="Fedora"
REDHAT_SUPPORT_PRODUCT_VERSION=41
SUPPORT_END=2025-12-15
VARIANT="Server Edition"
VARIANT_ID=server
"""

# with the blank line AlmaLinux ships in the middle
ALMA_9 = """\
NAME="AlmaLinux"
VERSION="9.4 (Seafoam Ocelot)"
ID="almalinux"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="AlmaLinux 9.4 (Seafoam Ocelot)"
ANSI_COLOR="0;34"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:almalinux:almalinux:9::baseos"
HOME_URL="https://almalinux.org/"
DOCUMENTATION_URL="https://wiki.almalinux.org/"
BUG_REPORT_URL="https://bugs.almalinux.org/"

ALMALINUX_MANTISBT_PROJECT="AlmaLinux-9"
ALMALINUX_MANTISBT_PROJECT_VERSION="9.4"
REDHAT_SUPPORT_PRODUCT="AlmaLinux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
SUPPORT_END=2032-06-01
"""

RHEL_9 = """\
NAME="Red Hat Enterprise Linux"
VERSION="9.4 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"
ANSI_COLOR="0;31"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"
HOME_URL="https://www.redhat.com/"
DOCUMENTATION_URL="https://access.redhat.com/documentation/en-us/red_hat_enterprise_linux/9"
BUG_REPORT_URL="https://issues.redhat.com/"

REDHAT_BUGZILLA_PRODUCT="Red Hat Enterprise Linux 9"
REDHAT_BUGZILLA_PRODUCT_VERSION=9.4
REDHAT_SUPPORT_PRODUCT="Red Hat Enterprise Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
"""

CENTOS_STREAM_9 = """\
NAME="CentOS Stream"
VERSION="9"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="9"
PLATFORM_ID="platform:el9"
PRETTY_NAME="CentOS Stream 9"
"""

OPENSUSE_TUMBLEWEED = """\
NAME="openSUSE Tumbleweed"
# VERSION="20241120"
ID="opensuse-tumbleweed"
ID_LIKE="opensuse suse"
VERSION_ID="20241120"
PRETTY_NAME="openSUSE Tumbleweed"
"""

ARCH = """\
NAME="Arch Linux"
PRETTY_NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
"""

MANJARO = """\
NAME="Manjaro Linux"
PRETTY_NAME="Manjaro Linux"
ID=manjaro
ID_LIKE=arch
BUILD_ID=rolling
"""

ALPINE = """\
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
"""

LINUX_MINT = """\
NAME="Linux Mint"
VERSION="22 (Wilma)"
ID=linuxmint
ID_LIKE="ubuntu debian"
PRETTY_NAME="Linux Mint 22"
VERSION_ID="22"
VERSION_CODENAME=wilma
UBUNTU_CODENAME=noble
"""


def os_dict(text):
    """What gather_os reports from os-release text alone (package and service manager left out)."""
    info = _os_release.parse_os_release(text)
    return {
        'id': info.get('ID', ''), 'id_like': info.get('ID_LIKE', '').split(), 'version_id': info.get('VERSION_ID', ''),
        'family': _os_release.os_family(info), 'distribution': _os_release.distribution(info),
    }


@pytest.mark.parametrize('text, expected', [
    (DEBIAN_12, dict(id='debian', id_like=[], version_id='12', family='Debian', distribution='Debian')),
    (DEBIAN_13, dict(id='debian', id_like=[], version_id='13', family='Debian', distribution='Debian')),
    (DEBIAN_SID, dict(id='debian', id_like=[], version_id='', family='Debian', distribution='Debian')),
    (UBUNTU_2404, dict(id='ubuntu', id_like=['debian'], version_id='24.04', family='Debian', distribution='Ubuntu')),
    (ROCKY_9, dict(id='rocky', id_like=['rhel', 'centos', 'fedora'], version_id='9.4', family='RedHat', distribution='Rocky')),
    (FEDORA_41, dict(id='fedora', id_like=[], version_id='41', family='RedHat', distribution='Fedora')),
    (ALMA_9, dict(id='almalinux', id_like=['rhel', 'centos', 'fedora'], version_id='9.4', family='RedHat', distribution='AlmaLinux')),
    (RHEL_9, dict(id='rhel', id_like=['fedora'], version_id='9.4', family='RedHat', distribution='RedHat')),
    (CENTOS_STREAM_9, dict(id='centos', id_like=['rhel', 'fedora'], version_id='9', family='RedHat', distribution='CentOS')),
    (OPENSUSE_TUMBLEWEED, dict(id='opensuse-tumbleweed', id_like=['opensuse', 'suse'], version_id='20241120', family='Suse',
                               distribution='openSUSE Tumbleweed')),
    (ARCH, dict(id='arch', id_like=[], version_id='', family='Archlinux', distribution='Archlinux')),
    (MANJARO, dict(id='manjaro', id_like=['arch'], version_id='', family='Archlinux', distribution='Manjaro')),
    (ALPINE, dict(id='alpine', id_like=[], version_id='3.20.3', family='Alpine', distribution='Alpine')),
    (LINUX_MINT, dict(id='linuxmint', id_like=['ubuntu', 'debian'], version_id='22', family='Debian', distribution='Linuxmint')),
], ids=['debian12', 'debian13', 'debian-sid', 'ubuntu2404', 'rocky9', 'fedora41', 'alma9', 'rhel9', 'centos-stream9',
        'opensuse-tumbleweed', 'arch', 'manjaro', 'alpine', 'linuxmint'])
def test_real_os_release_files(text, expected):
    assert os_dict(text) == expected


def test_parse_keeps_every_key():
    info = _os_release.parse_os_release(FEDORA_41)
    assert info['PRETTY_NAME'] == 'Fedora Linux 41 (Server Edition)'
    assert info['VERSION_CODENAME'] == ''
    assert info['ANSI_COLOR'] == '0;38;2;60;110;180'
    assert info['CPE_NAME'] == 'cpe:/o:fedoraproject:fedora:41'
    assert len(info) == 22


def test_parse_quotes_escapes_comments_and_junk():
    text = '\n'.join([
        '# comment line',
        '   # indented comment',
        '',
        'ID=plain',
        "NAME='single quoted \\$HOME'",
        'PRETTY_NAME="double \\"quoted\\" \\$x \\\\ \\`y\\`"',
        'EMPTY=',
        'EMPTY_QUOTED=""',
        '  SPACED="leading and trailing whitespace"   ',
        'VERSION_ID="unterminated',
        'not an assignment',
        '1BAD=key',
        'ID=later_wins',
    ])
    assert _os_release.parse_os_release(text) == {
        'ID': 'later_wins',
        'NAME': 'single quoted \\$HOME',
        'PRETTY_NAME': 'double "quoted" $x \\ `y`',
        'EMPTY': '',
        'EMPTY_QUOTED': '',
        'SPACED': 'leading and trailing whitespace',
        'VERSION_ID': '"unterminated',
    }


def test_parse_empty():
    assert _os_release.parse_os_release('') == {}
    assert _os_release.os_family({}) == ''
    assert _os_release.distribution({}) == ''


@pytest.mark.parametrize('info, family', [
    ({'ID': 'debian'}, 'Debian'),
    ({'ID': 'raspbian', 'ID_LIKE': 'debian'}, 'Debian'),
    ({'ID': 'ol', 'ID_LIKE': 'fedora'}, 'RedHat'),
    ({'ID': 'amzn', 'ID_LIKE': 'centos rhel fedora'}, 'RedHat'),
    ({'ID': 'sles', 'ID_LIKE': 'suse'}, 'Suse'),
    ({'ID': 'opensuse-leap', 'ID_LIKE': 'suse opensuse'}, 'Suse'),
    ({'ID': 'sles'}, 'Suse'),
    ({'ID': 'gentoo'}, 'Gentoo'),
    ({'ID': 'Fedora'}, 'RedHat'),  # IDs are lower case by the spec; be lenient
    ({'ID_LIKE': 'debian'}, 'Debian'),  # no ID: the family still follows ID_LIKE
])
def test_os_family(info, family):
    assert _os_release.os_family(info) == family


@pytest.mark.parametrize('os_id, name', [
    ('debian', 'Debian'), ('ubuntu', 'Ubuntu'), ('fedora', 'Fedora'), ('rocky', 'Rocky'), ('almalinux', 'AlmaLinux'),
    ('rhel', 'RedHat'), ('centos', 'CentOS'), ('ol', 'OracleLinux'), ('amzn', 'Amazon'), ('sles', 'SLES'),
    ('opensuse-leap', 'openSUSE Leap'), ('arch', 'Archlinux'), ('alpine', 'Alpine'), ('kali', 'Kali'),
])
def test_distribution(os_id, name):
    assert _os_release.distribution({'ID': os_id}) == name


@pytest.fixture
def fake_root(tmp_path):
    """Build a fake root with an os-release, package manager binaries, /run/systemd/system and /proc/1/comm."""
    def build(os_release=None, where='etc/os-release', binaries=(), systemd=False, comm=None):
        root = tmp_path / 'root'
        root.mkdir()
        if os_release is not None:
            path = root / where
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(os_release)
        for binary in binaries:
            path = root / binary
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text('')
            path.chmod(0o755)
        if systemd:
            (root / 'run/systemd/system').mkdir(parents=True)
        if comm is not None:
            (root / 'proc/1').mkdir(parents=True)
            (root / 'proc/1/comm').write_text(comm)
        return str(root)
    return build


def test_gather_os_debian_with_systemd(fake_root):
    root = fake_root(DEBIAN_12, binaries=['usr/bin/apt-get', 'usr/bin/dpkg'], systemd=True, comm='systemd\n')
    assert _os_release.gather_os(root) == {
        'id': 'debian', 'id_like': [], 'version_id': '12', 'version_codename': 'bookworm',
        'pretty_name': 'Debian GNU/Linux 12 (bookworm)', 'family': 'Debian', 'distribution': 'Debian',
        'package_manager': 'apt', 'service_manager': 'systemd',
    }


def test_gather_os_rocky_from_usr_lib(fake_root):
    """/etc/os-release missing (it is normally a symlink): /usr/lib/os-release is read instead."""
    root = fake_root(ROCKY_9, where='usr/lib/os-release', binaries=['usr/bin/dnf', 'usr/bin/yum'], systemd=True)
    assert _os_release.gather_os(root) == {
        'id': 'rocky', 'id_like': ['rhel', 'centos', 'fedora'], 'version_id': '9.4', 'version_codename': '',
        'pretty_name': 'Rocky Linux 9.4 (Blue Onyx)', 'family': 'RedHat', 'distribution': 'Rocky',
        'package_manager': 'dnf', 'service_manager': 'systemd',
    }


def test_etc_os_release_wins_over_usr_lib(fake_root, tmp_path):
    root = fake_root(DEBIAN_13)
    (tmp_path / 'root/usr/lib').mkdir(parents=True)
    (tmp_path / 'root/usr/lib/os-release').write_text(DEBIAN_12)
    assert _os_release.gather_os(root)['version_codename'] == 'trixie'


def test_gather_os_ubuntu_codename(fake_root):
    host = _os_release.gather_os(fake_root(UBUNTU_2404, binaries=['usr/bin/apt-get']))
    assert (host['id'], host['version_id'], host['version_codename'], host['family']) == ('ubuntu', '24.04', 'noble', 'Debian')


def test_gather_os_debian_sid_in_a_container(fake_root):
    host = _os_release.gather_os(fake_root(DEBIAN_SID, binaries=['usr/bin/apt-get'], comm='bash\n'))
    assert host['version_id'] == ''
    assert host['version_codename'] == 'forky'
    assert host['service_manager'] == 'bash'


def test_gather_os_without_os_release(fake_root):
    assert _os_release.gather_os(fake_root()) == {
        'id': '', 'id_like': [], 'version_id': '', 'version_codename': '', 'pretty_name': '',
        'family': '', 'distribution': '', 'package_manager': 'unknown', 'service_manager': 'unknown',
    }


@pytest.mark.parametrize('binaries, manager', [
    (['usr/bin/apt-get'], 'apt'),
    (['usr/bin/apt-get', 'usr/bin/dnf'], 'apt'),
    (['usr/bin/dnf5', 'usr/bin/dnf'], 'dnf5'),  # Fedora 41: dnf is a symlink to dnf5
    (['usr/bin/dnf', 'usr/bin/yum'], 'dnf'),
    (['usr/bin/zypper'], 'zypper'),
    (['usr/bin/pacman'], 'pacman'),
    (['sbin/apk'], 'apk'),
    (['usr/sbin/apk'], 'apk'),
    (['usr/bin/yum'], 'unknown'),
    ([], 'unknown'),
])
def test_package_manager(fake_root, binaries, manager):
    assert _os_release.package_manager(fake_root(binaries=binaries)) == manager


def test_package_manager_follows_symlinks(fake_root, tmp_path):
    """EL 9 ships /usr/bin/dnf as a symlink to dnf-3; a dangling symlink means the package manager is gone."""
    root = fake_root(binaries=['usr/bin/dnf-3'])
    os.symlink('dnf-3', str(tmp_path / 'root/usr/bin/dnf'))
    assert _os_release.package_manager(root) == 'dnf'
    os.remove(str(tmp_path / 'root/usr/bin/dnf-3'))
    assert _os_release.package_manager(root) == 'unknown'


@pytest.mark.parametrize('systemd, comm, manager', [
    (True, 'systemd\n', 'systemd'),
    (True, None, 'systemd'),  # /proc not readable, but sd_booted() says systemd
    (False, 'systemd\n', 'systemd'),  # comm alone
    (False, 'init\n', 'init'),  # sysvinit, or podman --init
    (False, 'tini\n', 'tini'),
    (False, 'runit\n', 'runit'),
    (False, '  \n', 'unknown'),
    (False, None, 'unknown'),
])
def test_service_manager(fake_root, systemd, comm, manager):
    assert _os_release.service_manager(fake_root(systemd=systemd, comm=comm)) == manager


def test_systemd_needs_a_directory(fake_root, tmp_path):
    root = fake_root(comm='sh\n')
    (tmp_path / 'root/run/systemd').mkdir(parents=True)
    (tmp_path / 'root/run/systemd/system').write_text('')
    assert _os_release.service_manager(root) == 'sh'


@pytest.mark.skipif(not hasattr(platform, 'freedesktop_os_release') or not os.path.exists('/proc/1/comm'),
                    reason='needs Python 3.10+ and /proc')
def test_gather_os_on_this_machine():
    try:
        expected = platform.freedesktop_os_release()
    except OSError:
        pytest.skip('this machine has no os-release')
    host = _os_release.gather_os('/')
    assert host['id'] == expected['ID']
    assert host['id_like'] == expected.get('ID_LIKE', '').split()
    assert host['version_id'] == expected.get('VERSION_ID', '')
    assert host['pretty_name'] == expected.get('PRETTY_NAME', '')
    if os.path.isdir('/run/systemd/system'):
        assert host['service_manager'] == 'systemd'
    else:
        with open('/proc/1/comm') as f:
            assert host['service_manager'] == f.read().strip()
