"""Reruns of the role: bad input and refused configurations fail naming the cause and leave the host as it
was; check and diff mode report exactly what a real run does.

Each test applies the role again (ansible-playbook) to the host testinfra checks, so the same tests
run on the systemd containers (kvm_host scenario) and on this machine (localhost scenario).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from virtops_rolelib import assert_no_conditional_error, boolean_strings

TOP = Path(__file__).resolve().parents[3]
ROLE = "kvm_host"
MANAGED_FILES = [
    "/etc/libvirt/libvirtd.conf",
    "/etc/systemd/system/libvirtd.socket.d/virtops.conf",
    "/etc/systemd/system/libvirtd-ro.socket.d/virtops.conf",
    "/etc/systemd/system/libvirtd-admin.socket.d/virtops.conf",
    "/etc/udev/rules.d/65-virtops-kvm.rules",
]


@pytest.fixture(autouse=True)
def once_per_service_manager(host):
    # Each test here reruns the whole role: run them on one systemd host (Debian 12) and on this
    # machine without systemd; Debian 13 gets the state checks of test_kvm_host.py.
    if host.backend.NAME == "podman" and host.backend.name != "virtops-kvm-debian12":
        pytest.skip("rerun tests run on virtops-kvm-debian12 and localhost")


def apply_role(host, _check=False, _strings=(), **role_vars):
    """Run playbooks/kvm_hosts.yml against the testinfra host (with --check --diff if asked); return (rc, output).

    `_strings` are "name=value" pairs given as `-e name=value`, as on a command line: their values are strings.
    """
    if host.backend.NAME == "podman":
        target = ["-i", host.backend.name + ",", "-e", "ansible_connection=containers.podman.podman"]
    else:
        target = ["-i", "localhost,", "-e", "ansible_connection=local"]
    extra = {
        "target_hosts": "all",
        "ansible_python_interpreter": "/usr/bin/python3",
        "kvm_host_allow_emulation": True,
        "kvm_host_users": ["virtops-member"],
    }
    extra.update(role_vars)
    playbook = str(Path(sys.executable).with_name("ansible-playbook"))
    result = subprocess.run(
        [playbook, *target, *(["--check", "--diff"] if _check else []), "-e", json.dumps(extra),
         *(arg for pair in _strings for arg in ("-e", pair)), str(TOP / "playbooks" / "kvm_hosts.yml")],
        capture_output=True, text=True, env=dict(os.environ, ANSIBLE_NOCOLOR="1"), check=False,
    )
    return result.returncode, result.stdout + result.stderr


def managed_files(host):
    return {path: (host.file(path).sha256sum, host.file(path).mtime) for path in MANAGED_FILES if host.file(path).exists}


def recap_changed(output):
    recap = output.split("PLAY RECAP", 1)[1]
    return int(recap.split("changed=", 1)[1].split()[0])


def test_listeners_turned_off_close_their_ports(host):
    """The Debian 12 host converged with the TCP and TLS listeners on (molecule.yml); the defaults turn them off."""
    if host.backend.NAME != "podman":
        pytest.skip("the TCP and TLS listeners are tested on the systemd container")
    assert host.socket("tcp://0.0.0.0:16509").is_listening, "the scenario converges Debian 12 with the listeners on"
    rc, output = apply_role(host)
    assert rc == 0, output
    for unit in ("libvirtd-tcp.socket", "libvirtd-tls.socket"):
        assert not host.service(unit).is_running, unit
        assert not host.service(unit).is_enabled, unit
    assert not host.socket("tcp://0.0.0.0:16509").is_listening
    assert not host.socket("tcp://0.0.0.0:16514").is_listening
    refused = host.run("virsh -c qemu+tcp://127.0.0.1/system list --all")
    assert refused.rc != 0 and "Connection refused" in refused.stderr, refused.stderr
    assert host.run("virsh -c qemu:///system list --all").rc == 0


def test_booleans_from_the_command_line_are_booleans(host):
    """`-e name=true` gives the string "true" (ansible-core 2.19 refuses it as a conditional): every boolean works as one."""
    # "false" everywhere acts as false: nothing differs from the converged defaults (the udev rule is
    # then not managed at all, so it does not show either).
    rc, output = apply_role(host, _check=True, _strings=boolean_strings(ROLE, "false", kvm_host_allow_emulation="true"))
    assert_no_conditional_error(output)
    assert rc == 0 and recap_changed(output) == 0, output

    # "true" everywhere (virt-manager apart, below) acts as true: both listeners show in the diff. Migration stays
    # off: its default ssh transport installs openssh first, and check mode stops after pending packages.
    rc, output = apply_role(host, _check=True, _strings=boolean_strings(ROLE, "true", kvm_host_install_gui="false",
                                                                        kvm_host_migration="false"))
    assert_no_conditional_error(output)
    assert rc == 0, output
    assert "+listen_tcp = 1" in output and "+listen_tls = 1" in output, output
    if host.file("/run/systemd/system").is_directory:  # without systemd libvirtd itself listens (--listen)
        assert "libvirtd-tcp.socket" in output and "libvirtd-tls.socket" in output, output

    # Packages to install: check mode stops after them, saying so. Where virt-manager is installed already
    # (this machine: the localhost scenario asks for it) there is nothing to install.
    rc, output = apply_role(host, _check=True, _strings=["kvm_host_install_gui=true"])
    assert_no_conditional_error(output)
    if host.package("virt-manager").is_installed:
        assert rc == 0 and recap_changed(output) == 0, output
    else:
        assert rc == 0 and "check mode stops after the packages" in " ".join(output.split()), output

    rc, output = apply_role(host, _check=True, _strings=["kvm_host_allow_emulation=false"])
    assert_no_conditional_error(output)
    if host.run("grep -qwE 'vmx|svm' /proc/cpuinfo").rc == 0 and host.file("/dev/kvm").exists:
        assert rc == 0, output
    else:
        assert rc != 0 and "cannot run KVM guests" in output, output


@pytest.mark.parametrize("role_vars,named", [
    ({"kvm_host_libvirtd_unix_sock_rw_perms": "999"}, "kvm_host_libvirtd_unix_sock_rw_perms"),
    ({"kvm_host_libvirtd_auth_unix_rw": "bogus"}, "kvm_host_libvirtd_auth_unix_rw"),
    ({"kvm_host_libvirtd_listen_tcp": True, "kvm_host_libvirtd_listen_addr": "0.0.0.0", "kvm_host_libvirtd_auth_tcp": "none"},
     "kvm_host_libvirtd_listen_tcp"),
    ({"kvm_host_libvirtd_listen_addr": "300.1.2.3"}, "kvm_host_libvirtd_listen_addr"),
    ({"kvm_host_libvirtd_tcp_port": "70000"}, "kvm_host_libvirtd_tcp_port"),
    ({"kvm_host_libvirtd_extra": {"unix_sock_group": "wheel"}}, "kvm_host_libvirtd_unix_sock_group"),
    ({"kvm_host_users": ["no-such-user"]}, "no-such-user"),
    ({"kvm_host_bridges": [{"name": "br-virtops-x", "ports": ["virtops-nope"]}]}, "kvm_host_bridges[0].ports[0]: virtops-nope is not"),
    ({"kvm_host_bridges": [{"name": "br virtops"}]}, "kvm_host_bridges[0].name"),
    ({"kvm_host_bridges": [{"name": "br-a", "address": "198.51.100.300/24"}, {"name": "br-b", "dhcp": True, "gateway": "198.51.100.254"}]},
     "kvm_host_bridges[0].address: 198.51.100.300/24 is not an IPv4 address with a prefix length, such as 192.0.2.10/24; "
     "kvm_host_bridges[1].gateway: needs an address"),
], ids=["perms-999", "unknown-auth", "tcp-0.0.0.0-no-tls", "bad-address", "bad-port", "extra-shadows-key", "unknown-user",
        "bridge-unknown-port", "bridge-bad-name", "bridge-bad-addresses"])
def test_bad_variables_fail_before_anything_changes(host, role_vars, named):
    before = managed_files(host)
    rc, output = apply_role(host, **role_vars)
    assert rc != 0
    assert named in " ".join(output.split()), output
    assert "changed=0" in output.split("PLAY RECAP", 1)[1]
    assert managed_files(host) == before


def test_refused_configuration_is_rolled_back(host):
    before = managed_files(host)
    rc, output = apply_role(host, kvm_host_libvirtd_extra={"max_clients": "many"})
    assert rc != 0
    assert "libvirtd refused the new /etc/libvirt/libvirtd.conf" in output
    assert "max_clients" in output  # libvirtd's own error
    assert "previous file was restored" in output
    assert host.file("/etc/libvirt/libvirtd.conf").sha256sum == before["/etc/libvirt/libvirtd.conf"][0]
    assert "max_clients" not in host.file("/etc/libvirt/libvirtd.conf").content_string
    assert host.run("virsh -c qemu:///system list --all").rc == 0


def test_course_settings_only_when_asked_then_back_to_secure(host):
    rc, output = apply_role(host, kvm_host_libvirtd_unix_sock_rw_perms="0777", kvm_host_libvirtd_allow_insecure=True)
    assert rc == 0, output
    assert "[WARNING]: kvm_host_libvirtd_allow_insecure is true" in output
    assert host.file("/run/libvirt/libvirt-sock").mode == 0o777
    assert host.run("runuser -u virtops-outsider -- virsh -c qemu:///system list --all").rc == 0

    rc, output = apply_role(host)
    assert rc == 0, output
    assert host.file("/run/libvirt/libvirt-sock").mode == 0o770
    rc, output = apply_role(host)
    assert rc == 0 and recap_changed(output) == 0, output


def test_check_and_diff_mode_are_exact(host):
    conf = "/etc/libvirt/libvirtd.conf"
    before = managed_files(host)

    rc, output = apply_role(host, kvm_host_libvirtd_log_level=2, _check=True)
    assert rc == 0, output
    assert recap_changed(output) > 0
    assert "+log_level = 2" in output  # the diff
    assert managed_files(host) == before

    rc, output = apply_role(host, kvm_host_libvirtd_log_level=2)
    assert rc == 0 and recap_changed(output) > 0, output
    assert "log_level = 2" in host.file(conf).content_string

    for check in (True, False):
        rc, output = apply_role(host, kvm_host_libvirtd_log_level=2, _check=check)
        assert rc == 0 and recap_changed(output) == 0, output

    rc, output = apply_role(host)
    assert rc == 0, output
    assert host.file(conf).sha256sum == before[conf][0]


def test_rerun_after_libvirtd_idle_exit_changes_nothing(host):
    if host.backend.NAME != "podman":
        pytest.skip("socket activation (and libvirtd's idle exit) is a systemd matter")
    # Debian's libvirtd.service runs with --timeout 120: stopping it is what the idle exit does.
    host.run_expect([0], "systemctl stop libvirtd.service")
    rc, output = apply_role(host)
    assert rc == 0 and recap_changed(output) == 0, output


def default_route_interface(host):
    return json.loads(host.check_output("ip -json route show default"))[0]["dev"]


def test_bridging_the_management_interface_is_refused(host):
    """The NIC of the default route carries the connection: enslaving it is refused, naming the item, until allowed."""
    nic = default_route_interface(host)
    before = managed_files(host)
    rc, output = apply_role(host, kvm_host_bridges=[{"name": "br-virtops-mgmt", "ports": [nic]}])
    assert rc != 0
    assert "kvm_host_bridges[0].ports[0]: %s carries the connection Ansible uses" % nic in " ".join(output.split()), output
    assert "changed=0" in output.split("PLAY RECAP", 1)[1]
    assert managed_files(host) == before
    assert not host.interface("br-virtops-mgmt").exists


def test_modular_daemons_are_refused_where_libvirt_has_none(host):
    """Debian's libvirt is built without virtqemud and friends: modular fails naming the variable, nothing changes."""
    before = managed_files(host)
    rc, output = apply_role(host, kvm_host_libvirt_daemons="modular")
    assert rc != 0
    assert "kvm_host_libvirt_daemons is modular, but" in output and "builds libvirt without the modular daemons" in output, output
    assert "changed=0" in output.split("PLAY RECAP", 1)[1]
    assert managed_files(host) == before
    assert host.run("virsh -c qemu:///system uri").rc == 0


