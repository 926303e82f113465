# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Can this host run virtual machines, and how fast?

Private to virtops.hypervisor. Parsing and the verdict are pure functions over text and dicts;
``gather()`` is the only part that touches the filesystem, and it reads below a root directory
so tests can point it at a fake tree.
"""

from __future__ import annotations

import errno
import grp
import os
import platform
import pwd
import stat

from ansible_collections.virtops.hypervisor.plugins.module_utils._host_files import read_text

X86_MACHINES = ('x86_64', 'amd64', 'i386', 'i686')

# /proc/cpuinfo "CPU implementer" codes on ARM (as listed by util-linux lscpu).
ARM_IMPLEMENTERS = {
    '0x41': 'ARM', '0x42': 'Broadcom', '0x43': 'Cavium', '0x46': 'Fujitsu', '0x48': 'HiSilicon',
    '0x4e': 'NVIDIA', '0x50': 'APM', '0x51': 'Qualcomm', '0x53': 'Samsung', '0x56': 'Marvell',
    '0x61': 'Apple', '0x69': 'Intel', '0xc0': 'Ampere',
}

IOMMU_CMDLINE_KEYS = ('intel_iommu', 'amd_iommu', 'iommu')

SLOWDOWN = 'QEMU TCG emulation, ~10-50x slower'
HW_FIX = 'enable VT-x/AMD-V in firmware, or nested virtualization on the hypervisor running this machine'


def parse_cpuinfo(text):
    """Summarise /proc/cpuinfo text: vendor, model, logical CPUs and hardware virtualization flags.

    Counts processor entries whose flags contain vmx or svm as whole words. This is what
    ``egrep -c '(vmx|svm)' /proc/cpuinfo`` means to say, but that command counts lines, and
    kernels since 5.8 print an extra ``vmx flags`` line per Intel CPU, doubling its count.
    """
    processors = []
    for block in text.split('\n\n'):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(':')
            if sep:
                fields.setdefault(key.strip(), value.strip())
        if fields.get('processor', '').isdigit():
            processors.append(fields)

    first = processors[0] if processors else {}
    flag_sets = [set(p.get('flags', '').split()) for p in processors]
    vendor = first.get('vendor_id')
    model_name = first.get('model name')
    implementer = first.get('CPU implementer')
    if vendor is None and implementer is not None:
        vendor = ARM_IMPLEMENTERS.get(implementer.lower(), implementer)
        if model_name is None and 'CPU part' in first:
            model_name = '%s part %s' % (vendor, first['CPU part'])
    return {
        'vendor': vendor,
        'model_name': model_name,
        'logical_cpus': len(processors),
        'hypervisor_flag': any('hypervisor' in flags for flags in flag_sets),
        'vmx': any('vmx' in flags for flags in flag_sets),
        'svm': any('svm' in flags for flags in flag_sets),
        'cpus_with_hw_virt': sum(1 for flags in flag_sets if flags & {'vmx', 'svm'}),
    }


def parse_modules(text):
    """Return the module names listed in /proc/modules text, in order."""
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def parse_nested(value):
    """Map a kvm_* ``nested`` parameter (Y/N for kvm_intel, 1/0 for kvm_amd) to True/False/None."""
    if value is None:
        return None
    value = value.strip().upper()
    if value in ('Y', '1'):
        return True
    if value in ('N', '0'):
        return False
    return None


def parse_iommu_cmdline(text):
    """Return the IOMMU options (intel_iommu=, amd_iommu=, iommu=) on a kernel command line."""
    found = []
    for token in text.split():
        if token == '--':  # the rest is for init, not the kernel
            break
        if token.partition('=')[0] in IOMMU_CMDLINE_KEYS:
            found.append(token)
    return found


def is_x86(machine):
    return machine in X86_MACHINES


def _describe_mode(dev):
    return '%s:%s %s' % (dev['owner'], dev['group'], dev['mode'])


def _qemu_can_open(dev):
    """Whether libvirt's QEMU (an unprivileged user in group kvm) can open /dev/kvm, as udev would set it up."""
    mode = int(dev['mode'], 8)
    return mode & 0o006 == 0o006 or (dev['group'] == 'kvm' and mode & 0o060 == 0o060)


def _permission_fix(dev):
    return ('/dev/kvm is %s: add the user to group kvm, or run `chgrp kvm /dev/kvm; chmod 0660 /dev/kvm` '
            'and add a udev rule (KERNEL=="kvm", GROUP="kvm", MODE="0660") for the next boot' % _describe_mode(dev))


def _kvm_module_for(facts):
    hw = facts['hardware_virtualization']
    name = 'kvm_intel' if hw['vmx'] else 'kvm_amd'
    for module in facts['kvm_modules']:
        if module['name'] == name:
            return name, module['nested']
    return name, None


