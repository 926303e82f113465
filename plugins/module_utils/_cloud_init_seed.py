# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A cloud-init NoCloud seed: the files, and the ISO 9660 image holding them, in pure Python.

cloud-init's NoCloud data source looks for a filesystem labelled ``cidata`` (iso9660 or vfat) with
``meta-data``, ``user-data`` and optionally ``network-config`` and ``vendor-data`` in its root, the
layout ``genisoimage -volid cidata -joliet`` writes. Targets need neither genisoimage nor PyYAML:

* Structured data is written as JSON (sorted keys, two-space indent). JSON is YAML, which is how
  cloud-init reads every seed file; user data and vendor data given as a dict are prefixed with
  ``#cloud-config``.
* The image is written here: a primary volume descriptor with 8.3 names, a Joliet supplementary
  descriptor with the exact names (Linux shows those), one root directory, the files. Every
  timestamp is a constant and the files are sorted, so equal input gives byte-identical images:
  a seed is compared by its bytes, and a rerun is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import struct

SECTOR = 2048
VOLUME_ID = 'cidata'
FILE_NAMES = ('meta-data', 'user-data', 'network-config', 'vendor-data')
CLOUD_CONFIG_HEADER = '#cloud-config\n'

# 2000-01-01 00:00:00 UTC everywhere a date goes: the image must not depend on the clock.
_RECORD_DATE = bytes((100, 1, 1, 0, 0, 0, 0))
_VOLUME_DATE = b'2000010100000000\x00'
_UNSET_DATE = b'0000000000000000\x00'
_SYSTEM_AREA_SECTORS = 16
_APPLICATION = 'VIRTOPS.HYPERVISOR LIBVIRT_DOMAIN CLOUD_INIT'


# --- seed files --------------------------------------------------------------------------------

def document(value, cloud_config=False):
    """Bytes of a seed file: a string as given, structured data as JSON (optionally #cloud-config)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode('utf-8')
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + '\n'
    return ((CLOUD_CONFIG_HEADER if cloud_config else '') + text).encode('utf-8')


def seed_files(meta_data, user_data, network_config=None, vendor_data=None):
    """{name: bytes} of a NoCloud seed; network_config and vendor_data only when given."""
    files = {
        'meta-data': document(meta_data),
        'user-data': document(user_data if user_data is not None else {}, cloud_config=True),
    }
    if network_config is not None:
        files['network-config'] = document(network_config)
    if vendor_data is not None:
        files['vendor-data'] = document(vendor_data, cloud_config=True)
    return files


def digest(data):
    return 'sha256:' + hashlib.sha256(data).hexdigest()


# --- ISO 9660 ----------------------------------------------------------------------------------

def build_iso(files, volume_id=VOLUME_ID):
    """An ISO 9660 image with Joliet names of {name: bytes}, all in the root directory.

    Layout (sectors): 0-15 system area, 16 primary and 17 Joliet volume descriptor, 18 terminator,
    19-22 path tables (primary L and M, Joliet L and M), 23 primary and 24 Joliet root directory,
    then each file from a sector of its own.
    """
    names = sorted(files)
    _check_names(names)
    first_file = 25
    extents = []
    position = first_file
    for name in names:
        extents.append(position)
        position += _sectors(len(files[name]))
    total = position
    short_names = [_short_name(name) for name in names]
    entries = list(zip(names, short_names, extents))
    primary_root = _directory(23, [(short.encode('ascii'), extent, len(files[name]))
                                   for name, short, extent in sorted(entries, key=lambda entry: entry[1])])
    joliet_root = _directory(24, [(name.encode('utf-16-be'), extent, len(files[name]))
                                  for name, short, extent in entries])
    image = bytearray(SECTOR * _SYSTEM_AREA_SECTORS)
    image += _volume_descriptor(1, volume_id, total, (19, 20), _root_record(23))
    image += _volume_descriptor(2, volume_id, total, (21, 22), _root_record(24))
    image += _terminator()
    for root_sector in (23, 24):
        image += _pad(_path_table(root_sector, '<'))
        image += _pad(_path_table(root_sector, '>'))
    image += primary_root + joliet_root
    for name in names:
        image += _pad(files[name])
    return bytes(image)


def _check_names(names):
    if not names or len(names) > 16:
        raise ValueError('a seed holds 1 to 16 files, not %d' % len(names))
    shorts = [_short_name(name) for name in names]
    if len(set(shorts)) != len(shorts):
        raise ValueError('file names %s collide in 8.3 form' % ', '.join(names))
    for name in names:
        if not name or len(name) > 64 or '/' in name or ';' in name:
            raise ValueError('%r is not a file name for a seed' % name)


def _short_name(name):
    """The primary descriptor's 8.3 name (d-characters); readers that know Joliet show the real one."""
    stem, _dot, ext = name.upper().partition('.')
    clean = ''.join(char if char.isalnum() and char.isascii() else '_' for char in stem)[:8]
    ext = ''.join(char if char.isalnum() and char.isascii() else '_' for char in ext)[:3]
    return '%s.%s;1' % (clean, ext)


