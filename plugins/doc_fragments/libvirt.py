# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The connection options and requirements of every libvirt_* module.
    DOCUMENTATION = r"""
options:
  uri:
    description:
      - libvirt connection URI.
      - The *_info modules need read-only access; the others read-write (root, or a member of the group of
        libvirt's socket, see the kvm_host role's C(kvm_host_libvirtd_unix_sock_group)).
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (C(python3-libvirt) on Debian, Ubuntu, EL and Fedora) on the host the module runs on.
"""
