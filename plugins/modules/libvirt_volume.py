#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: libvirt_volume
short_description: Create, import, clone, grow and delete libvirt storage volumes, one or a batch
version_added: 1.1.0
description:
  - Volumes are identified by O(pool) and O(name). O(state=present) creates a missing volume - empty
    (O(capacity), O(format)), a thin qcow2 overlay on O(backing), a copy of an image file on the target
    (O(src)) or a full copy of another volume (O(clone_from)) - and converges an existing one; its capacity
    grows to O(capacity) (shrinking needs O(allow_shrink=true)) and its O(permissions) are set.
  - O(state=absent) deletes the volume. A volume that a domain uses (any disk of an active or inactive
    definition whose source is its path, or its pool and name) or that another volume uses as its backing
    file is neither deleted, nor shrunk, nor imported again; the error names the domains and volumes.
  - O(src) is imported with C(virStorageVolUpload) through a sparse stream, byte for byte (its format is kept;
    holes stay holes); libvirt creates the volume's file with the pool's owner and mode. A fingerprint of the
    source (size, mtime, inode, device, format and virtual size, as M(virtops.hypervisor.qemu_image) records it)
    is stored with the volume as the extended attribute C(user.virtops.libvirt_volume). A rerun with an unchanged
    source reads only that and the file's metadata, not the image. A source that changed since (or a volume
    without that record) is imported again - the volume is deleted and imported anew, as M(virtops.hypervisor.qemu_image)
    converts again - unless something uses the volume, which is refused. O(src) therefore needs a pool whose volumes
    are files on the host the module runs on (V(dir), V(fs), V(netfs) pools over a local URI).
  - O(url) downloads an image (with O(checksum)) into a cache on the target and imports it as O(src) does. See
    O(url) and O(checksum) for what a rerun checks; a changed checksum imports the volume again, unless something
    uses it, which is refused. A download happens before the first change of the call (a refused item of the batch
    leaves at most the verified image in the cache); check mode never downloads.
  - O(clone_from) copies a volume once (C(virStorageVolCreateXMLFrom)); an existing volume is never cloned again.
  - The format and the backing file of an existing volume are not changed in place; asking for another one is
    refused (delete the volume and create it again).
  - With O(volumes), every item is validated and planned before the first change (an item refused fails the
    call with nothing changed); items may use volumes that earlier items create (an overlay on a base volume).
  - Diff mode shows each volume before and after (format, capacity, backing file, the permissions asked for, and
    the source file recorded for O(src), the URL and checksum recorded for O(url)).
  - In check mode a pool that does not exist or is not active (an earlier task of the play, such as
    M(virtops.hypervisor.libvirt_pool), would create or start it) is taken as empty, with a warning naming it;
    its volumes are reported as to be created, without their paths. A real run fails on such a pool.
author:
  - virtops maintainers (@virtops)
extends_documentation_fragment:
  - virtops.hypervisor.attributes
  - virtops.hypervisor.attributes.check_mode_full
  - virtops.hypervisor.attributes.diff_mode_full
  - virtops.hypervisor.attributes.platform_linux
  - virtops.hypervisor.libvirt
