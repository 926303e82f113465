# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _cpu

INTEL = 'intel_i5-7200u_vmx.txt'
AMD = 'amd_ryzen3-3200g_svm.txt'
ARM = 'aws_graviton2_neoverse_n1_aarch64.txt'
GUEST = 'aws_m5_xeon_8175m_guest_no_vmx.txt'
THIS_HOST = 'this_host_amd_epyc_kvm_pvm.txt'
FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'cpuinfo'

# /proc/modules as an Intel desktop with KVM and VirtualBox prints it (addresses hidden from non-root).
INTEL_MODULES = """\
vboxnetadp 28672 0 - Live 0x0000000000000000 (OE)
vboxnetflt 32768 0 - Live 0x0000000000000000 (OE)
vboxdrv 696320 2 vboxnetadp,vboxnetflt, Live 0x0000000000000000 (OE)
kvm_intel 380928 0 - Live 0x0000000000000000
kvm 1142784 1 kvm_intel, Live 0x0000000000000000
irqbypass 16384 1 kvm, Live 0x0000000000000000
ext4 987136 1 - Live 0x0000000000000000
"""
AMD_MODULES = """\
kvm_amd 184320 0 - Live 0x0000000000000000
ccp 118784 1 kvm_amd, Live 0x0000000000000000
kvm 1142784 1 kvm_amd, Live 0x0000000000000000
irqbypass 16384 1 kvm, Live 0x0000000000000000
"""

NO_HW_VIRT = ('no vmx/svm in /proc/cpuinfo (0 CPUs with hardware virtualization): guests will run under QEMU TCG emulation, '
              '~10-50x slower; enable VT-x/AMD-V in firmware, or nested virtualization on the hypervisor running this machine')


def cpuinfo(name):
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize('name, vendor, model, cpus, vmx, svm, with_hw_virt, guest', [
    (INTEL, 'GenuineIntel', 'Intel(R) Core(TM) i5-7200U CPU @ 2.50GHz', 4, True, False, 4, False),
    (AMD, 'AuthenticAMD', 'AMD Ryzen 3 3200G with Radeon Vega Graphics', 4, False, True, 4, False),
    (ARM, 'ARM', 'ARM part 0xd0c', 2, False, False, 0, False),
    (GUEST, 'GenuineIntel', 'Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz', 2, False, False, 0, True),
    (THIS_HOST, 'AuthenticAMD', 'AMD EPYC', 2, False, False, 0, True),
])
def test_parse_cpuinfo(name, vendor, model, cpus, vmx, svm, with_hw_virt, guest):
    assert _cpu.parse_cpuinfo(cpuinfo(name)) == {
        'vendor': vendor, 'model_name': model, 'logical_cpus': cpus, 'vmx': vmx, 'svm': svm,
        'cpus_with_hw_virt': with_hw_virt, 'hypervisor_flag': guest,
    }


def test_hw_virt_count_is_per_cpu_not_per_line():
    text = cpuinfo(INTEL)
    # what `egrep -c '(vmx|svm)' /proc/cpuinfo` prints: 'flags' and 'vmx flags' lines both match
    assert len([line for line in text.splitlines() if re.search('(vmx|svm)', line)]) == 8
    assert _cpu.parse_cpuinfo(text)['cpus_with_hw_virt'] == 4


def test_parse_cpuinfo_empty():
    assert _cpu.parse_cpuinfo('')['logical_cpus'] == 0


def test_parse_modules():
    assert _cpu.parse_modules(INTEL_MODULES) == ['vboxnetadp', 'vboxnetflt', 'vboxdrv', 'kvm_intel', 'kvm', 'irqbypass', 'ext4']


@pytest.mark.parametrize('value, expected', [('Y\n', True), ('1\n', True), ('N\n', False), ('0\n', False), (None, None), ('?', None)])
def test_parse_nested(value, expected):
    assert _cpu.parse_nested(value) is expected


def test_parse_iommu_cmdline():
    line = 'BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=0c6f2ad1 ro quiet intel_iommu=on iommu=pt -- iommu=off'
    assert _cpu.parse_iommu_cmdline(line) == ['intel_iommu=on', 'iommu=pt']
    assert _cpu.parse_iommu_cmdline('console=ttyS0 amd_iommu=off noiommu_x=1') == ['amd_iommu=off']


