"""What the kvm_host role leaves on a host, checked on the host itself."""

import json
from pathlib import Path

import pytest
import yaml

PACKAGES = [
    "qemu-system-x86", "qemu-utils", "libvirt-daemon-system", "libvirt-clients",
    "bridge-utils", "virtinst", "python3-libvirt", "python3-lxml", "dnsmasq-base",
]
SOCKETS = {
    "/run/libvirt/libvirt-sock": 0o770,
    "/run/libvirt/libvirt-sock-ro": 0o777,
    "/run/libvirt/libvirt-admin-sock": 0o700,
}
MEMBER = "virtops-member"
OUTSIDER = "virtops-outsider"
# The hosts of this scenario converged with the TCP and TLS listeners on (molecule.yml host_vars).
SCENARIOS = Path(__file__).resolve().parents[2]
HOST_VARS = yaml.safe_load((SCENARIOS / "kvm_host" / "molecule.yml").read_text())["provisioner"]["inventory"].get(
    "host_vars", {})
# This machine (the localhost scenario, local backend).
LOCAL_VARS = yaml.safe_load((SCENARIOS / "localhost" / "molecule.yml").read_text())["provisioner"]["inventory"][
    "host_vars"]["localhost"]
LISTENER_SETTINGS = {"listen_tcp": "1", "listen_tls": "1", "listen_addr": '"0.0.0.0"', "auth_tcp": '"none"'}


def uses_systemd(host):
    return host.file("/run/systemd/system").is_directory


def role_vars(host):
    """The molecule.yml host_vars of the host (this machine: the localhost scenario's)."""
    if host.backend.NAME == "local":
        return LOCAL_VARS
    return HOST_VARS.get(getattr(host.backend, "name", None)) or {}


def listens(host):
    """Whether the host converged with the TCP and TLS listeners (on 0.0.0.0, TCP without authentication)."""
    return bool(role_vars(host).get("kvm_host_libvirtd_listen_tcp"))


@pytest.mark.parametrize("name", PACKAGES)
def test_kvm_stack_is_installed(host, name):
    assert host.package(name).is_installed


def test_gui_is_installed_only_when_asked(host):
    """Not by default (the containers); the localhost scenario asks for it (tests/integration/test_virt_manager.py)."""
    assert host.package("virt-manager").is_installed == bool(role_vars(host).get("kvm_host_install_gui"))


def test_libvirtd_conf_is_managed_and_secure(host):
    conf = host.file("/etc/libvirt/libvirtd.conf")
    assert conf.user == "root" and conf.group == "root" and conf.mode == 0o644
    settings = dict(
        line.split(" = ", 1) for line in conf.content_string.splitlines() if " = " in line and not line.startswith("#")
    )
    assert settings == {
        "listen_tls": "0",
        "listen_tcp": "0",
        "tls_port": '"16514"',
        "tcp_port": '"16509"',
        "unix_sock_group": '"libvirt"',
        "unix_sock_ro_perms": '"0777"',
        "unix_sock_rw_perms": '"0770"',
        "unix_sock_admin_perms": '"0700"',
        "unix_sock_dir": '"/run/libvirt"',
        "auth_unix_ro": '"none"',
        "auth_unix_rw": '"none"',
        "auth_tcp": '"sasl"',
        "auth_tls": '"none"',
        **(LISTENER_SETTINGS if listens(host) else {}),
    }


@pytest.mark.parametrize("path,mode", sorted(SOCKETS.items()))
def test_sockets_have_the_configured_group_and_mode(host, path, mode):
    sock = host.file(path)
    assert sock.is_socket
    assert sock.group == "libvirt"
    assert sock.mode == mode


def test_tcp_and_tls_listeners_as_configured(host):
    """On a fresh host too: the package has started libvirtd.service before the listener sockets exist."""
    if not listens(host):
        assert not host.socket("tcp://0.0.0.0:16509").is_listening
        assert not host.socket("tcp://0.0.0.0:16514").is_listening
        return
    for unit in ("libvirtd-tcp.socket", "libvirtd-tls.socket"):
        assert host.service(unit).is_enabled, unit
        assert host.service(unit).is_running, unit
    assert host.socket("tcp://0.0.0.0:16509").is_listening
    assert host.socket("tcp://0.0.0.0:16514").is_listening
    # TCP without authentication; TLS with the client certificate of prepare.yml, checked against its CA.
    for uri in ("qemu+tcp://127.0.0.1/system", "qemu+tls://localhost/system"):
        result = host.run("virsh -c %s list --all", uri)
        assert result.rc == 0, (uri, result.stderr)


def test_root_can_manage_guests(host):
    result = host.run("virsh -c qemu:///system list --all")
    assert result.rc == 0, result.stderr


def test_libvirt_group_member_can_manage_guests(host):
    assert "libvirt" in host.user(MEMBER).groups
    result = host.run("runuser -u %s -- virsh -c qemu:///system list --all", MEMBER)
    assert result.rc == 0, result.stderr


def test_non_member_is_refused(host):
    assert "libvirt" not in host.user(OUTSIDER).groups
    result = host.run("runuser -u %s -- virsh -c qemu:///system list --all", OUTSIDER)
    assert result.rc != 0
    assert "Permission denied" in result.stderr


def test_non_member_can_still_read_only(host):
    result = host.run("runuser -u %s -- virsh -r -c qemu:///system list --all", OUTSIDER)
    assert result.rc == 0, result.stderr


