"""Reruns of the role against the converged container: refusals before anything changes, clear failures
where the kernel driver cannot load, and the paths that cannot run here (Oracle's repository, the Extension
Pack, both unreachable from the test machine) in check mode, where nothing is downloaded or written.

Each test applies playbooks/virtualbox_hosts.yml again (ansible-playbook) to the host testinfra checks.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from virtops_rolelib import assert_no_conditional_error, boolean_strings

TOP = Path(__file__).resolve().parents[3]
ROLE = "virtualbox_host"
DEFAULTS = yaml.safe_load((TOP / "roles" / "virtualbox_host" / "defaults" / "main.yml").read_text())
STANDINS = "/srv/virtops-standins"
ORACLE_FILES = ["/etc/apt/keyrings/virtualbox-oracle.asc", "/etc/apt/sources.list.d/virtualbox-oracle.sources"]


def apply_role(host, _check=False, _strings=(), **role_vars):
    """Run the role's playbook against the testinfra host (with --check --diff if asked); return (rc, output).

    `_strings` are "name=value" pairs given as `-e name=value`, as on a command line: their values are strings.
    """
    extra = {
        "target_hosts": "all",
        "ansible_python_interpreter": "/usr/bin/python3",
        "virtualbox_host_allow_no_hw_virt": True,
        "virtualbox_host_enable_distro_component": True,
        "virtualbox_host_kernel_modules": False,
        "virtualbox_host_users": ["virtops-member"],
    }
    extra.update(role_vars)
    playbook = str(Path(sys.executable).with_name("ansible-playbook"))
    result = subprocess.run(
        [playbook, "-i", host.backend.name + ",", "-e", "ansible_connection=containers.podman.podman",
         *(["--check", "--diff"] if _check else []), "-e", json.dumps(extra),
         *(arg for pair in _strings for arg in ("-e", pair)), str(TOP / "playbooks" / "virtualbox_hosts.yml")],
        capture_output=True, text=True, env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
        check=False,
    )
    # Molecule's environment asks for colours: keep the plain text.
    return result.returncode, re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)


def recap_changed(output):
    recap = output.split("PLAY RECAP", 1)[1]
    return int(recap.split("changed=", 1)[1].split()[0])


def task_result(output, name):
    """The status line ("ok", "changed", "skipping", "fatal") of the task whose name ends with `name`."""
    block = output.split(name + "] ", 1)[1]
    line = next(line for line in block.splitlines()[1:] if line.split(":", 1)[0] in ("ok", "changed", "skipping", "fatal"))
    return line.split(":", 1)[0]


def flat(output):
    return " ".join(output.split())


@pytest.mark.parametrize("role_vars,named", [
    ({"virtualbox_host_extpack": True}, "virtualbox_host_extpack_license_accepted"),
    ({"virtualbox_host_source": "oracle", "virtualbox_host_version": "7"}, "virtualbox_host_version"),
    ({"virtualbox_host_source": "vendor"}, "virtualbox_host_source"),
    ({"virtualbox_host_users": ["no-such-user"]}, "no-such-user"),
], ids=["extpack-license-not-accepted", "bad-version", "unknown-source", "unknown-user"])
def test_bad_variables_fail_before_anything_changes(host, role_vars, named):
    rc, output = apply_role(host, **role_vars)
    assert rc != 0
    assert named in output
    assert recap_changed(output) == 0


def test_no_hardware_virtualization_fails_unless_allowed(host):
    if host.run("grep -qwE 'vmx|svm' /proc/cpuinfo").rc == 0:
        pytest.skip("this machine has VT-x/AMD-V")
    rc, output = apply_role(host, virtualbox_host_allow_no_hw_virt=False)
    assert rc != 0
    assert "virtualbox_host_allow_no_hw_virt: true" in flat(output)
    assert "VT-x/AMD-V" in output
    assert recap_changed(output) == 0


def test_missing_kernel_headers_fail_clearly(host):
    """The container runs the test machine's kernel, which has no headers in Debian's repositories."""
    kernel = host.check_output("uname -r")
    rc, output = apply_role(host, virtualbox_host_kernel_modules=True)
    assert rc != 0
    text = flat(output)
    assert "There are no headers for the running kernel " + kernel in text
    assert "linux-headers-" + kernel in text
    assert recap_changed(output) == 0


def test_vboxdrv_that_cannot_load_fails_clearly(host):
    kernel = host.check_output("uname -r")
    rc, output = apply_role(host, virtualbox_host_kernel_modules=True, virtualbox_host_kernel_headers=False)
    assert rc != 0
    text = flat(output)
    assert "vboxdrv does not load on %s (kernel %s)" % (host.backend.name, kernel) in text
    assert "The VirtualBox modules are not built for kernel " + kernel in text
    assert "its headers (linux-headers-%s) are not installed" % kernel in text
    # The build was attempted (dkms), then modprobe failed: nothing else changed, and a rerun without
    # the driver is clean again.
    assert task_result(output, "Build the VirtualBox modules for the running kernel") == "changed"
    rc, output = apply_role(host)
    assert rc == 0 and recap_changed(output) == 0, output


def test_oracle_source_in_check_mode(host):
    """Oracle's repository is unreachable here: check mode shows the key, the deb822 file and the stop."""
    rc, output = apply_role(
        host, _check=True,
        virtualbox_host_source="oracle", virtualbox_host_version="7.1", virtualbox_host_oracle_suite="bookworm",
        virtualbox_host_oracle_key_url="file://%s/oracle_vbox_2016.asc" % STANDINS,
    )
    assert rc == 0, output
    assert task_result(output, "Download Oracle's signing key") == "changed"
    assert task_result(output, "Write the apt sources file for Oracle's repository") == "changed"
    for line in ("+Types: deb",
                 "+URIs: %s/debian" % DEFAULTS["virtualbox_host_oracle_repo_url"],
                 "+Suites: bookworm",
                 "+Components: contrib",
                 "+Architectures: amd64",
                 "+Signed-By: /etc/apt/keyrings/virtualbox-oracle.asc"):
        assert "\n" + line + "\n" in output, line
    # virtualbox-7.1 is not installed and its repository is not read: the run stops, saying so.
    assert "check mode stops after the repositories" in flat(output)
    assert task_result(output, "Install VirtualBox (apt)") == "skipping"
    for path in ORACLE_FILES:
        assert not host.file(path).exists, path


