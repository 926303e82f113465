# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of _qemu_img: sizes, qemu-img output, fingerprint decisions, temporary file names."""

from __future__ import annotations

import errno
import json
import os
from types import SimpleNamespace

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _qemu_img as q

# `qemu-img info --output=json --backing-chain o.qcow2` (QEMU 7.2): an overlay on an image with a snapshot.
INFO_CHAIN = """[
    {
        "backing-filename-format": "qcow2",
        "virtual-size": 33554432,
        "filename": "/images/o.qcow2",
        "cluster-size": 65536,
        "format": "qcow2",
        "actual-size": 200704,
        "format-specific": {
            "type": "qcow2",
            "data": {"compat": "1.1", "compression-type": "zlib", "lazy-refcounts": false, "refcount-bits": 16,
                     "corrupt": false, "extended-l2": false}
        },
        "full-backing-filename": "/images/b.qcow2",
        "backing-filename": "b.qcow2",
        "dirty-flag": false
    },
    {
        "snapshots": [
            {"icount": 0, "vm-clock-nsec": 0, "name": "snap1", "date-sec": 1795496765, "date-nsec": 63318000,
             "vm-clock-sec": 0, "id": "1", "vm-state-size": 0}
        ],
        "virtual-size": 33554432,
        "filename": "/images/b.qcow2",
        "cluster-size": 65536,
        "format": "qcow2",
        "actual-size": 8663040,
        "format-specific": {
            "type": "qcow2",
            "data": {"compat": "1.1", "compression-type": "zlib", "lazy-refcounts": false, "refcount-bits": 16,
                     "corrupt": false, "extended-l2": false}
        },
        "dirty-flag": false
    }
]"""

# `qemu-img info --output=json o.vmdk` of a streamOptimized vmdk.
INFO_VMDK = """{
    "virtual-size": 33554432, "filename": "o.vmdk", "cluster-size": 65536, "format": "vmdk",
    "actual-size": 8470528,
    "format-specific": {"type": "vmdk", "data": {"cid": 2417709036, "parent-cid": 4294967295,
        "create-type": "streamOptimized", "extents": [{"compressed": true, "virtual-size": 33554432,
        "filename": "o.vmdk", "cluster-size": 65536, "format": ""}]}},
    "dirty-flag": false
}"""

# `qemu-img check --output=json o.qcow2`
CHECK_OK = """{"image-end-offset": 262144, "total-clusters": 512, "check-errors": 0, "filename": "o.qcow2",
"format": "qcow2"}"""


@pytest.mark.parametrize('value,expected', [
    (1073741824, 1073741824), ('1073741824', 1073741824), ('512M', 512 << 20), ('10G', 10 << 30),
    ('10g', 10 << 30), ('64k', 65536), ('1.5G', 3 << 29), ('2T', 2 << 40), ('4096b', 4096), (' 1 G ', 1 << 30),
])
def test_parse_size(value, expected):
    assert q.parse_size(value) == expected


@pytest.mark.parametrize('value,message', [
    ('10X', 'is not a size'), ('ten', 'is not a size'), ('1.5', 'fraction of a byte'), ('0', 'more than 0'),
    (True, 'must be a size'), ('-1G', 'is not a size'), ('1.3K', 'whole number of bytes'), ('10 GB', 'is not a size'),
])
def test_parse_size_rejects(value, message):
    with pytest.raises(q.ImageFailure, match=message):
        q.parse_size(value)


def test_parse_size_none():
    assert q.parse_size(None) is None


@pytest.mark.parametrize('size,text', [(1 << 30, '1 GiB'), (33562624, '32.01 MiB'), (512, '512 bytes'),
                                       (None, 'unknown'), (1536, '1.5 KiB')])
def test_human_size(size, text):
    assert q.human_size(size) == text


def test_option_string_sorts_escapes_and_writes_booleans():
    assert q.option_string({'subformat': 'fixed', 'force_size': True, 'lazy_refcounts': False}) == \
        'force_size=on,lazy_refcounts=off,subformat=fixed'
    assert q.option_string({'backing_file': 'a,b.qcow2'}) == 'backing_file=a,,b.qcow2'
    assert q.option_string({'cluster_size': 65536}) == 'cluster_size=65536'


