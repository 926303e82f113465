# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny disk that boots by itself (BIOS): the test guest's kernel and busybox initramfs (scripts/build-guest.sh)
behind GRUB, for tests that move a VM with its disk (an OVA) and must see it boot from that disk.

GRUB is borrowed from the cloud image (scripts/build-cloud-image.sh): its first MiB (the MBR's boot code and the
core image grub-install embedded after it) and its /boot/grub/i386-pc modules. The core image finds its
/boot/grub on the first partition, by the file system UUID, so the new 32 MiB disk keeps the partition's start
and the UUID: mkfs.ext4 -d fills a new file system (no mount, no loop device), and the partition's length in the
MBR is rewritten. The guest prints virtops-guest: ready on ttyS0 about 8 s after QEMU starts (TCG).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

DISK_MIB = 32
GRUB_CFG = """set timeout=0
serial --unit=0 --speed=115200
terminal_output serial
linux /boot/vmlinuz console=ttyS0 no_timer_check
initrd /boot/initrd.img
boot
"""


def _run(argv):
    proc = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError('%s failed (rc %d): %s' % (argv[0], proc.returncode, proc.stderr[-2000:]))
    return proc.stdout


def build_boot_disk(cloud_image, guest_dir, dest):
    """Write the raw boot disk to dest from the cloud image (qcow2) and the guest's vmlinuz and initrd.img."""
    work = Path(tempfile.mkdtemp(prefix='virtops-boot-disk.'))
    try:
        raw = work / 'cloud.raw'
        _run(['qemu-img', 'convert', '-O', 'raw', cloud_image, raw])
        table = json.loads(_run(['sfdisk', '-J', raw]))['partitiontable']
        start = table['partitions'][0]['start']
        part = work / 'part.img'
        _run(['dd', 'if=%s' % raw, 'of=%s' % part, 'bs=512', 'skip=%d' % start,
              'count=%d' % table['partitions'][0]['size'], 'conv=sparse', 'status=none'])
        uuid = _run(['blkid', '-p', '-s', 'UUID', '-o', 'value', part]).strip()
        root = work / 'root'
        (root / 'boot' / 'grub').mkdir(parents=True)
        _run(['debugfs', '-R', 'rdump /boot/grub/i386-pc %s' % (root / 'boot' / 'grub'), part])
        (root / 'boot' / 'grub' / 'grub.cfg').write_text(GRUB_CFG)
        for name in ('vmlinuz', 'initrd.img'):
            shutil.copy(str(Path(guest_dir) / name), str(root / 'boot' / name))
        sectors = DISK_MIB * 2048 - start
        small = work / 'small.img'
        with open(str(small), 'wb') as handle:
            handle.truncate(sectors * 512)
        _run(['mkfs.ext4', '-q', '-F', '-U', uuid, '-d', root, small])
        with open(str(raw), 'rb') as source, open(str(dest), 'wb') as out:
            head = bytearray(source.read(start * 512))
            head[446 + 12:446 + 16] = struct.pack('<I', sectors)
            out.write(head)
            with open(str(small), 'rb') as fs:
                shutil.copyfileobj(fs, out)
    finally:
        shutil.rmtree(str(work), ignore_errors=True)
    return Path(dest)
