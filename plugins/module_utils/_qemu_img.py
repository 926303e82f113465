# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""qemu-img itself: the runner (argv lists through module.run_command) and the parsers of its output.

Also what the modules know about qemu-img's formats and the pure helpers for its sizes, ``-o`` options
and error messages. No file is written here: the temporary files, locks and fingerprints are in
``_image_files``, the decisions in ``_image_manager``.
"""

from __future__ import annotations

import json
import os
import re

from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure

FORMATS = ('qcow2', 'raw', 'vdi', 'vmdk', 'vpc', 'vhdx')
# vmdk subformats that keep the image in one file (the others write extent files named after it).
VMDK_SINGLE_FILE = ('monolithicSparse', 'streamOptimized')
# The formats `qemu-img resize` can change, grow and (with --shrink) shrink. Measured with qemu-img 7.2: vdi (dynamic
# and static), vmdk (monolithicSparse, streamOptimized), vpc (dynamic, fixed) and vhdx (dynamic, fixed) all fail
# with "Image format driver does not support resize", growing or shrinking, and leave the file as it was.
RESIZABLE_FORMATS = ('qcow2', 'raw')
LOCK_ERROR = re.compile(r'Failed to get (?:shared )?"?(?:write|read|consistent read)"? lock', re.I)
SIZE_UNITS = {'': 1, 'b': 1, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30, 't': 1 << 40, 'p': 1 << 50, 'e': 1 << 60}
SECTOR = 512
# VHD's largest CHS geometry (cylinders x heads x sectors per track), as qemu's vpc driver has it.
VHD_MAX_GEOMETRY = 65535 * 16 * 255
SIZE_PATTERN = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([bkmgtpe]?)\s*$', re.I)


class ImageFailure(ModuleFailure):
    """Something about an image failed; the message names the image and what to do."""


# --- sizes, options, messages ----------------------------------------------------------------

def parse_size(value, what='size'):
    """Bytes from an int or a qemu-img size string: 1073741824, '512M', '10G', '1.5G' (1024-based, like qemu-img)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ImageFailure('%s must be a size such as 10G, 512M or a number of bytes, not %r' % (what, value))
    if isinstance(value, int):
        number, unit = value, ''
    else:
        match = SIZE_PATTERN.match(to_text(value))
        if not match:
            raise ImageFailure("%s '%s' is not a size: use a number of bytes or a number with one of the suffixes "
                               "K, M, G, T, P, E (powers of 1024), such as 10G or 512M" % (what, value))
        number, unit = match.group(1), match.group(2).lower()
        if '.' in number and not unit:
            raise ImageFailure("%s '%s' is a fraction of a byte: use a whole number of bytes or a suffix" % (what, value))
    if '.' in str(number):
        whole, fraction = str(number).split('.')
        scaled = int(whole) * SIZE_UNITS[unit] + int(fraction) * SIZE_UNITS[unit] // (10 ** len(fraction))
        if int(fraction) * SIZE_UNITS[unit] % (10 ** len(fraction)):
            raise ImageFailure("%s '%s' is not a whole number of bytes" % (what, value))
        result = scaled
    else:
        result = int(number) * SIZE_UNITS[unit]
    if result <= 0:
        raise ImageFailure('%s must be more than 0 bytes, not %r' % (what, value))
    return result


def created_size(fmt, size, options=None):
    """The virtual size qemu-img create (and resize) gives an image asked to have size bytes.

    Every format rounds up to whole 512-byte sectors; vpc (VHD) rounds up to its disk geometry
    (cylinders x heads x sectors) unless created with force_size. Measured with qemu-img 7.2.
    """
    sectors = whole_sectors(size) // SECTOR
    if fmt != 'vpc' or _is_on((options or {}).get('force_size')):
        return sectors * SECTOR
    total = min(VHD_MAX_GEOMETRY, sectors)
    cylinders = heads = per_track = 0
    extra = 0
    while total > cylinders * heads * per_track:
        cylinders, heads, per_track = _vhd_geometry(total + extra)
        extra += 1
    if cylinders * heads * per_track == VHD_MAX_GEOMETRY:
        return sectors * SECTOR
    return cylinders * heads * per_track * SECTOR


