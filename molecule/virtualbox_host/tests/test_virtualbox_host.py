"""What the virtualbox_host role leaves on a host (source distro, Debian sid), checked on the host itself."""

import re

MEMBER = "virtops-member"
OUTSIDER = "virtops-outsider"
COMPONENT_SOURCES = "/etc/apt/sources.list.d/virtops-virtualbox-contrib.sources"


def test_virtualbox_is_installed_from_contrib(host):
    assert host.package("virtualbox").is_installed
    policy = host.check_output("apt-cache policy virtualbox")
    assert " sid/contrib " in policy, policy


def test_vboxmanage_runs_and_is_the_installed_version(host):
    # Debian's package version ("7.2.4-dfsg-1", maybe with an epoch) against VBoxManage's
    # ("7.2.4_Debianr170995"; without /dev/vboxdrv a warning comes first, the version is the last line).
    package = host.check_output("dpkg-query --show --showformat '${Version}' virtualbox")
    installed = re.match(r"^(?:[0-9]+:)?([0-9]+\.[0-9]+\.[0-9]+)", package)
    assert installed, package
    result = host.run("VBoxManage --version")
    assert result.rc == 0, result.stderr
    version = result.stdout.strip().splitlines()[-1]
    assert re.match(r"^([0-9]+\.[0-9]+\.[0-9]+)", version).group(1) == installed.group(1), (version, package)


def test_contrib_sources_file_mirrors_the_system_entry(host):
    sources = host.file(COMPONENT_SOURCES)
    assert sources.user == "root" and sources.group == "root" and sources.mode == 0o644
    # The system's own entry (scripts/build-image.sh: "deb <mirror> sid main") gives the mirror.
    mirror = host.check_output("awk '$1 == \"deb\" { print $2; exit }' /etc/apt/sources.list").rstrip("/") + "/"
    stanzas = [line for line in sources.content_string.splitlines() if line and not line.startswith("#")]
    assert stanzas == ["Types: deb", "URIs: " + mirror, "Suites: sid", "Components: contrib"]


def test_member_is_in_vboxusers_and_keeps_its_other_groups(host):
    groups = set(host.user(MEMBER).groups)
    assert groups == {MEMBER, "vboxusers"}, groups
    assert MEMBER in host.group("vboxusers").members


def test_outsider_is_left_alone(host):
    assert "vboxusers" not in host.user(OUTSIDER).groups


def test_nothing_from_oracle_and_no_extension_pack(host):
    assert not host.file("/etc/apt/sources.list.d/virtualbox-oracle.sources").exists
    assert not host.file("/etc/apt/keyrings/virtualbox-oracle.asc").exists
    assert "Oracle VirtualBox Extension Pack" not in host.check_output("VBoxManage list extpacks")


def test_kernel_driver_left_alone_in_a_container(host):
    # virtualbox_host_kernel_modules: false here: no headers were installed for the (host's) kernel.
    kernel = host.check_output("uname -r")
    assert not host.package("linux-headers-" + kernel).is_installed