options:
  pool:
    description: Name of the storage pool (it must exist and be active). With O(volumes), the default pool of its items.
    type: str
  name:
    description: Name of the volume (a file name in dir pools).
    type: str
  state:
    description: V(present) creates or converges the volume, V(absent) deletes it. With O(volumes), the items' default.
    type: str
    choices: [present, absent]
    default: present
  capacity:
    description:
      - Virtual size, in bytes or with a suffix K, M, G, T, P or E (powers of 1024, as qemu-img reads them), such
        as V(10G). libvirt makes qcow2 volumes in whole KiB (rounded up), raw volumes in bytes; sizes are compared
        so.
      - Needed to create an empty volume. With O(backing), O(src) or O(clone_from), the default is the size of the
        backing volume or source; a larger capacity grows the new volume after the import or clone.
      - An existing volume of a smaller capacity is grown; of a larger one is shrunk only with O(allow_shrink=true),
        when nothing uses it and not below its allocation.
    type: raw
  format:
    description:
      - Format of a new volume. Default V(qcow2), the format of O(src) (which is imported as it is) or of the
        volume O(clone_from) names (another format converts the copy).
      - With O(src) or O(url), the format the image must have (what C(qemu-img info) detects); another one is
        refused. In check mode, the format of an image not downloaded yet.
      - For an existing volume, another format than its own is refused.
    type: str
    choices: [qcow2, raw]
  allocation:
    description:
      - Space to allocate when the volume is created, same syntax as O(capacity). Default V(0) (sparse; libvirt's own
        default would allocate raw volumes in full). Not compared afterwards (a guest's writes change it). Not with
        O(src) or O(url) (the volume takes what the file takes).
    type: raw
  backing:
    description:
      - Create a thin qcow2 overlay on another volume (O(backing.volume), O(backing.pool)) or an image file
        (O(backing.path), O(backing.format)).
    type: dict
    suboptions:
      volume:
        description: Name of the backing volume.
        type: str
      pool:
        description: Its pool. Default O(pool).
        type: str
      path:
        description: Absolute path of the backing image.
        type: path
      format:
        description: Format of the image at O(backing.path). Default what qemu-img detects.
        type: str
  src:
    description:
      - Absolute path of an image file on the target to import (see the description). Its format is kept; an image
        with a backing file is refused.
    type: path
  url:
    description:
      - URL of an image to download (C(http), C(https), C(ftp) or C(file)) through Ansible's URL handling, as
        M(ansible.builtin.get_url) does (proxies from the environment unless O(use_proxy=false), O(validate_certs),
        O(ca_path), O(client_cert), O(url_headers), O(url_timeout) ...). Needs O(checksum).
      - The body is hashed as it arrives, decompressed (O(decompress)), verified and only then renamed into
        O(download_cache); then it is imported into the volume as O(src) is. A checksum mismatch, an HTTP error or a
        timeout fails with the URL named and leaves no file behind and no volume.
      - The volume records the URL and the checksum verified (the extended attribute C(user.virtops.libvirt_volume)).
        A rerun with the same checksum makes no request at all (a checksum file URL - one, for that file) and does
        not read the image. A changed checksum downloads and imports again (refused while the volume is in use);
        another URL with the same checksum only rewrites the record (action V(record)).
      - Like O(src), it needs a pool whose volumes are files on the host the module runs on.
      - The URL is recorded and returned as given, so put credentials in O(url_username) and O(url_password) (or
        O(url_headers)), not in the URL.
    type: str
  checksum:
    description:
      - Required with O(url). The checksum of what O(url) serves (the compressed file for a C(.xz) or C(.gz) URL,
        as checksum files list it), one of
      - V(sha256:<hex>) (also V(sha224), V(sha384), V(sha512)).
      - The URL of a checksum file such as C(SHA256SUMS) or C(SHA512SUMS), optionally after the algorithm
        (V(sha512:https://.../SHA512SUMS)). The line for the base name of O(url) is used; lines C(<hex>  name),
        C(<hex> *name) and C(SHA256 (name\) = <hex>) are understood; the algorithm comes from the prefix, the
        line, the file's name or the length of the hex. The file is fetched on every run (one small request),
        so a new image published under the same URL is noticed.
      - V(none) trusts the URL alone - the image is downloaded once and never compared again; the cache entry is
        named after the URL.
    type: str
  decompress:
    description:
      - How to decompress what O(url) serves before the import. V(auto) (the default) decompresses xz and gzip data
        by their magic bytes, and refuses a URL ending in C(.xz) or C(.gz) whose data is not that; V(xz), V(gz) force
        one, V(none) imports the bytes as served. Python's C(lzma) and C(zlib) decompress; no shell.
    type: str
    choices: [auto, xz, gz, none]
  clone_from:
    description: Create the volume as a full copy of another volume.
    type: dict
    suboptions:
      volume:
        description: Name of the volume to copy.
        type: str
      pool:
        description: Its pool. Default O(pool).
        type: str
  permissions:
    description:
      - Owner, group and mode of the volume's file. Set when the volume is created, and on an existing one (libvirt
        has no call for that, so the module changes the file, on the host it runs on).
      - Only the keys given are compared.
    type: dict
    suboptions:
      mode:
        description: Octal mode, such as V('0640') (quote it).
        type: raw
      owner:
        description: User name or uid.
        type: str
      group:
        description: Group name or gid.
        type: str
  allow_shrink:
    description: Allow O(capacity) to shrink an existing volume (the data beyond it is lost). With O(volumes), the
      items' default.
    type: bool
    default: false
  volumes:
    description:
      - A batch of volumes, each with the options above (except O(uri) and O(volumes)); an option left out of an item
        takes its top-level value, so O(pool) can be given once.
    type: list
    elements: dict
    suboptions:
      pool:
        description: See O(pool).
        type: str
      name:
        description: See O(name).
        type: str
      state:
        description: See O(state).
        type: str
        choices: [present, absent]
      capacity:
        description: See O(capacity).
        type: raw
      format:
        description: See O(format).
        type: str
        choices: [qcow2, raw]
      allocation:
        description: See O(allocation).
        type: raw
      backing:
        description: See O(backing).
        type: dict
        suboptions:
          volume:
            description: See O(backing.volume).
            type: str
          pool:
            description: See O(backing.pool).
            type: str
          path:
            description: See O(backing.path).
            type: path
          format:
            description: See O(backing.format).
            type: str
      src:
        description: See O(src).
        type: path
      url:
        description: See O(url).
        type: str
      checksum:
        description: See O(checksum).
        type: str
      decompress:
        description: See O(decompress).
        type: str
        choices: [auto, xz, gz, none]
      clone_from:
        description: See O(clone_from).
        type: dict
        suboptions:
          volume:
            description: See O(clone_from.volume).
            type: str
          pool:
            description: See O(clone_from.pool).
            type: str
      permissions:
        description: See O(permissions).
        type: dict
        suboptions:
          mode:
            description: See O(permissions.mode).
            type: raw
          owner:
            description: See O(permissions.owner).
            type: str
          group:
            description: See O(permissions.group).
            type: str
      allow_shrink:
        description: See O(allow_shrink).
        type: bool
  download_cache:
    description:
      - Directory on the target for the images O(url) downloads, created with mode C(0700) when missing (an existing
        one is left as it is). Entries are named by the checksum of what was served and how it was decompressed
        (C(sha256-<hex>.unxz)), so volumes from one image share one download, whatever the URL; files are
        C(0600), owned by the user the module runs as. Nothing removes old entries; delete them when no longer
        needed (a volume does not need its cache entry after the import).
      - For all items of O(volumes).
    type: path
    default: /var/cache/virtops/images
  url_headers:
    description: HTTP headers to send with each request of O(url) and of a checksum file, as a dictionary.
    type: dict
  url_timeout:
    description: Timeout in seconds for connecting and for each read (not for the whole download).
    type: int
    default: 30
  validate_certs:
    description: Whether to validate HTTPS certificates. V(false) only for a trusted internal host.
    type: bool
    default: true
  ca_path:
    description: PEM bundle of the CA certificates to trust for HTTPS, instead of the system's.
    type: path
  client_cert:
    description: PEM client certificate for HTTPS (may hold the key too, else O(client_key)).
    type: path
  client_key:
    description: PEM private key for O(client_cert).
    type: path
  use_proxy:
    description: Whether to use the proxy the environment sets (C(https_proxy), C(http_proxy), C(no_proxy)).
    type: bool
    default: true
  url_username:
    description: User name for HTTP basic authentication.
    type: str
  url_password:
    description: Password for HTTP basic authentication.
    type: str
  force_basic_auth:
    description: Send the basic authentication header with the first request, not only after a 401.
    type: bool
    default: false
notes:
  - The test driver (C(test:///default)) creates, clones and deletes volumes, but cannot resize them.
  - The URL options (O(url_headers), O(url_timeout), O(validate_certs) ...) and O(download_cache) apply to the
    whole call; O(url), O(checksum) and O(decompress) can differ per item.
  - In check mode an image that is not in the cache yet is not downloaded, so its format and capacity are the ones
    asked for (O(format), O(capacity)) or null in the diff, and a resize to O(capacity) is predicted; the real run
    knows them and refuses then what cannot be done (a capacity smaller than the image, another format), before
    any change. An image already in the cache is predicted exactly.
seealso:
  - module: virtops.hypervisor.libvirt_volume_info
  - module: virtops.hypervisor.qemu_image
  - module: virtops.hypervisor.libvirt_domain
"""

EXAMPLES = r"""
- name: A 20 GiB qcow2 disk
  virtops.hypervisor.libvirt_volume:
    pool: default
    name: web1.qcow2
    capacity: 20G

- name: Import a cloud image, then give every guest a thin overlay on it
  virtops.hypervisor.libvirt_volume:
    pool: default
    volumes:
      - name: debian-12-base.qcow2
        src: /srv/images/debian-12-genericcloud-amd64.qcow2
        permissions: {mode: '0644'}
      - name: web1.qcow2
        backing: {volume: debian-12-base.qcow2}
        capacity: 20G
      - name: web2.qcow2
        backing: {volume: debian-12-base.qcow2}
        capacity: 20G

- name: A Debian cloud image by URL, checked against the project's SHA512SUMS, grown to 20 GiB
  virtops.hypervisor.libvirt_volume:
    pool: default
    name: debian-12-base.qcow2
    url: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2
    checksum: https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS
    capacity: 20G

- name: A compressed raw image with a literal checksum (of the .xz file), from an internal mirror
  virtops.hypervisor.libvirt_volume:
    pool: default
    name: appliance.raw
    url: https://mirror.internal/images/appliance-2.4.raw.xz
    checksum: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    use_proxy: false
    url_headers:
      Authorization: "Bearer {{ mirror_token }}"

- name: A full copy of a template in another pool
  virtops.hypervisor.libvirt_volume:
    pool: fast
    name: db1.qcow2
    clone_from: {pool: templates, volume: db-template.qcow2}

- name: Grow a disk
  virtops.hypervisor.libvirt_volume:
    pool: default
    name: web1.qcow2
    capacity: 40G

- name: Delete a disk (refused while a domain uses it)
  virtops.hypervisor.libvirt_volume:
    pool: default
    name: old1.qcow2
    state: absent
"""

RETURN = r"""
pool:
  description: The pool, as given.
  returned: when O(volumes) is not used
  type: str
  sample: default
name:
  description: The volume, as given.
  returned: when O(volumes) is not used
  type: str
  sample: web1.qcow2
state:
  description: The state asked for.
  returned: when O(volumes) is not used
  type: str
  sample: present
volume:
  description:
    - The volume afterwards (predicted in check mode, where C(key) and C(allocation) of a new volume are unknown);
      null when it does not exist. The keys of M(virtops.hypervisor.libvirt_volume_info) without its users.
  returned: when O(volumes) is not used
  type: dict
  sample: {name: web1.qcow2, pool: default, path: /var/lib/libvirt/images/web1.qcow2, format: qcow2,
           capacity: 21474836480, allocation: 200704, backing: null, permissions: {mode: '0600', owner: 0, group: 0}}
actions:
  description:
    - What was done, or would be in check mode, in order - V(download) (O(url) into the cache), V(create),
      V(import), V(clone), V(reimport), V(record) (the URL of a volume rewritten, same checksum), V(resize),
      V(permissions), V(delete). Empty when nothing changed. An action is listed once it was carried out.
    - With O(volumes), the top-level list is empty and each item of RV(volumes) has its own.
  returned: always
  type: list
  elements: str
  sample: [create]
differences:
  description: What differed, one line each (what, a colon, before -> after). With O(volumes), in each item.
  returned: always
  type: list
  elements: str
  sample: ["capacity: 20 GiB -> 40 GiB"]
reasons:
  description: Each action with why or what, the action's name, a colon and the detail.
  returned: when something changed
  type: list
  elements: str
  sample: ["resize: 20 GiB -> 40 GiB"]
failed_object:
  description: The volume a failure is about, such as C(volume 'web1.qcow2' in pool 'default').
  returned: on failure
  type: str
  sample: volume 'web1.qcow2' in pool 'default'
volumes:
  description: One result per item of O(volumes), in order, with the keys above.
  returned: when O(volumes) is used
  type: list
  elements: dict
  sample: [{pool: default, name: web1.qcow2, state: present, changed: true, actions: [create], differences: []}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import run_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_manager import converge_module
from ansible_collections.virtops.hypervisor.plugins.module_utils._volume_options import MODULE_OPTIONS


def main():
    module = AnsibleModule(
        argument_spec=MODULE_OPTIONS,
        mutually_exclusive=[('volumes', 'name'), ('src', 'url', 'clone_from', 'backing')],
        required_one_of=[('name', 'volumes')],
        supports_check_mode=True,
    )
    run_module(module, lambda result: converge_module(module, result))


if __name__ == '__main__':
    main()
