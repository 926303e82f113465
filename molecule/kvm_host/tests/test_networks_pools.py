"""The networks and storage pools kvm_host converges (kvm_host_networks, kvm_host_pools,
kvm_host_default_network), checked with virsh and the files libvirt writes on the host."""

from pathlib import Path

import yaml

SCENARIO = yaml.safe_load((Path(__file__).resolve().parents[1] / "molecule.yml").read_text())["provisioner"]["inventory"]
GROUP_VARS = SCENARIO["group_vars"]["all"]
HOST_VARS = SCENARIO.get("host_vars", {})


def role_vars(host):
    """The molecule kvm_host vars of a container; this machine (localhost scenario) sets none of these."""
    if host.backend.NAME == "local":
        return {}
    return dict(GROUP_VARS, **HOST_VARS.get(host.backend.name, {}))


def virsh(host, *args):
    return host.check_output("virsh --connect qemu:///system " + " ".join(args))


def test_networks_are_defined_running_and_reserved_as_asked(host):
    networks = role_vars(host).get("kvm_host_networks", [])
    listed = virsh(host, "net-list", "--all", "--name").split()
    active = virsh(host, "net-list", "--name").split()
    for network in networks:
        name = network["name"]
        assert name in listed
        assert (name in active) == (network.get("state", "active") == "active")
    lab = next((network for network in networks if network["name"] == "virtops-lab"), None)
    if lab is None:
        # This machine: the role makes no network here (tests must not create any in its namespace).
        assert not [name for name in listed if name.startswith("virtops-")]
        assert not host.interface("virbr-lab").exists
        return
    xml = virsh(host, "net-dumpxml", "virtops-lab")
    assert "<host mac='52:54:00:00:77:10' name='web1' ip='10.77.0.10'/>" in xml
    assert "10.77.0.1" in host.interface("virbr-lab").addresses
    hosts_file = host.file("/var/lib/libvirt/dnsmasq/virtops-lab.hostsfile").content_string
    assert "52:54:00:00:77:10,10.77.0.10,web1" in hosts_file
    assert "Autostart:      yes" in virsh(host, "net-info", "virtops-lab")


def test_default_network_as_asked(host):
    wanted = role_vars(host).get("kvm_host_default_network", "keep")
    listed = virsh(host, "net-list", "--all", "--name").split()
    if wanted == "absent":
        assert "default" not in listed
    elif wanted == "active":
        assert "default" in virsh(host, "net-list", "--name").split()
        info = virsh(host, "net-info", "default")
        assert "Autostart:      yes" in info and "Bridge:         virbr0" in info


def test_pools_are_built_running_and_owned_as_asked(host):
    for pool in role_vars(host).get("kvm_host_pools", []):
        info = virsh(host, "pool-info", pool["name"])
        assert "State:          running" in info
        assert ("Autostart:      yes" in info) == bool(pool.get("autostart"))
        target = host.file(pool["target"])
        assert target.is_directory
        permissions = pool.get("permissions", {})
        if permissions:
            assert (target.user, target.group, oct(target.mode)) == (
                permissions["owner"], permissions["group"], "0o" + permissions["mode"].lstrip("0"))