def _sectors(size):
    return (size + SECTOR - 1) // SECTOR


def _pad(data):
    return bytes(data) + bytes(-len(data) % SECTOR)


def _both16(value):
    return struct.pack('<H', value) + struct.pack('>H', value)


def _both32(value):
    return struct.pack('<I', value) + struct.pack('>I', value)


def _record(identifier, extent, size, is_directory):
    length = 33 + len(identifier) + (1 - len(identifier) % 2)
    return (struct.pack('BB', length, 0) + _both32(extent) + _both32(size) + _RECORD_DATE
            + struct.pack('BBB', 2 if is_directory else 0, 0, 0) + _both16(1)
            + struct.pack('B', len(identifier)) + identifier + bytes(1 - len(identifier) % 2))


def _root_record(sector):
    return _record(b'\x00', sector, SECTOR, True)


def _directory(sector, files):
    """One sector: '.', '..' (both the root itself) and the file records, in the order given."""
    data = _record(b'\x00', sector, SECTOR, True) + _record(b'\x01', sector, SECTOR, True)
    for identifier, extent, size in files:
        data += _record(identifier, extent, size, False)
    if len(data) > SECTOR:
        raise ValueError('seed directory does not fit one sector')
    return _pad(data)


def _path_table(root_sector, order):
    """The path table of a volume with only a root directory, little ('<') or big ('>') endian."""
    return struct.pack(order + 'BBIH', 1, 0, root_sector, 1) + b'\x00\x00'


def _text(value, size, joliet):
    if joliet:
        encoded = value.encode('utf-16-be')[:size - size % 2]
        return encoded + ' '.encode('utf-16-be') * ((size - len(encoded)) // 2) + bytes(size % 2)
    return value.encode('ascii')[:size].ljust(size, b' ')


def _volume_descriptor(kind, volume_id, total_sectors, path_tables, root_record):
    """Primary (kind 1) or Joliet supplementary (kind 2) volume descriptor."""
    joliet = kind == 2
    escape = b'%/E' if joliet else b''  # UCS-2 level 3
    path_table_size = 10
    data = (struct.pack('B', kind) + b'CD001\x01\x00' + _text('', 32, joliet) + _text(volume_id, 32, joliet)
            + bytes(8) + _both32(total_sectors) + escape.ljust(32, b'\x00') + _both16(1) + _both16(1)
            + _both16(SECTOR) + _both32(path_table_size) + struct.pack('<I', path_tables[0]) + bytes(4)
            + struct.pack('>I', path_tables[1]) + bytes(4) + root_record
            + _text('', 128, joliet) + _text('', 128, joliet) + _text('', 128, joliet)
            + _text(_APPLICATION, 128, joliet) + _text('', 37, joliet) * 3
            + _VOLUME_DATE + _VOLUME_DATE + _UNSET_DATE + _VOLUME_DATE + b'\x01\x00')
    return _pad(data)


def _terminator():
    return _pad(b'\xffCD001\x01')


def read_iso(image):
    """{name: bytes} of the files in the root directory of an ISO 9660 image (Joliet names when it has
    them), or None when image is not one. Enough to show what an existing seed holds."""
    try:
        descriptors = [image[SECTOR * sector:SECTOR * (sector + 1)] for sector in range(16, 32)]
        primary = next(vd for vd in descriptors if vd[:6] == b'\x01CD001')
        joliet = next((vd for vd in descriptors if vd[:6] == b'\x02CD001' and vd[88:90] == b'%/'), None)
        root = (joliet or primary)[156:190]
        extent, size = struct.unpack('<I', root[2:6])[0], struct.unpack('<I', root[10:14])[0]
        directory = image[SECTOR * extent:SECTOR * extent + size]
        files = {}
        offset = 0
        while offset < len(directory):
            length = directory[offset]
            if length == 0:  # records do not cross sectors: the rest of this one is padding
                offset = (offset // SECTOR + 1) * SECTOR
                continue
            record = directory[offset:offset + length]
            offset += length
            identifier = record[33:33 + record[32]]
            if record[25] & 2 or identifier in (b'\x00', b'\x01'):
                continue
            name = identifier.decode('utf-16-be') if joliet else identifier.decode('ascii').lower()
            start, length = struct.unpack('<I', record[2:6])[0], struct.unpack('<I', record[10:14])[0]
            files[name.split(';')[0].rstrip('.')] = bytes(image[SECTOR * start:SECTOR * start + length])
        return files
    except (StopIteration, struct.error, IndexError, UnicodeDecodeError):
        return None


def build_seed(meta_data, user_data, network_config=None, vendor_data=None):
    """The seed image bytes and the files in it."""
    files = seed_files(meta_data, user_data, network_config, vendor_data)
    return build_iso(files), files