def whole_sectors(size):
    """size rounded up to whole 512-byte sectors, as qemu-img rounds sizes (qcow2 resize refuses others)."""
    return -(-size // SECTOR) * SECTOR


def _is_on(value):
    return value is True or to_text(value).lower() in ('on', 'true', 'yes', '1')


def _vhd_geometry(total):
    """qemu's calculate_geometry (block/vpc.c, after the VHD specification): (cylinders, heads, sectors per track)."""
    total = min(total, VHD_MAX_GEOMETRY)
    if total >= 65535 * 16 * 63:
        per_track, heads = 255, 16
        cylinders_times_heads = total // per_track
    else:
        per_track = 17
        cylinders_times_heads = total // per_track
        heads = max(4, -(-cylinders_times_heads // 1024))
        if cylinders_times_heads >= heads * 1024 or heads > 16:
            per_track, heads = 31, 16
            cylinders_times_heads = total // per_track
        if cylinders_times_heads >= heads * 1024:
            per_track, heads = 63, 16
            cylinders_times_heads = total // per_track
    return cylinders_times_heads // heads, heads, per_track


def human_size(size):
    """1073741824 -> '1 GiB', 33562624 -> '32.01 MiB' (for messages)."""
    if size is None:
        return 'unknown'
    for unit, factor in (('EiB', 1 << 60), ('PiB', 1 << 50), ('TiB', 1 << 40), ('GiB', 1 << 30), ('MiB', 1 << 20),
                         ('KiB', 1 << 10)):
        if size >= factor:
            text = '%.2f' % (float(size) / factor)
            return '%s %s' % (text.rstrip('0').rstrip('.'), unit)
    return '%d bytes' % size


def option_string(options):
    """The -o argument of qemu-img from a dict: sorted key=value pairs, commas in values doubled."""
    parts = []
    for key in sorted(options):
        value = options[key]
        if isinstance(value, bool):
            value = 'on' if value else 'off'
        parts.append('%s=%s' % (key, to_text(value).replace(',', ',,')))
    return ','.join(parts)


def clean_error(text):
    """qemu-img's stderr as one line without the 'qemu-img: ' prefixes."""
    lines = [line.strip() for line in to_text(text).splitlines() if line.strip()]
    lines = [line[len('qemu-img: '):] if line.startswith('qemu-img: ') else line for line in lines]
    return '; '.join(lines)


def is_lock_error(text):
    return bool(LOCK_ERROR.search(to_text(text)))


def parse_info(data):
    """One image of `qemu-img info --output=json` as the modules return it."""
    specific = (data.get('format-specific') or {}).get('data') or {}
    info = {
        'path': data.get('filename'),
        'format': data.get('format'),
        'virtual_size': data.get('virtual-size'),
        'actual_size': data.get('actual-size'),
        'cluster_size': data.get('cluster-size'),
        'backing_file': data.get('backing-filename'),
        'full_backing_file': data.get('full-backing-filename'),
        'backing_format': data.get('backing-filename-format'),
        'dirty': bool(data.get('dirty-flag', False)),
        'corrupt': bool(specific.get('corrupt', False)),
        'encrypted': bool(data.get('encrypted', False)),
        'snapshots': [parse_snapshot(item) for item in data.get('snapshots') or []],
        'format_specific': specific,
    }
    if data.get('format') == 'vmdk':
        info['subformat'] = specific.get('create-type')
    return info


def parse_snapshot(data):
    return {
        'id': data.get('id'),
        'name': data.get('name'),
        'vm_state_size': data.get('vm-state-size'),
        'date_sec': data.get('date-sec'),
        'vm_clock_sec': data.get('vm-clock-sec'),
    }


def parse_info_output(text):
    """`qemu-img info --output=json [--backing-chain]`: a list of images, the image itself first."""
    data = json.loads(text)
    if isinstance(data, dict):
        data = [data]
    return [parse_info(item) for item in data]


def parse_check(text, rc):
    """`qemu-img check --output=json` and its exit code as a dict."""
    result = {'supported': rc != 63, 'rc': rc}
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        data = {}
    result.update({
        'check_errors': data.get('check-errors', 0),
        'corruptions': data.get('corruptions', 0),
        'leaks': data.get('leaks', 0),
        'corruptions_fixed': data.get('corruptions-fixed', 0),
        'leaks_fixed': data.get('leaks-fixed', 0),
        'allocated_clusters': data.get('allocated-clusters'),
        'total_clusters': data.get('total-clusters'),
        'fragmented_clusters': data.get('fragmented-clusters'),
        'image_end_offset': data.get('image-end-offset'),
    })
    result['result'] = {0: 'ok', 2: 'corrupt', 3: 'leaks', 63: 'unsupported'}.get(rc, 'error')
    return result


def member_source(archive, offset, size):
    """A qemu-img filename for the bytes [offset, offset + size) of a file: a disk image stored in a tar archive
    (an OVA) is read in place through the raw driver, its format probed as for a file."""
    return 'json:' + json.dumps({'file': {'driver': 'raw', 'offset': offset, 'size': size,
                                          'file': {'driver': 'file', 'filename': archive}}}, sort_keys=True)


def locked_message(path):
    return ('%s is in use: a running VM (or another qemu process) holds its qemu image lock. Shut the VM down, '
            'or detach the disk, and run again; nothing was changed.' % path)


# --- qemu-img ----------------------------------------------------------------------------------

class QemuImg(object):
    """qemu-img through module.run_command, argv lists only."""

    def __init__(self, module):
        self.module = module
        self.binary = module.get_bin_path('qemu-img', required=False)
        if not self.binary:
            raise ImageFailure('qemu-img was not found on the target: install it (Debian and Ubuntu: qemu-utils; '
                               'EL and Fedora: qemu-img)')

    def run(self, args, callback=None):
        kwargs = {}
        if callback is not None:
            kwargs['before_communicate_callback'] = callback
        rc, out, err = self.module.run_command([self.binary] + args, environ_update={'LC_ALL': 'C'}, **kwargs)
        return rc, out, err

    def info(self, path, fmt=None, chain=False, share=True):
        """The image (chain=True: the image and its backing chain) or None if the path does not exist."""
        if not path.startswith('json:') and not os.path.lexists(to_bytes(path, errors='surrogate_or_strict')):
            return None
        args = ['info', '--output=json']
        if share:
            args.append('-U')
        if chain:
            args.append('--backing-chain')
        if fmt:
            args += ['-f', fmt]
        rc, out, err = self.run(args + [path])
        if rc != 0:
            if is_lock_error(err):
                raise ImageFailure(locked_message(path))
            raise ImageFailure('cannot read image %s: %s' % (path, clean_error(err)))
        images = parse_info_output(out)
        return images if chain else images[0]

    def resize(self, path, fmt, size, shrink=False, preallocation=None):
        """`qemu-img resize` of a qcow2 or raw image (RESIZABLE_FORMATS); the caller has decided it may."""
        argv = ['resize', '-q', '-f', fmt]
        if shrink:
            argv.append('--shrink')
        if preallocation and fmt in RESIZABLE_FORMATS:
            argv.append('--preallocation=%s' % preallocation)
        rc, _out, err = self.run(argv + [path, str(size)])
        if rc != 0:
            text = clean_error(err)
            if is_lock_error(text):
                raise ImageFailure(locked_message(path))
            raise ImageFailure('cannot resize %s (%s) to %s: %s' % (path, fmt, human_size(size), text))

    def check(self, path, fmt):
        rc, out, err = self.run(['check', '--output=json', '-U', '-f', fmt, path])
        result = parse_check(out, rc)
        if rc not in (0, 2, 3, 63):
            result['error'] = clean_error(err)
        return result
