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
    description: Runs as an action plugin on the controller.
    support: full
  check_mode:
    support: full
    details: Nothing changes, in check mode or not.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: all
author:
  - virtops maintainers (@virtops)
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
