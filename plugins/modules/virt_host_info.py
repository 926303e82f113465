#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: virt_host_info
short_description: Tell whether a host can run KVM guests, only emulated guests, or none
version_added: 0.1.0
description:
  - Reads C(/proc/cpuinfo), C(/proc/modules), C(/sys/module), C(/sys/class/iommu), C(/sys/kernel/iommu_groups),
    C(/proc/cmdline), C(/dev/kvm) and C(/dev/vboxdrv) on the target and reports the CPU, its hardware virtualization
    flags (C(vmx)/C(svm)), whether C(/dev/kvm) exists and can be opened by the connecting user, the loaded KVM modules
    with their C(nested) parameter, IOMMU state and VirtualBox's kernel driver.
  - Also reports the operating system from C(/etc/os-release) (or C(/usr/lib/os-release)) with Ansible-style family and
    distribution names, the package manager and the service manager, so roles need not gather facts
    with M(ansible.builtin.setup).
  - Turns those facts into a RV(virt_host.verdict) (V(kvm), V(emulation) or V(none)) and a reason that says what to do.
  - V(emulation) means guests run under QEMU TCG (libvirt C(<domain type='qemu'>)), roughly 10-50 times slower than KVM.
  - A host can have C(/dev/kvm) and still need V(emulation), for example a VM with paravirtual KVM (C(kvm_pvm)) whose
    CPU does not expose C(vmx)/C(svm). KVM guests hang there; this module reports V(emulation) for it.
  - Reads only; never loads modules or changes permissions.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.info_module
  - virtops.hypervisor.attributes.platform_linux
options: {}
notes:
  - The C(/dev/kvm) open test runs as the connecting user (or the C(become) user). C(root) can open it even when
    libvirt's unprivileged QEMU cannot; the reason then adds a note on the group and mode udev normally sets
    (C(root:kvm 0660)).
  - The count of CPUs with hardware virtualization counts processor entries, not lines. The usual C(egrep -c) for C(vmx|svm) in C(/proc/cpuinfo)
    counts lines, and kernels since 5.8 print an extra C(vmx flags) line for each Intel CPU.
seealso:
  - name: KVM nested guests
    description: How to enable nested virtualization for kvm_intel and kvm_amd.
    link: https://docs.kernel.org/virt/kvm/x86/running-nested-guests.html
"""

EXAMPLES = r"""
- name: Inspect the host's virtualization support
  virtops.hypervisor.virt_host_info:
  register: host

- name: Show the verdict
  ansible.builtin.debug:
    msg: "{{ host.virt_host.verdict }}: {{ host.virt_host.reason }}"

- name: Use KVM where it works, QEMU TCG elsewhere
  ansible.builtin.set_fact:
    domain_type: "{{ 'kvm' if host.virt_host.verdict == 'kvm' else 'qemu' }}"

- name: Stop early on hosts that cannot run guests at all
  ansible.builtin.assert:
    that: host.virt_host.verdict != 'none'
    fail_msg: "{{ host.virt_host.reason }}"