def test_extension_pack_in_check_mode(host):
    """The pack cannot be downloaded here: check mode shows the download and skips what reads the pack."""
    rc, output = apply_role(
        host, _check=True,
        virtualbox_host_extpack=True, virtualbox_host_extpack_license_accepted=True,
        virtualbox_host_extpack_url="file://%s/extpack.vbox-extpack" % STANDINS,
    )
    assert rc == 0, output
    version = host.check_output("VBoxManage --version").splitlines()[-1].split("_")[0].split("r")[0]
    assert task_result(output, "Read the installed Extension Packs") == "ok"
    assert task_result(output, "Download the Extension Pack") == "changed"
    assert task_result(output, "Extract the license from the pack") == "skipping"
    assert task_result(output, "Install the Extension Pack") == "skipping"
    assert not host.file("/var/cache/Oracle_VirtualBox_Extension_Pack-%s.vbox-extpack" % version).exists


def test_check_mode_on_the_converged_host_reports_nothing(host):
    rc, output = apply_role(host, _check=True)
    assert rc == 0 and recap_changed(output) == 0, output


def test_booleans_from_the_command_line_are_booleans(host):
    """`-e name=true` gives the string "true" (ansible-core 2.19 refuses it as a conditional): every boolean works as one."""
    # "false" everywhere acts as false: nothing differs from the converged host (the contrib file is
    # then neither written nor removed).
    rc, output = apply_role(host, _check=True, _strings=boolean_strings(ROLE, "false", virtualbox_host_allow_no_hw_virt="true"))
    assert_no_conditional_error(output)
    assert rc == 0 and recap_changed(output) == 0, output

    # "true" everywhere acts as true: the driver steps and the Extension Pack run (in check mode), the
    # headers apart (below).
    rc, output = apply_role(host, _check=True, virtualbox_host_extpack_url="file://%s/extpack.vbox-extpack" % STANDINS,
                            _strings=boolean_strings(ROLE, "true", virtualbox_host_kernel_headers="false"))
    assert_no_conditional_error(output)
    assert rc == 0, output
    assert task_result(output, "Check whether vboxdrv is built for the running kernel") == "ok"
    assert task_result(output, "Load vboxdrv, vboxnetflt and vboxnetadp") == "skipping"
    assert task_result(output, "Download the Extension Pack") == "changed"

    # The headers of the host's kernel are not in Debian's repositories: asked for, they fail clearly.
    rc, output = apply_role(host, _check=True, _strings=["virtualbox_host_kernel_modules=true", "virtualbox_host_kernel_headers=true"])
    assert_no_conditional_error(output)
    assert rc != 0 and "There are no headers for the running kernel" in flat(output), output

    rc, output = apply_role(host, _check=True, _strings=["virtualbox_host_allow_no_hw_virt=false"])
    assert_no_conditional_error(output)
    if host.run("grep -qwE 'vmx|svm' /proc/cpuinfo").rc == 0:
        assert rc == 0, output
    else:
        assert rc != 0 and "cannot run VirtualBox guests" in output, output
