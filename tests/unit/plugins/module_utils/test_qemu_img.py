# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_qemu_img: sizes as qemu-img reads and rounds them, its options, and its output (captured from QEMU 7.2)."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize('fmt,asked,created', [
    # Measured with qemu-img 7.2: `qemu-img create -f <fmt> x <asked>`, then the virtual size `qemu-img info` reports.
    ('qcow2', 33554432, 33554432), ('qcow2', 34000001, 34000384), ('raw', 1000000, 1000448),
    ('vdi', 34000001, 34000384), ('vmdk', 34000001, 34000384), ('vhdx', 1000000, 1000448),
    ('vpc', 33554432, 33562624), ('vpc', 34000001, 34015232), ('vpc', 1000000, 1009664),
    ('vpc', 10737418240, 10737893376),
])
def test_created_size_is_what_qemu_img_makes_of_the_size_asked(fmt, asked, created):
    assert q.created_size(fmt, asked) == created


def test_created_size_of_a_vhd_with_force_size_is_whole_sectors():
    assert q.created_size('vpc', 34000001, {'force_size': True}) == 34000384
    assert q.created_size('vpc', 33554432, {'force_size': 'on'}) == 33554432
    assert q.whole_sectors(512) == 512 and q.whole_sectors(513) == 1024


def test_only_qcow2_and_raw_can_be_resized():
    assert q.RESIZABLE_FORMATS == ('qcow2', 'raw')
    assert set(q.FORMATS) - set(q.RESIZABLE_FORMATS) == {'vdi', 'vmdk', 'vpc', 'vhdx'}
