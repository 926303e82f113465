#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: managed_files
short_description: Write several configuration files, and set attributes of existing paths, in one call
version_added: 0.1.0
description:
  - Converges a set of files whose content is given (rendered on the controller, for example with
    C(lookup('ansible.builtin.template', ...))) and the owner, group and mode of existing paths, in one
    remote call. A role with several small configuration files then costs one round trip on a rerun
    instead of one or two per file.
  - A file is rewritten only when its bytes differ. It is written to a temporary file in the same
    directory and renamed over the target, so readers never see a partial file. Missing parent
    directories are created, owned by the connecting user, mode C(0755).
  - With O(files[].backup), the previous version is kept next to the file (as
    M(ansible.builtin.template) does); its path is returned so a caller can restore it.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.check_mode_full
  - virtops.hypervisor.attributes.diff_mode_full
  - virtops.hypervisor.attributes.platform_linux
options:
  files:
    description: Files to write.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file.
        type: path
        required: true
      content:
        description: The whole content of the file.
        type: str
        required: true
      owner:
        description: Owner of the file; unset keeps the current one (new files get the connecting user).
        type: str
      group:
        description: Group of the file; unset keeps the current one.
        type: str
      mode:
        description: Mode as an octal string such as V(0644); unset keeps the current one.
        type: raw
      backup:
        description: Keep the previous version of a changed file as C(<path>.<pid>.<timestamp>~).
        type: bool
        default: false
  attributes:
    description:
      - Existing paths (device nodes, directories, files) whose owner, group and mode are set. Their
        content is left alone. A missing path is an error.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      owner:
        description: Owner; unset keeps the current one.
        type: str
      group:
        description: Group; unset keeps the current one.
        type: str
      mode:
        description: Mode as an octal string such as V(0660); unset keeps the current one.
        type: raw
notes:
  - Paths must be absolute and each may appear once.
  - Every check that can fail (paths, a directory in the way, unknown owners and groups, modes that cannot be
    read) runs before the first write. A write that fails nevertheless (a full disk, a read-only file system)
    ends the call; the result then still lists the files written before it.
  - In check mode, an owner or group of a file still to be created that does not exist on the host is a warning,
    not a failure, since a task that check mode skipped (a package, M(ansible.builtin.group)) may create it.
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Write libvirtd.conf and a socket drop-in, and set /dev/kvm's group, in one call
  virtops.hypervisor.managed_files:
    files:
      - path: /etc/libvirt/libvirtd.conf
        content: "{{ lookup('ansible.builtin.template', 'libvirtd.conf.j2') }}"
        owner: root
        group: root
        mode: "0644"
        backup: true
      - path: /etc/systemd/system/libvirtd.socket.d/override.conf
        content: |
          [Socket]
          SocketGroup=libvirt
          SocketMode=0770
        mode: "0644"
    attributes:
      - path: /dev/kvm
        group: kvm
        mode: "0660"
  register: written

- name: React only to a changed libvirtd.conf
  ansible.builtin.debug:
    msg: "libvirtd.conf changed, previous version in {{ written.files[0].backup_file | default('none') }}"
  when: written.files[0].changed
"""

RETURN = r"""
actions:
  description:
    - What was done, or would be done in check mode, in order; C(write <path>) for a file whose content was
      written and C(set attributes of <path>) for owner, group or mode set. Empty when nothing changed.
    - When the call fails, the actions that were carried out before the failure.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/libvirt/libvirtd.conf", "set attributes of /dev/kvm"]
differences:
  description: What differed from what was asked, one line per path and attribute.
  returned: always
  type: list
  elements: str
  sample: ["/etc/libvirt/libvirtd.conf: content changed", "/dev/kvm: mode 0600 -> 0660"]
failed_object:
  description: The path the failure is about.
  returned: on failure, when it concerns one path
  type: str
  sample: /etc/libvirt/libvirtd.conf
files:
  description: One entry per O(files) item, in the same order (after a failure, the items handled before it).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
      sample: /etc/libvirt/libvirtd.conf
    changed:
      description: Whether the content or attributes differed (and, outside check mode, were changed).
      type: bool
      sample: true
    created:
      description: Whether the file did not exist before.
      type: bool
      sample: false
    backup_file:
      description: Where the previous version was kept.
      type: str
      returned: when O(files[].backup) is true and an existing file was rewritten
      sample: /etc/libvirt/libvirtd.conf.1234.2026-11-24@10:00:00~
    created_directories:
      description: Parent directories that were created, outermost first.
      type: list
      elements: str
      returned: when directories were created
      sample: [/etc/systemd/system/libvirtd.socket.d]
attributes:
  description: One entry per O(attributes) item, in the same order (after a failure, the items handled before it).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path.
      type: str
      sample: /dev/kvm
    changed:
      description: Whether owner, group or mode differed.
      type: bool
      sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._managed_files import ManagedFiles


def main():
    module = AnsibleModule(
        argument_spec={
            'files': {'type': 'list', 'elements': 'dict', 'default': [], 'options': {
                'path': {'type': 'path', 'required': True},
                'content': {'type': 'str', 'required': True},
                'owner': {'type': 'str'},
                'group': {'type': 'str'},
                'mode': {'type': 'raw'},
                'backup': {'type': 'bool', 'default': False},
            }},
            'attributes': {'type': 'list', 'elements': 'dict', 'default': [], 'options': {
                'path': {'type': 'path', 'required': True},
                'owner': {'type': 'str'},
                'group': {'type': 'str'},
                'mode': {'type': 'raw'},
            }},
        },
        supports_check_mode=True,
    )
    run_module(module, lambda result: ManagedFiles(module, result).run())


if __name__ == '__main__':
    main()