def test_intel_with_kvm_intel_is_kvm(fake_host):
    root = fake_host(INTEL, modules=INTEL_MODULES, sys_modules={'kvm': None, 'kvm_intel': 'Y', 'vboxdrv': None},
                     dev_kvm_mode=0o666, vboxdrv=True, iommu_groups=17, iommu_class=['dmar0'],
                     cmdline='BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 ro quiet intel_iommu=on iommu=pt')
    host = _cpu.gather(root, machine='x86_64', system='Linux')
    assert host['verdict'] == 'kvm'
    assert host['reason'] == ("CPU has vmx and /dev/kvm is usable: KVM guests (domain type 'kvm') run hardware-accelerated "
                              "through kvm_intel (nested virtualization: enabled)")
    assert host['kvm_modules'] == [{'name': 'kvm_intel', 'builtin': False, 'nested': True},
                                   {'name': 'kvm', 'builtin': False, 'nested': None}]
    assert host['kvm_device']['path'] == '/dev/kvm'
    assert host['kvm_device']['mode'] == '0666'
    assert host['iommu'] == {'enabled': True, 'groups': 17, 'cmdline': ['intel_iommu=on', 'iommu=pt']}
    assert host['vboxdrv'] == {'loaded': True, 'device_present': True}
    assert host['virtualbox_possible'] is True
    assert 'kvm_intel is loaded' in host['virtualbox_reason']
    assert 'VERR_VMX_IN_VMX_ROOT_MODE' in host['virtualbox_reason']


def test_kvm_device_without_kvm_group_adds_a_note(fake_host):
    root = fake_host(INTEL, modules=INTEL_MODULES, sys_modules={'kvm_intel': 'N'}, dev_kvm_mode=0o600)
    host = _cpu.gather(root, machine='x86_64', system='Linux')
    assert host['verdict'] == 'kvm'
    assert '(nested virtualization: disabled)' in host['reason']
    assert "libvirt's QEMU (an unprivileged user in group kvm) cannot open it" in host['reason']
    assert 'chgrp kvm /dev/kvm; chmod 0660 /dev/kvm' in host['reason']


def test_intel_without_dev_kvm_is_emulation(fake_host):
    host = _cpu.gather(fake_host(INTEL, modules='', dev_kvm=None), machine='x86_64', system='Linux')
    assert host['verdict'] == 'emulation'
    assert host['reason'] == ('CPU has vmx but /dev/kvm is missing: enable VT-x in firmware or load kvm_intel (modprobe kvm_intel); '
                              'until then guests run under QEMU TCG emulation, ~10-50x slower')
    assert host['kvm_device']['present'] is False
    assert host['kvm_device']['error'] == 'No such file or directory'
    assert host['kvm_modules'] == []
    assert host['iommu'] == {'enabled': False, 'groups': 0, 'cmdline': []}
    assert host['virtualbox_possible'] is True
    assert 'vboxdrv is not loaded' in host['virtualbox_reason']


def test_amd_with_kvm_amd_is_kvm(fake_host):
    root = fake_host(AMD, modules=AMD_MODULES, sys_modules={'kvm': None, 'kvm_amd': '1'}, dev_kvm_mode=0o666)
    host = _cpu.gather(root, machine='x86_64', system='Linux')
    assert host['verdict'] == 'kvm'
    assert 'CPU has svm' in host['reason']
    assert 'through kvm_amd (nested virtualization: enabled)' in host['reason']
    assert 'VERR_SVM_IN_USE' in host['virtualbox_reason']


def test_amd_without_dev_kvm_names_amd_v(fake_host):
    host = _cpu.gather(fake_host(AMD, modules='', dev_kvm=None), machine='x86_64', system='Linux')
    assert host['verdict'] == 'emulation'
    assert 'CPU has svm but /dev/kvm is missing: enable AMD-V in firmware or load kvm_amd (modprobe kvm_amd)' in host['reason']


def test_dev_kvm_permission_denied_is_emulation(fake_host):
    # Tests run as root, which opens any file: feed decide() the facts a non-member of group kvm sees.
    host = _cpu.gather(fake_host(INTEL, modules=INTEL_MODULES, sys_modules={'kvm_intel': 'Y'}), machine='x86_64', system='Linux')
    host['kvm_device'].update(openable=False, error='Permission denied', errno=13, owner='root', group='root', mode='0600')
    verdict, reason = _cpu.decide(host)
    assert verdict == 'emulation'
    assert reason.startswith('CPU has vmx but this user cannot open /dev/kvm (Permission denied): /dev/kvm is root:root 0600:')
    assert 'add the user to group kvm' in reason
    assert 'chgrp kvm /dev/kvm; chmod 0660 /dev/kvm' in reason
    assert 'udev rule' in reason


