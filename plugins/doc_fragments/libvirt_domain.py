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
      - With O(state=absent), also delete the domain's disk images (files and storage volumes, not CD-ROMs and
        not block devices). A disk another domain also uses, or that another domain's disk stands on (the
        base of a linked clone, anywhere in its backing chain), is kept and listed in RV(kept_storage).
      - Default V(false).
    type: bool
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