def test_parse_info_chain():
    top, base = q.parse_info_output(INFO_CHAIN)
    assert top['format'] == 'qcow2' and top['virtual_size'] == 33554432 and top['actual_size'] == 200704
    assert (top['backing_file'], top['full_backing_file'], top['backing_format']) == \
        ('b.qcow2', '/images/b.qcow2', 'qcow2')
    assert (top['cluster_size'], top['dirty'], top['corrupt'], top['encrypted']) == (65536, False, False, False)
    assert top['format_specific']['compat'] == '1.1'
    assert base['backing_file'] is None and base['path'] == '/images/b.qcow2'
    assert base['snapshots'] == [{'id': '1', 'name': 'snap1', 'vm_state_size': 0, 'date_sec': 1795496765,
                                  'vm_clock_sec': 0}]


def test_parse_info_single_vmdk():
    (image,) = q.parse_info_output(INFO_VMDK)
    assert image['format'] == 'vmdk' and image['subformat'] == 'streamOptimized' and image['snapshots'] == []


def test_parse_info_flags():
    data = json.loads(INFO_VMDK)
    data.update({'dirty-flag': True, 'encrypted': True, 'format': 'qcow2',
                 'format-specific': {'type': 'qcow2', 'data': {'corrupt': True}}})
    image = q.parse_info(data)
    assert (image['dirty'], image['encrypted'], image['corrupt']) == (True, True, True)
    assert 'subformat' not in image


@pytest.mark.parametrize('text,rc,result', [
    (CHECK_OK, 0, 'ok'), ('{"leaks": 3, "check-errors": 0}', 3, 'leaks'), ('{"corruptions": 1}', 2, 'corrupt'),
    ('', 63, 'unsupported'), ('', 1, 'error'),
])
def test_parse_check(text, rc, result):
    parsed = q.parse_check(text, rc)
    assert parsed['result'] == result and parsed['supported'] is (rc != 63)
    if rc == 0:
        assert (parsed['check_errors'], parsed['corruptions'], parsed['image_end_offset']) == (0, 0, 262144)


def test_clean_error_and_lock_errors():
    text = "qemu-img: Could not open 'a.qcow2': Failed to get shared \"write\" lock\nIs another process using the image [a.qcow2]?\n"
    assert q.clean_error(text) == ("Could not open 'a.qcow2': Failed to get shared \"write\" lock; Is another process "
                                   "using the image [a.qcow2]?")
    assert q.is_lock_error(text)
    assert q.is_lock_error('qemu-img: Could not open \'a\': Failed to get "write" lock')
    assert not q.is_lock_error('qemu-img: error while writing at byte 0: No space left on device')


def _stat(size=100, mtime_ns=5, ino=7, dev=1):
    return SimpleNamespace(st_size=size, st_mtime_ns=mtime_ns, st_ino=ino, st_dev=dev)


CHAIN = [{'path': '/src/top.qcow2', 'format': 'qcow2', 'virtual_size': 1 << 30},
         {'path': '/src/base.qcow2', 'format': 'qcow2', 'virtual_size': 1 << 30}]
RECIPE = {'src': '/src/top.qcow2', 'format': 'vdi', 'compress': False, 'options': {}, 'size': None}


def stored_for(source, recipe=None, virtual_size=1 << 30):
    return {'version': q.FINGERPRINT_VERSION, 'recipe': dict(recipe or RECIPE), 'source': source,
            'virtual_size': virtual_size}


def test_fingerprint_matches_when_nothing_changed():
    source = q.source_fingerprint(CHAIN, [_stat(), _stat(ino=8)])
    assert source[1] == {'path': '/src/base.qcow2', 'size': 100, 'mtime_ns': 5, 'inode': 8, 'device': 1,
                         'format': 'qcow2', 'virtual_size': 1 << 30}
    assert q.fingerprint_differences(stored_for(source), RECIPE, source, 1 << 30) == []
    # What comes back from JSON is the same
    assert q.fingerprint_differences(json.loads(json.dumps(stored_for(source))), RECIPE, source, 1 << 30) == []


@pytest.mark.parametrize('change,expected', [
    ({'mtime_ns': 6}, 'source /src/base.qcow2 changed since the last conversion (mtime_ns)'),
    ({'size': 101, 'ino': 9}, 'source /src/base.qcow2 changed since the last conversion (size, inode)'),
])
def test_fingerprint_sees_a_changed_backing_file(change, expected):
    old = q.source_fingerprint(CHAIN, [_stat(), _stat()])
    new = q.source_fingerprint(CHAIN, [_stat(), _stat(**change)])
    assert q.fingerprint_differences(stored_for(old), RECIPE, new, 1 << 30) == [expected]