def test_udev_rule_keeps_dev_kvm_usable(host):
    rule = host.file("/etc/udev/rules.d/65-virtops-kvm.rules")
    assert 'KERNEL=="kvm", GROUP="kvm", MODE="0660"' in rule.content_string
    if host.file("/dev/kvm").exists:
        assert host.file("/dev/kvm").group == "kvm"
        assert host.file("/dev/kvm").mode == 0o660


def test_sockets_enabled_and_service_left_to_socket_activation(host):
    if not uses_systemd(host):
        pytest.skip("systemd is not PID 1 here: libvirtd runs as a plain daemon")
    for unit in ("libvirtd.socket", "libvirtd-ro.socket", "libvirtd-admin.socket", "virtlogd.socket"):
        assert host.service(unit).is_enabled, unit
        assert host.service(unit).is_running, unit
    assert host.service("libvirtd.service").is_enabled
    assert host.service("libvirtd-tcp.socket").is_enabled == listens(host)
    dropin = host.file("/etc/systemd/system/libvirtd.socket.d/virtops.conf").content_string
    assert "SocketMode=0770" in dropin and "SocketGroup=libvirt" in dropin


def test_daemons_run_without_systemd(host):
    if uses_systemd(host):
        pytest.skip("systemd runs the daemons here")
    for name, pidfile in (("libvirtd", "/run/libvirtd.pid"), ("virtlogd", "/run/virtlogd.pid")):
        result = host.run("start-stop-daemon --status --pidfile %s --exec /usr/sbin/%s", pidfile, name)
        assert result.rc == 0, name


GUEST_XML = (
    "<domain type='qemu'><name>virtops-smoke</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>"
    "<os><type arch='x86_64'>hvm</type></os><features><acpi/></features><devices/></domain>"
)


def test_a_guest_starts(host):
    """QEMU runs a (diskless, emulated) guest: in containers that needs the kvm_host_qemu_conf settings."""
    host.run("virsh -c qemu:///system destroy virtops-smoke; virsh -c qemu:///system undefine virtops-smoke")
    host.check_output("printf '%%s' %s > /tmp/virtops-smoke.xml", GUEST_XML)
    host.check_output("virsh -c qemu:///system define /tmp/virtops-smoke.xml")
    started = host.run("virsh -c qemu:///system start virtops-smoke")
    state = host.check_output("virsh -c qemu:///system domstate virtops-smoke")
    host.run("virsh -c qemu:///system destroy virtops-smoke")
    host.check_output("virsh -c qemu:///system undefine virtops-smoke")
    assert started.rc == 0, started.stderr
    assert state == "running"


def bridge_ports(host, bridge):
    return sorted(link["ifname"] for link in json.loads(host.check_output("ip -json link show master %s", bridge) or "[]"))


def test_bridges_have_their_ports_and_address(host):
    """kvm_host_bridges (molecule.yml host_vars): up after the first run, with the NIC of prepare.yml enslaved."""
    bridges = role_vars(host).get("kvm_host_bridges", [])
    for bridge in bridges:
        assert host.interface(bridge["name"]).exists, bridge["name"]
        assert bridge_ports(host, bridge["name"]) == sorted(bridge["ports"])
        assert bridge["address"] in host.check_output("ip -brief address show dev %s", bridge["name"])
        # STP and the forward delay as the kernel has them (centiseconds).
        assert host.file("/sys/class/net/%s/bridge/stp_state" % bridge["name"]).content_string.strip() == (
            "1" if bridge.get("stp") else "0")
        assert host.file("/sys/class/net/%s/bridge/forward_delay" % bridge["name"]).content_string.strip() == str(
            100 * bridge.get("forward_delay", 0))
    if not bridges:  # this machine: the role must not have touched its network
        assert host.run("ls /etc/systemd/network/10-virtops-* /etc/network/interfaces.d/br-virtops").rc != 0


def test_bridge_files_are_written_for_the_network_manager(host):
    manager = role_vars(host).get("virtops_test_network_manager")
    for bridge in role_vars(host).get("kvm_host_bridges", []):
        name = bridge["name"]
        if manager == "ifupdown":
            stanza = host.file("/etc/network/interfaces.d/%s" % name).content_string
            assert "auto %s\niface %s inet static\n" % (name, name) in stanza
            assert "    address %s\n" % bridge["address"] in stanza
            assert "    bridge_ports %s\n" % " ".join(bridge["ports"]) in stanza
            assert host.run("ls /etc/systemd/network/10-virtops-%s.netdev", name).rc != 0
        else:
            netdev = host.file("/etc/systemd/network/10-virtops-%s.netdev" % name).content_string
            assert "Name=%s\nKind=bridge\n" % name in netdev and "STP=yes\nForwardDelaySec=4\n" in netdev
            network = host.file("/etc/systemd/network/10-virtops-%s.network" % name).content_string
            assert "Address=%s\n" % bridge["address"] in network
            for port in bridge["ports"]:
                port_file = host.file("/etc/systemd/network/10-virtops-%s-port-%s.network" % (name, port))
                assert "Name=%s\n" % port in port_file.content_string and "Bridge=%s\n" % name in port_file.content_string
            assert "configured" in host.check_output("networkctl list --no-pager --no-legend %s", name)


def test_libvirt_daemons_are_the_distributions(host):
    """Debian builds libvirt without the modular daemons: libvirtd answers (the role refuses modular there,
    test_role_reruns.py); the modular mode itself cannot run on these hosts."""
    assert host.check_output("virsh -c qemu:///system uri") == "qemu:///system"
    assert not host.file("/usr/sbin/virtqemud").exists
    if uses_systemd(host):
        assert host.service("libvirtd.service").is_running  # the call above started it through its socket
        assert host.run("systemctl cat virtqemud.socket").rc != 0