def test_dev_kvm_open_error_is_reported(fake_host):
    host = _cpu.gather(fake_host(AMD, modules=AMD_MODULES, dev_kvm='dir'), machine='x86_64', system='Linux')
    assert host['verdict'] == 'emulation'
    assert host['kvm_device']['present'] is True
    assert host['kvm_device']['openable'] is False
    assert host['kvm_device']['error'] == 'Is a directory'
    assert 'cannot be opened (Is a directory)' in host['reason']


@pytest.mark.parametrize('dev_kvm', [None, 'file'])
def test_guest_without_vmx_is_emulation(fake_host, dev_kvm):
    host = _cpu.gather(fake_host(GUEST, modules='', dev_kvm=dev_kvm), machine='x86_64', system='Linux')
    assert host['verdict'] == 'emulation'
    assert host['hardware_virtualization'] == {'vmx': False, 'svm': False, 'cpus_with_hw_virt': 0}
    assert host['virtualbox_possible'] is False
    if dev_kvm is None:
        assert host['reason'] == NO_HW_VIRT
    else:
        assert 'hardware virtualization is not exposed' in host['reason']
        assert 'KVM without kvm_intel/kvm_amd' in host['reason']


def test_this_host_paravirtual_kvm_is_emulation(fake_host):
    # This machine: AMD EPYC guest without svm, kvm and kvm_pvm built in, no /proc/modules, /dev/kvm root:root 0600.
    root = fake_host(THIS_HOST, modules=None, sys_modules={'kvm': None, 'kvm_pvm': None}, dev_kvm_mode=0o600,
                     cmdline='console=ttyS0 quiet nomodule nested_pvm=1 rdinit=/process_api -- --firecracker-init')
    host = _cpu.gather(root, machine='x86_64', system='Linux')
    assert host['verdict'] == 'emulation'
    assert host['reason'].startswith(
        "/dev/kvm is present (paravirtual KVM; kvm modules: kvm, kvm_pvm) but hardware virtualization is not exposed: "
        "no vmx/svm in /proc/cpuinfo (0 CPUs with hardware virtualization). KVM guests (domain type 'kvm') hang here: "
        "use domain type 'qemu' (QEMU TCG emulation, ~10-50x slower).")
    assert 'libvirtd re-probes QEMU on every call' in host['reason']
    assert host['kvm_modules'] == [{'name': 'kvm', 'builtin': True, 'nested': None},
                                   {'name': 'kvm_pvm', 'builtin': True, 'nested': None}]
    assert host['iommu']['cmdline'] == []
    assert host['virtualbox_possible'] is False


def test_arm64_with_dev_kvm_is_kvm(fake_host):
    host = _cpu.gather(fake_host(ARM, modules='', dev_kvm_mode=0o666), machine='aarch64', system='Linux')
    assert host['verdict'] == 'kvm'
    assert host['reason'] == "/dev/kvm is usable on this aarch64 host: KVM guests (domain type 'kvm') run hardware-accelerated"
    assert host['cpu'] == {'vendor': 'ARM', 'model_name': 'ARM part 0xd0c', 'logical_cpus': 2, 'hypervisor_flag': False}
    assert host['virtualbox_possible'] is False
    assert 'aarch64' in host['virtualbox_reason']


def test_arm64_without_dev_kvm_is_emulation(fake_host):
    host = _cpu.gather(fake_host(ARM, modules='', dev_kvm=None), machine='aarch64', system='Linux')
    assert host['verdict'] == 'emulation'
    assert host['reason'].startswith('no /dev/kvm on this aarch64 host')
    assert 'EL2' in host['reason']


def test_arm64_permission_denied(fake_host):
    host = _cpu.gather(fake_host(ARM, modules=''), machine='aarch64', system='Linux')
    host['kvm_device'].update(openable=False, error='Permission denied', errno=13, group='root', mode='0600')
    verdict, reason = _cpu.decide(host)
    assert verdict == 'emulation'
    assert reason.startswith('this aarch64 host has /dev/kvm but this user cannot open /dev/kvm (Permission denied)')


def test_no_proc_is_none(fake_host):
    host = _cpu.gather(fake_host(None, dev_kvm=None), machine='x86_64', system='Linux')
    assert host['verdict'] == 'none'
    assert 'KVM/libvirt need a Linux host' in host['reason']
    assert host['cpu']['logical_cpus'] == 0
    assert host['virtualbox_possible'] is False


def test_not_linux_is_none(fake_host):
    host = _cpu.gather(fake_host(None, dev_kvm=None), machine='arm64', system='Darwin')
    assert (host['verdict'], host['reason']) == ('none', 'this host runs Darwin, not Linux: KVM/libvirt need a Linux host')
