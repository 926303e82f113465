# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # Standard fragment: describes the attributes; modules declare their support
    # with one of the fragments below or an attributes section of their own.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
"""

    # Use together with the standard fragment.
    CHECK_MODE_FULL = r"""
options: {}
attributes:
  check_mode:
    support: full
"""

    # Use together with the standard fragment.
    DIFF_MODE_FULL = r"""
options: {}
attributes:
  diff_mode:
    support: full
"""

    # Use together with the standard fragment, for *_info modules.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
"""

    # Use together with the standard fragment, for modules that run on Linux targets only.
    PLATFORM_LINUX = r"""
options: {}
attributes:
  platform:
    support: full
    platforms: linux
"""