def _nested_text(nested):
    return {True: 'enabled', False: 'disabled', None: 'unknown'}[nested]


def decide(facts):
    """Return ``(verdict, reason)`` for the facts built by ``gather()``.

    verdict is ``kvm`` (hardware-accelerated guests), ``emulation`` (guests run, but only under
    QEMU TCG) or ``none`` (this host cannot run KVM/libvirt guests at all).
    """
    if facts['system'] != 'Linux':
        return 'none', 'this host runs %s, not Linux: KVM/libvirt need a Linux host' % (facts['system'] or 'an unknown OS')
    if facts['cpu']['logical_cpus'] == 0:
        return 'none', 'no processors in /proc/cpuinfo (is /proc mounted?): KVM/libvirt need a Linux host with /proc'

    dev = facts['kvm_device']
    machine = facts['architecture']
    loaded = [m['name'] for m in facts['kvm_modules']]

    if is_x86(machine):
        hw = facts['hardware_virtualization']
        if not (hw['vmx'] or hw['svm']):
            if dev['present']:
                kind = 'paravirtual KVM' if 'kvm_pvm' in loaded else 'KVM without kvm_intel/kvm_amd'
                reason = ('/dev/kvm is present (%s; kvm modules: %s) but hardware virtualization is not exposed: no vmx/svm '
                          'in /proc/cpuinfo (0 CPUs with hardware virtualization). KVM guests (domain type \'kvm\') hang here: '
                          'use domain type \'qemu\' (%s). For hardware acceleration %s' % (kind, ', '.join(loaded) or 'none', SLOWDOWN, HW_FIX))
                return 'emulation', _with_qemu_note(reason, dev, 'it and libvirtd re-probes QEMU on every call, taking seconds per call')
            return 'emulation', (
                'no vmx/svm in /proc/cpuinfo (0 CPUs with hardware virtualization): guests will run under %s; %s' % (SLOWDOWN, HW_FIX))

        flag, tech = ('vmx', 'VT-x') if hw['vmx'] else ('svm', 'AMD-V')
        module, nested = _kvm_module_for(facts)
        if not dev['present']:
            return 'emulation', (
                'CPU has %s but /dev/kvm is missing: enable %s in firmware or load %s (modprobe %s); '
                'until then guests run under %s' % (flag, tech, module, module, SLOWDOWN))
        if not dev['openable']:
            return 'emulation', _not_openable('CPU has %s but' % flag, dev)
        reason = ('CPU has %s and /dev/kvm is usable: KVM guests (domain type \'kvm\') run hardware-accelerated '
                  'through %s (nested virtualization: %s)' % (flag, module, _nested_text(nested)))
        return 'kvm', _with_qemu_note(reason, dev)

    # ARM and others: vmx/svm do not exist; /dev/kvm alone tells whether KVM works.
    if not dev['present']:
        return 'emulation', (
            'no /dev/kvm on this %s host: the kernel did not boot in hypervisor mode (EL2 on ARM) or KVM is not '
            'enabled; boot with firmware that enables virtualization (on a cloud, a bare-metal instance) and load kvm; '
            'until then guests run under %s' % (machine, SLOWDOWN))
    if not dev['openable']:
        return 'emulation', _not_openable('this %s host has /dev/kvm but' % machine, dev)
    reason = '/dev/kvm is usable on this %s host: KVM guests (domain type \'kvm\') run hardware-accelerated' % machine
    return 'kvm', _with_qemu_note(reason, dev)


def _not_openable(prefix, dev):
    if dev['errno'] in (errno.EACCES, errno.EPERM):
        return '%s this user cannot open /dev/kvm (%s): %s; until then guests run under %s' % (
            prefix, dev['error'], _permission_fix(dev), SLOWDOWN)
    return '%s /dev/kvm (%s) cannot be opened (%s); guests run under %s until that is fixed' % (
        prefix, _describe_mode(dev), dev['error'], SLOWDOWN)


def _with_qemu_note(reason, dev, consequence='it'):
    """Add a note when /dev/kvm lacks the group/mode udev gives it: the user running this module may be root."""
    if _qemu_can_open(dev):
        return reason
    return reason + ('. Note: /dev/kvm is %s, so libvirt\'s QEMU (an unprivileged user in group kvm) cannot open %s: '
                     'run `chgrp kvm /dev/kvm; chmod 0660 /dev/kvm` and add a udev rule (KERNEL=="kvm", GROUP="kvm", MODE="0660") '
                     'for the next boot' % (_describe_mode(dev), consequence))