"""

RETURN = r"""
virt_host:
  description: What the host offers for virtualization, and the verdict.
  returned: always
  type: dict
  contains:
    verdict:
      description:
        - V(kvm) when guests can run hardware-accelerated (C(<domain type='kvm'>)).
        - V(emulation) when guests can run only under QEMU TCG (C(<domain type='qemu'>)).
        - V(none) when this host cannot run KVM/libvirt guests (not Linux, or no C(/proc)).
      returned: always
      type: str
      choices: [kvm, emulation, none]
      sample: emulation
    reason:
      description: Why the verdict is what it is, and what to do to get hardware acceleration.
      returned: always
      type: str
      sample: >-
        no vmx/svm in /proc/cpuinfo (0 CPUs with hardware virtualization): guests will run under QEMU TCG emulation,
        ~10-50x slower; enable VT-x/AMD-V in firmware, or nested virtualization on the hypervisor running this machine
    system:
      description: Operating system name, as Python's C(platform.system) reports it.
      returned: always
      type: str
      sample: Linux
    architecture:
      description: Machine architecture, as Python's C(platform.machine) reports it.
      returned: always
      type: str
      sample: x86_64
    cpu:
      description: The CPU, from the first processor entry of C(/proc/cpuinfo).
      returned: always
      type: dict
      contains:
        vendor:
          description:
            - C(vendor_id) on x86 (V(GenuineIntel), V(AuthenticAMD)).
            - On ARM, the name for the C(CPU implementer) code (V(ARM), V(Ampere), ...) or the code itself.
            - V(null) when C(/proc/cpuinfo) does not say.
          returned: always
          type: str
          sample: GenuineIntel
        model_name:
          description:
            - C(model name) from C(/proc/cpuinfo).
            - On ARM64, which has no model name, the vendor and C(CPU part) code (V(ARM part 0xd0c)).
          returned: always
          type: str
          sample: Intel(R) Core(TM) i5-7200U CPU @ 2.50GHz
        logical_cpus:
          description: Number of processor entries in C(/proc/cpuinfo); V(0) when it is missing.
          returned: always
          type: int
          sample: 4
        hypervisor_flag:
          description: Whether the CPU flags include C(hypervisor), meaning this machine is itself a virtual machine.
          returned: always
          type: bool
          sample: false
    hardware_virtualization:
      description: The x86 hardware virtualization flags. Always false and V(0) on other architectures, which do not have them.
      returned: always
      type: dict
      contains:
        vmx:
          description: Whether the CPU flags include C(vmx) (Intel VT-x).
          returned: always
          type: bool
          sample: true
        svm:
          description: Whether the CPU flags include C(svm) (AMD-V).
          returned: always
          type: bool
          sample: false
        cpus_with_hw_virt:
          description: Number of processor entries whose flags include C(vmx) or C(svm); V(0) means none.
          returned: always
          type: int
          sample: 4
    kvm_device:
      description: C(/dev/kvm), as seen by the user the module runs as.
      returned: always
      type: dict
      contains:
        path:
          description: Path of the device.
          returned: always
          type: str
          sample: /dev/kvm
        present:
          description: Whether C(/dev/kvm) exists.
          returned: always
          type: bool
          sample: true
        openable:
          description: Whether opening C(/dev/kvm) read-write succeeded (it is closed again at once).
          returned: always
          type: bool
          sample: false
        error:
          description: The error text when C(/dev/kvm) is missing or cannot be opened, else V(null).
          returned: always
          type: str
          sample: Permission denied
        errno:
          description: The error number that goes with RV(virt_host.kvm_device.error), else V(null).
          returned: always
          type: int
          sample: 13
        owner:
          description: Owner of C(/dev/kvm) (user name, or the uid when it has none); V(null) when missing.
          returned: always
          type: str
          sample: root
        group:
          description: Group of C(/dev/kvm) (group name, or the gid when it has none); V(null) when missing.
          returned: always
          type: str
          sample: kvm
        mode:
          description: Permission bits of C(/dev/kvm) as a four-digit octal string; V(null) when missing.
          returned: always
          type: str
          sample: "0660"
    kvm_modules:
      description:
        - Kernel modules whose name starts with C(kvm) (C(kvm), C(kvm_intel), C(kvm_amd), C(kvm_pvm), ...),
          from C(/proc/modules) and, for built-in modules, C(/sys/module).
      returned: always
      type: list
      elements: dict
      sample: [{name: kvm, builtin: false, nested: null}, {name: kvm_intel, builtin: false, nested: true}]
      contains:
        name:
          description: Module name.
          returned: always
          type: str
          sample: kvm_intel
        builtin:
          description: Whether the module is built into the kernel (in C(/sys/module) but not in C(/proc/modules)).
          returned: always
          type: bool
          sample: false
        nested:
          description:
            - The module's C(nested) parameter (C(/sys/module/<name>/parameters/nested)).
            - V(true) for C(Y)/C(1), V(false) for C(N)/C(0), V(null) when the module has no such parameter.
          returned: always
          type: bool
          sample: true
    iommu:
      description: IOMMU state, needed for PCI passthrough.
      returned: always
      type: dict
      contains:
        enabled:
          description: Whether C(/sys/class/iommu) has entries or C(/sys/kernel/iommu_groups) is not empty.
          returned: always
          type: bool
          sample: true
        groups:
          description: Number of IOMMU groups in C(/sys/kernel/iommu_groups).
          returned: always
          type: int
          sample: 17
        cmdline:
          description: The C(intel_iommu=), C(amd_iommu=) and C(iommu=) options on the kernel command line.
          returned: always
          type: list
          elements: str
          sample: [intel_iommu=on, iommu=pt]
    vboxdrv:
      description: VirtualBox's kernel driver.
      returned: always
      type: dict
      contains:
        loaded:
          description: Whether the C(vboxdrv) module is loaded.
          returned: always
          type: bool
          sample: false
        device_present:
          description: Whether C(/dev/vboxdrv) exists.
          returned: always
          type: bool
          sample: false
    virtualbox_possible:
      description:
        - Whether VirtualBox 6.1 or later can run VMs here (x86_64 with VT-x or AMD-V).
        - A missing C(vboxdrv) does not make it false; RV(virt_host.virtualbox_reason) says how to load it.
      returned: always
      type: bool
      sample: true
    virtualbox_reason:
      description: Why VirtualBox can or cannot run VMs here, and what to do.
      returned: always
      type: str
      sample: >-
        CPU has vmx; vboxdrv is not loaded or /dev/vboxdrv is missing: install VirtualBox with its kernel modules
        (virtualbox-dkms) and run `modprobe vboxdrv` before starting VMs
    os:
      description:
        - The operating system, from C(/etc/os-release) or, when that is missing, C(/usr/lib/os-release).
        - The os-release fields are empty (empty string or list) when neither file exists.
      returned: always
      type: dict
      contains:
        id:
          description: C(ID) from os-release, lower case.
          returned: always
          type: str
          sample: debian
        id_like:
          description: The words of C(ID_LIKE) from os-release; empty when it has none (Debian, Fedora).
          returned: always
          type: list
          elements: str
          sample: [rhel, centos, fedora]
        version_id:
          description: C(VERSION_ID) from os-release; empty on rolling releases such as Debian sid and Arch Linux.
          returned: always
          type: str
          sample: "12"
        version_codename:
          description: C(VERSION_CODENAME) (or C(UBUNTU_CODENAME)) from os-release; empty when it has none (Rocky, RHEL).
          returned: always
          type: str
          sample: bookworm
        pretty_name:
          description: C(PRETTY_NAME) from os-release.
          returned: always
          type: str
          sample: Debian GNU/Linux 12 (bookworm)
        family:
          description:
            - OS family as Ansible's C(ansible_os_family) names it, from C(ID), then C(ID_LIKE).
            - V(Debian) for debian and ubuntu and their derivatives, V(RedHat) for rhel, centos and fedora
              (Fedora included) and their rebuilds, V(Suse) for (open)SUSE, V(Archlinux) for arch.
            - Otherwise C(ID) capitalized (V(Alpine)); empty when there is no os-release.
          returned: always
          type: str
          sample: Debian
        distribution:
          description:
            - Distribution as Ansible's C(ansible_distribution) names it; V(RedHat) for C(ID=rhel).
            - C(ID) capitalized for distributions without a special name; empty when there is no os-release.
          returned: always
          type: str
          sample: Debian
        package_manager:
          description:
            - The first package manager whose binary exists, checked in this order.
            - V(apt) (C(/usr/bin/apt-get)), V(dnf5) (C(/usr/bin/dnf5)), V(dnf) (C(/usr/bin/dnf)), V(zypper),
              V(pacman), V(apk) (C(/sbin/apk)), else V(unknown).
          returned: always
          type: str
          choices: [apt, dnf5, dnf, zypper, pacman, apk, unknown]
          sample: apt
        service_manager:
          description:
            - V(systemd) when C(/run/systemd/system) is a directory, the check systemd's own C(sd_booted) function makes.
            - Otherwise the command name of PID 1 (C(/proc/1/comm)), for example V(init) or V(tini) in a container;
              V(unknown) when that cannot be read.
          returned: always
          type: str
          sample: systemd
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._cpu import gather
from ansible_collections.virtops.hypervisor.plugins.module_utils._os_release import gather_os


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    run_module(module, lambda result: {'virt_host': dict(gather(), os=gather_os())})


if __name__ == '__main__':
    main()
