#!/usr/bin/python
# Copyright: virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: warn
short_description: Show a warning in the play output
version_added: 0.1.0
description:
  - Shows O(msg) as an Ansible warning (C([WARNING]) in the output and in the task result), without
    touching the host. The roles use it for settings accepted on explicit request, such as emulated
    guests or an insecure libvirtd configuration.
options:
  msg:
    description: The warning text.
    type: str
    required: true
extends_documentation_fragment:
  - virtops.hypervisor.attributes
attributes:
  action:
    support: full
  async:
    support: none
  become:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  connection:
    support: none
  delegation:
    support: none
    details: Runs on the controller only.
  diff_mode:
    support: none
  platform:
    platforms: all
author:
  - virtops maintainers
"""

EXAMPLES = r"""
- name: Warn that guests will be emulated
  virtops.hypervisor.warn:
    msg: No vmx/svm on this host; guests run under QEMU TCG emulation.
"""

RETURN = r"""
msg:
  description: The warning shown.
  returned: always
  type: str
  sample: No vmx/svm on this host; guests run under QEMU TCG emulation.
"""