def virtualbox_verdict(facts):
    """Return ``(possible, reason)``: can VirtualBox 6.1+ run VMs on this host?"""
    machine = facts['architecture']
    hw = facts['hardware_virtualization']
    if facts['system'] != 'Linux' or facts['cpu']['logical_cpus'] == 0:
        return False, 'this check covers Linux hosts with /proc mounted only'
    if machine not in ('x86_64', 'amd64'):
        return False, 'VirtualBox on Linux needs an x86_64 host with VT-x/AMD-V; this host is %s' % machine
    if not (hw['vmx'] or hw['svm']):
        return False, 'VirtualBox 6.1+ needs VT-x/AMD-V and the CPU shows no vmx/svm: ' + HW_FIX
    vbox = facts['vboxdrv']
    flag = 'vmx' if hw['vmx'] else 'svm'
    if vbox['loaded'] and vbox['device_present']:
        reason = 'CPU has %s and vboxdrv is loaded' % flag
    else:
        reason = ('CPU has %s; vboxdrv is not loaded or /dev/vboxdrv is missing: install VirtualBox with its kernel '
                  'modules (virtualbox-dkms) and run `modprobe vboxdrv` before starting VMs' % flag)
    busy = [m['name'] for m in facts['kvm_modules'] if m['name'] in ('kvm_intel', 'kvm_amd')]
    if busy:
        reason += ('. %s is loaded: VirtualBox VMs may fail to start (VERR_VMX_IN_VMX_ROOT_MODE / VERR_SVM_IN_USE) '
                   'while KVM holds %s; unload it (modprobe -r %s) before starting VirtualBox VMs'
                   % (busy[0], 'VT-x' if flag == 'vmx' else 'AMD-V', busy[0]))
    return True, reason


def probe_device(path):
    """stat and try to open a device node read-write, as QEMU does with /dev/kvm."""
    info = {'path': path, 'present': False, 'openable': False, 'error': None, 'errno': None,
            'owner': None, 'group': None, 'mode': None}
    try:
        st = os.stat(path)
    except OSError as e:
        info.update(error=e.strerror, errno=e.errno)
        return info
    info.update(present=True, owner=_user_name(st.st_uid), group=_group_name(st.st_gid),
                mode='%04o' % stat.S_IMODE(st.st_mode))
    try:
        os.close(os.open(path, os.O_RDWR | getattr(os, 'O_CLOEXEC', 0)))
        info['openable'] = True
    except OSError as e:
        info.update(error=e.strerror, errno=e.errno)
    return info


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _kvm_modules(root):
    """kvm* modules with their nested parameter.

    /proc/modules lists loadable modules only; built-in ones (and kernels without module support,
    where /proc/modules does not exist) show up only under /sys/module, so read both.
    """
    proc = read_text(os.path.join(root, 'proc/modules'))
    loaded = parse_modules(proc) if proc is not None else []
    names = [n for n in loaded if n.startswith('kvm')]
    names += [n for n in _listdir(os.path.join(root, 'sys/module')) if n.startswith('kvm') and n not in names]
    return loaded, [{
        'name': name,
        'builtin': name not in loaded,
        'nested': parse_nested(read_text(os.path.join(root, 'sys/module', name, 'parameters/nested'))),
    } for name in names]


def gather(root='/', machine=None, system=None):
    """Read the host's facts below ``root`` and return the ``virt_host`` dict, verdicts included."""
    cpuinfo = read_text(os.path.join(root, 'proc/cpuinfo'))
    cpu = parse_cpuinfo(cpuinfo or '')
    loaded, kvm_modules = _kvm_modules(root)
    iommu_groups = _listdir(os.path.join(root, 'sys/kernel/iommu_groups'))
    cmdline = read_text(os.path.join(root, 'proc/cmdline')) or ''
    facts = {
        'system': system if system is not None else platform.system(),
        'architecture': machine if machine is not None else platform.machine(),
        'cpu': {k: cpu[k] for k in ('vendor', 'model_name', 'logical_cpus', 'hypervisor_flag')},
        'hardware_virtualization': {k: cpu[k] for k in ('vmx', 'svm', 'cpus_with_hw_virt')},
        'kvm_device': probe_device(os.path.join(root, 'dev/kvm')),
        'kvm_modules': kvm_modules,
        'iommu': {
            'enabled': bool(_listdir(os.path.join(root, 'sys/class/iommu')) or iommu_groups),
            'groups': len(iommu_groups),
            'cmdline': parse_iommu_cmdline(cmdline),
        },
        'vboxdrv': {
            'loaded': 'vboxdrv' in loaded or os.path.isdir(os.path.join(root, 'sys/module/vboxdrv')),
            'device_present': os.path.exists(os.path.join(root, 'dev/vboxdrv')),
        },
    }
    facts['verdict'], facts['reason'] = decide(facts)
    facts['virtualbox_possible'], facts['virtualbox_reason'] = virtualbox_verdict(facts)
    # Report the path as the host sees it, not below a test root.
    facts['kvm_device']['path'] = '/dev/kvm'
    return facts