def test_a_new_bridge_four_ways(host):
    """Check mode shows the bridge's file and writes nothing; the real run brings the bridge up; a rerun and a
    check rerun change nothing. A host without systemd-networkd or ifupdown (this machine) refuses it instead."""
    bridge = {"name": "br-virtops-t", "ports": [], "stp": "false"}
    before = managed_files(host)
    if host.backend.NAME != "podman":
        rc, output = apply_role(host, kvm_host_bridges=[bridge])
        assert rc != 0 and "has neither systemd-networkd running nor ifupdown" in " ".join(output.split()), output
        assert managed_files(host) == before and not host.interface(bridge["name"]).exists
        return
    stanza = "/etc/network/interfaces.d/%s" % bridge["name"]
    try:
        rc, output = apply_role(host, _check=True, kvm_host_bridges=[bridge])
        assert rc == 0 and recap_changed(output) > 0, output
        assert "+iface br-virtops-t inet manual" in output and "+    bridge_ports none" in output, output
        assert not host.file(stanza).exists and not host.interface(bridge["name"]).exists

        rc, output = apply_role(host, kvm_host_bridges=[bridge])
        assert rc == 0 and recap_changed(output) > 0, output
        assert host.interface(bridge["name"]).exists
        assert "bridge_stp off" in host.file(stanza).content_string

        for check in (False, True):
            rc, output = apply_role(host, _check=check, kvm_host_bridges=[bridge])
            assert rc == 0 and recap_changed(output) == 0, output
        assert managed_files(host) == before  # libvirt's files untouched
    finally:
        host.run("ifdown --force %s; rm -f %s; ip link delete %s", bridge["name"], stanza, bridge["name"])