def test_fingerprint_missing_foreign_and_changed_settings():
    source = q.source_fingerprint(CHAIN[:1], [_stat()])
    assert q.fingerprint_differences(None, RECIPE, source, 1) == \
        ['no record of a conversion from this source (no fingerprint)']
    assert q.fingerprint_differences({'version': 0}, RECIPE, source, 1) == \
        ['the fingerprint was not written by this module version']
    assert q.fingerprint_differences(['not', 'a', 'dict'], RECIPE, source, 1) == \
        ['the fingerprint was not written by this module version']
    other = dict(RECIPE, compress=True)
    assert q.fingerprint_differences(stored_for(source), other, source, 1 << 30) == \
        ['converted with compress false, asked for true']
    assert q.fingerprint_differences(stored_for(source), RECIPE, source, 2 << 30) == \
        ['the destination was resized since the conversion (2 GiB, converted as 1 GiB)']
    longer = q.source_fingerprint(CHAIN, [_stat(), _stat()])
    assert q.fingerprint_differences(stored_for(source), RECIPE, longer, 1 << 30) == \
        ['the source backing chain changed']


def test_temp_pattern_matches_only_this_targets_temporary_files():
    pattern = q.temp_pattern('disk.vdi')
    assert pattern.match('.disk.vdi.k2j4x9_b.qemu_image.tmp')
    for other in ('.disk.vdi.k2j4x9_b.tmp', '.disk.vdix.k2j4x9ab.qemu_image.tmp', 'disk.vdi.k2j4x9ab.qemu_image.tmp',
                  '.disk.vdi.k2j4.qemu_image.tmp', '.other.vdi.k2j4x9ab.qemu_image.tmp', '.disk.vdi.qemu_image.json'):
        assert not pattern.match(other), other


def test_stale_temp_files_skips_files_a_running_module_holds(tmp_path):
    target = str(tmp_path / 'disk.qcow2')
    (tmp_path / '.disk.qcow2.aaaaaaaa.qemu_image.tmp').write_text('left by a killed run')
    (tmp_path / '.disk.qcow2.bbbbbbbb.tmp').write_text('not ours')
    with q.TempImage(target) as tmp:
        found = q.stale_temp_files(target)  # the same process: its own lock does not count, the name does
        assert str(tmp_path / '.disk.qcow2.aaaaaaaa.qemu_image.tmp') in found
        assert os.path.basename(tmp.name).startswith('.disk.qcow2.')
    assert not os.path.exists(tmp.name)
    assert q.stale_temp_files(target) == [str(tmp_path / '.disk.qcow2.aaaaaaaa.qemu_image.tmp')]


def test_fingerprint_round_trip_in_an_xattr(tmp_path):
    image = tmp_path / 'disk.vdi'
    image.write_bytes(b'x')
    assert q.read_fingerprint(str(image)) is None
    assert q.store_fingerprint(str(image), str(image), {'version': 1, 'a': [1, 2]}) == 'xattr'
    assert q.read_fingerprint(str(image)) == {'version': 1, 'a': [1, 2]}


def test_fingerprint_sidecar_when_the_file_system_has_no_user_xattrs(tmp_path, monkeypatch):
    def no_xattrs(*_args):
        raise OSError(errno.EOPNOTSUPP, 'Operation not supported')
    monkeypatch.setattr(os, 'setxattr', no_xattrs)
    monkeypatch.setattr(os, 'getxattr', no_xattrs)
    tmp = tmp_path / '.disk.vdi.abcdefgh.qemu_image.tmp'
    tmp.write_bytes(b'x')
    image = tmp_path / 'disk.vdi'
    assert q.store_fingerprint(str(tmp), str(image), {'version': 1}) == 'sidecar'
    assert (tmp_path / '.disk.vdi.qemu_image.json').exists()
    os.rename(str(tmp), str(image))
    assert q.read_fingerprint(str(image)) == {'version': 1}
    # Another file renamed to the path (another inode): the sidecar is not its fingerprint.
    other = tmp_path / 'other'
    other.write_bytes(b'y')
    os.rename(str(other), str(image))
    assert q.read_fingerprint(str(image)) is None
