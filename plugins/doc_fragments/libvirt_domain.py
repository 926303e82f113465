# -*- coding: utf-8 -*-
# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The options of one domain: top-level options of libvirt_domain, and the keys of its domains items.
    DOCUMENTATION = r"""
options:
  name:
    description:
      - Name of the domain. With O(xml), optional; when given it must equal the XML's C(<name>).
    type: str
  xml:
    description:
      - The full definition (libvirt domain XML). Mutually exclusive with the structured options.
      - Invalid XML fails before anything changes, naming the line and column; a definition libvirt refuses
        (validated against its schema) fails with libvirt's message, and the existing definition stays.
    type: str
  state:
    description:
      - V(present) defines (or updates) the domain and leaves it running or not.
      - V(running) also starts it (restoring a saved state if there is one) or resumes it when paused.
      - V(paused) starts it paused, or pauses it.
      - V(shutdown) asks the guest to power off (ACPI power button, pressed again every 10 seconds because a
        guest that is still booting misses it) and waits up to O(shutdown_timeout) seconds; if it is still
        running then, the domain is destroyed when O(force=true), else the task fails saying the guest did not
        stop.
      - V(destroyed) powers the domain off at once, like pulling the plug.
      - V(saved) saves a running or paused domain's memory to disk and stops it (managed save); the next start
        resumes where it was. A shut-off domain without saved state fails.
      - V(absent) stops and undefines the domain together with its saved state, snapshot and checkpoint
        metadata and NVRAM file; disks only with O(remove_storage).
      - Default V(present).
    type: str
    choices: [present, running, paused, shutdown, destroyed, saved, absent]
  autostart:
    description: Start the domain when the host boots. Unset leaves it as it is (new domains do not autostart).
    type: bool
  shutdown_timeout:
    description: Seconds to wait for a graceful shutdown (O(state=shutdown), O(apply=restart)). Default V(120).
    type: int
  force:
    description:
      - Destroy a domain that did not shut down within O(shutdown_timeout) instead of failing. Default V(false).
    type: bool
  apply:
    description:
      - When a changed definition applies to a running domain.
      - V(next_boot) leaves the guest running; the result says RV(restart_required=true) until it restarts.
      - V(restart) shuts the guest down gracefully (see O(shutdown_timeout), O(force)) and starts it again,
        paused if O(state=paused). Only when the running guest differs from its definition.
      - Default V(next_boot).
    type: str
    choices: [next_boot, restart]
  remove_storage:
    description:
      - With O(state=absent), also delete the domain's disk images (files and storage volumes, not block devices,
        and of the CD-ROMs only its O(cloud_init) seed C(<name>-cidata.iso)). A disk another domain also uses, or that another domain's disk stands on (the
        base of a linked clone, anywhere in its backing chain), is kept and listed in RV(kept_storage).
      - Default V(false).
    type: bool
  wait_for:
    description:
      - After every state change of the call, wait until the guest can be reached, and return its addresses
        (RV(address), RV(addresses)). Only with O(state=running).
      - V(ip) waits for a usable IPv4 address from a DHCP lease of a libvirt network, the guest agent or the
        host's ARP table (see M(virtops.hypervisor.libvirt_domain_info)).
      - V(agent) waits until the QEMU guest agent answers a C(guest-ping) (through libvirt's own connection to
        it); a domain without a C(org.qemu.guest_agent.0) channel fails at once.
      - V(ssh) waits for an address (as V(ip)) on which TCP port 22 answers with an C(SSH-) banner. The module
        runs on the hypervisor, so the address must be reachable from there (a NAT or routed libvirt network,
        or a bridge the host has an address on).
      - All domains of a call are waited for together, each looked at about once a second; the time a domain
        took is in RV(wait). A domain that is not ready after O(wait_timeout) seconds fails the task, which
        names each such domain and what was seen of it (for example an address from a lease but no SSH
        banner); the others are reported ready. A domain that stops running fails at once.
      - Waiting changes nothing on the host and never makes the result changed. In check mode nothing is
        waited for, so that a check run never hangs. A domain the run would define or start is reported not
        ready; one already running is looked at once (its addresses and RV(wait.ready) are what that look
        found) and does not fail the task.
    type: str
    choices: [ip, agent, ssh]
    version_added: 1.1.0
  wait_timeout:
    description:
      - Seconds to wait for O(wait_for), counted from the moment the call's state changes are done. V(0) looks
        once. Default V(300).
    type: int
    version_added: 1.1.0
  domain_type:
    description:
      - Hypervisor type. V(auto) (default for new domains) picks V(kvm) when the host CPU exposes hardware
        virtualization (vmx or svm) and libvirt offers KVM, else V(qemu) (TCG emulation, slow but works
        everywhere). Other values are passed to libvirt as they are (V(test) for the test driver).
      - Unset or V(auto) keeps the type of an existing domain.
    type: str
  memory:
    description: Memory in MiB (maximum and at boot). New domains default to 512.
    type: int
  vcpus:
    description: Number of virtual CPUs. New domains default to 1.
    type: int
  machine:
    description:
      - Machine type such as V(q35) or V(pc). Aliases are stored as libvirt resolves them (V(pc-i440fx-7.2)),
        and compared that way.
    type: str
  firmware:
    description:
      - V(efi) boots the guest with UEFI through libvirt's firmware autoselection (C(<os firmware='efi'>); the host
        needs OVMF, Debian's C(ovmf) package); V(bios) with SeaBIOS (no C(firmware) attribute, no OVMF C(<loader>)
        and C(<nvram>)). Unset leaves the domain's firmware as it is (new domains boot with BIOS).
      - A domain whose definition has an OVMF C(<loader type='pflash'>) counts as V(efi).
    type: str
    choices: [bios, efi]
    version_added: 1.1.0
  cpu:
    description: Guest CPU.
    type: dict
    suboptions:
      mode:
        description: CPU mode.
        type: str
        choices: [custom, host-model, host-passthrough, maximum]
        default: custom
      model:
        description: CPU model for O(cpu.mode=custom), such as V(qemu64) or V(Skylake-Server).
        type: str
  boot:
    description: How the domain boots.
    type: dict
    suboptions:
      devices:
        description: Boot devices in order.
        type: list
        elements: str
        choices: [hd, cdrom, network, fd]
      kernel:
        description: Kernel to boot directly (a path on the host). An empty string removes it.
        type: str
      initrd:
        description: Initial ramdisk for O(boot.kernel). An empty string removes it.
        type: str
      cmdline:
        description: Kernel command line for O(boot.kernel). An empty string removes it.
        type: str
  disks:
    description:
      - The domain's disks and CD-ROM drives, all of them, in order. An existing disk is recognized by its
        source, then by its target; its PCI address and other settings are kept.
    type: list
    elements: dict
    suboptions:
      path:
        description: Image file or block device (C(/dev/...)) on the host; absolute. The file is not created.
        type: str
      volume:
        description: A storage volume instead of a path.
        type: dict
        suboptions:
          pool:
            description: Storage pool name.
            type: str
            required: true
          name:
            description: Volume name in the pool.
            type: str
            required: true
      device:
        description: V(disk), or V(cdrom) (read-only; may be empty).
        type: str
        choices: [disk, cdrom]
        default: disk
      bus:
        description: Bus; V(virtio) for disks and V(sata) for CD-ROMs by default.
        type: str
        choices: [virtio, sata, scsi, ide, usb]
      format:
        description:
          - Image format (V(qcow2), V(raw)...). Default V(qcow2) for paths ending in C(.qcow2), else V(raw);
            for volumes the volume's own format.
        type: str
      target:
        description: Device name in the guest (V(vda), V(sdb)...); the first free one for the bus by default.
        type: str
      readonly:
        description: Attach read-only (CD-ROMs always are).
        type: bool
        default: false
  interfaces:
    description:
      - The domain's network interfaces, all of them, in order. An existing interface keeps its MAC address;
        it is recognized by O(interfaces[].mac), then by its network or bridge, then by position.
    type: list
    elements: dict
    suboptions:
      type:
        description: V(network), V(bridge) or V(user) (QEMU user networking, no host setup); implied by
          O(interfaces[].network) and O(interfaces[].bridge).
        type: str
        choices: [network, bridge, user]
      network:
        description: libvirt network name such as V(default).
        type: str
      bridge:
        description: Host bridge name such as V(br0).
        type: str
      model:
        description: NIC model.
        type: str
        default: virtio
      mac:
        description: MAC address; libvirt picks one (and the module keeps it) when unset.
        type: str
  serial_console:
    description: V(true) adds a serial port with a console (C(virsh console)); V(false) removes them.
    type: bool
  serial_log:
    description: Log the serial console to this file on the host (overwritten at each start).
    type: path
  guest_agent:
    description:
      - V(true) adds the QEMU guest agent's channel, C(<channel type="unix"><target type="virtio"
        name="org.qemu.guest_agent.0"/></channel>) (libvirt picks the socket path and adds the virtio-serial
        controller); V(false) removes it. Not given, the channel stays as it is.
      - The guest needs qemu-ga running for C(wait_for=agent) and the C(agent) address source.
      - Changing it on a running domain sets RV(restart_required) with the reason C(guest_agent).
    type: bool
    version_added: 1.1.0
  graphics:
    description: Graphical console.
    type: dict
    suboptions:
      type:
        description: V(none) removes graphics.
        type: str
        choices: [none, vnc, spice]
        required: true
      listen:
        description: Address to listen on, such as V(127.0.0.1).
        type: str
      port:
        description: Port; V(-1) picks a free one at start.
        type: int
      password:
        description: Console password; an empty string removes it. Never shown in results or diffs.
        type: str
  tags:
    description:
      - Tags of the domain, kept in its definition's C(<metadata>) under the collection's namespace
        (C(urn:virtops:hypervisor:domain:1)); the inventory plugin P(virtops.hypervisor.libvirt#inventory)
        makes groups of them and M(virtops.hypervisor.libvirt_domain_info) returns them.
      - The complete list (sorted, duplicates dropped); V([]) removes all tags. Not given, the tags stay as
        they are.
      - Combines with O(xml) and the structured options, and alone changes an existing domain. A full O(xml)
        without the virtops element keeps the tags the domain has.
      - Tags are no setting the guest boots with; a running domain gets them at once (live and in its
        definition), without RV(restart_required).
    type: list
    elements: str
    version_added: 1.1.0
  metadata:
    description:
      - Key/value pairs kept with O(tags) in the domain's C(<metadata>) (C(<virtops:meta name="role">db</virtops:meta>)).
        Values are strings (numbers are written as strings, surrounding spaces dropped).
      - The complete set; V({}) removes all. Not given, the metadata stays as it is. Compared, applied and
        shown like O(tags). Elements of other namespaces in C(<metadata>) (libosinfo's...) are kept.
    type: dict
    version_added: 1.1.0
  cloud_init:
    description:
      - Give the domain a cloud-init NoCloud seed, an ISO 9660 image labelled C(cidata) holding C(meta-data),
        C(user-data) and, when given, C(network-config) and C(vendor-data), attached as a read-only CD-ROM
        (SATA on q35 machines, IDE on the i440fx C(pc) machines). The image is built by the module in Python;
        the target needs no genisoimage, xorriso or PyYAML.
      - The seed is reproducible (fixed timestamps, sorted files); the same data gives the same bytes, and the
        stored seed is rebuilt only when its bytes differ, so a rerun is a no-op.
      - Where it is kept, in this order; a raw volume C(<name>-cidata.iso) in O(cloud_init.pool); else in the
        storage pool of the domain's first disk; else, when the first disk is a file no pool holds (and the
        connection is local), a file C(<name>-cidata.iso) beside it (written atomically, mode 0644).
      - cloud-init reads the seed when the guest boots. The definition records the seed's digest
        (C(<virtops:cloud-init seed="sha256:<hex>"/>) in the virtops element of C(<metadata>), not part of
        O(metadata)); the running guest keeps the digest it booted with. While they differ, every run sets
        RV(restart_required) with the reason C(cloud_init), also after the run that rewrote the seed;
        O(apply=restart) restarts the guest. A domain whose seed was written before the digest was recorded
        gets it in its definition at the next run (action V(update), RV(differences) V([cloud_init])), without
        RV(restart_required) unless the seed changes.
      - The seed is one of the domain's disks. A task whose O(disks) list it is not in (without O(cloud_init))
        detaches it; its volume or file stays until O(state=absent) with O(remove_storage=true), which deletes it.
      - In diff mode the seed's C(meta-data) and C(network-config) are shown as written, C(user-data) and
        C(vendor-data) only as C(sha256:<hex>). The module never returns user or vendor data.
      - O(cloud_init.user_data) and O(cloud_init.vendor_data) are C(no_log) (hidden from the target's log). Their
        invocation in the task result shows C(sha256:<hex>) of the written file instead, and the whole documents
        are masked if they ever occurred in the result. Unlike Ansible's plain C(no_log) on a dict, the single
        strings in them (a user name V(ops)) are not masked elsewhere in the result.
      - Structured data is written as JSON, which cloud-init reads as the YAML it is.
    type: dict
    version_added: 1.1.0
    suboptions:
      user_data:
        description:
          - The user data. A dict is written as C(#cloud-config) followed by the dict (sorted keys); a string is
            written as given (a C(#cloud-config) document, a shell script, MIME multi-part).
          - Default an empty C(#cloud-config).
        type: raw
      meta_data:
        description:
          - The meta data. C(local-hostname) defaults to the domain name.
          - C(instance-id) defaults to the domain name and the first 12 hex digits of a SHA-256 over the other
            seed content (V(web1-3f9a0c2b7d1e)). A guest booting a seed with a new instance id runs cloud-init's
            per-instance modules again (users, SSH keys, and SSH host keys, which are regenerated); set
            C(instance-id) here to keep it across changes of the data.
        type: dict
      network_config:
        description:
          - Network configuration (version 1 or 2; a dict is checked for C(version)), written as
            C(network-config). Left out of the seed when not given (cloud-init then configures DHCP on the
            first interface).
        type: raw
      vendor_data:
        description: Vendor data, written as C(vendor-data) like O(cloud_init.user_data).
        type: raw
      pool:
        description:
          - Storage pool (active) for the seed volume. Default the pool of the first disk.
          - Needed when the first disk is a block device or a file of no pool on a remote connection, or when
            the domain has no disk.
        type: str
  clone_from:
    description:
      - Make the domain, when it does not exist, as a clone of another one. The clone gets the source's definition
        with a new UUID, new MAC addresses, its own copy of each disk and its own NVRAM file; the structured options
        of the same task (or item) apply on top. Mutually exclusive with O(xml) and O(disks).
      - A clone is made once. When the domain O(name) exists, O(clone_from) is ignored (even if the source changed or
        is gone) and the other options converge as usual.
      - The source must be shut off (not running, paused or saved) when the call starts; otherwise the call fails
        before anything changes.
      - Each disk of the source becomes a volume C(<name>-<target>.<format>) in O(clone_from.pool)
        (V(web2-vda.qcow2); the format is the source disk's, V(qcow2) for linked clones). Disks the source uses
        read-only or shareable, CD-ROMs and floppies are shared, not copied.
      - A disk must be a volume of an active storage pool (a file in a dir pool, a logical volume...); a file
        or block device outside every pool, and network disks, are refused.
      - The NVRAM file of a UEFI guest is copied to C(<name>_VARS.fd) next to the source's (libvirt's own
        naming). This needs the module to run on the hypervisor (a URI without a host).
      - A volume or NVRAM file the clone would create that already exists fails the call before anything changes.
        When a step fails, what the clone had created is removed again.
    type: dict
    version_added: 1.1.0
    suboptions:
      name:
        description: The domain to clone.
        type: str
        required: true
      linked:
        description:
          - V(false) copies each disk into a standalone volume of the source disk's format (a qcow2 chain is
            flattened).
          - V(true) makes each disk a qcow2 overlay whose backing file is the source's disk, which is instant and
            small, but the source's disks must never change afterwards (keep the source as a template, shut off);
            while a linked clone runs, QEMU's image locking keeps the source from starting.
        type: bool
        default: false
      pool:
        description:
          - Storage pool for the clone's volumes; of type V(dir), V(fs) or V(netfs) and active. Default the pool of
            the source's first copied disk.
        type: str
"""
