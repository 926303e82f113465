# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_image_files: fingerprint decisions and storage (xattr, sidecar), temporary files and their locks."""

from __future__ import annotations

import errno
import json
import os
from types import SimpleNamespace

import pytest

from ansible_collections.virtops.hypervisor.plugins.module_utils import _image_files as f


def _stat(size=100, mtime_ns=5, ino=7, dev=1):
    return SimpleNamespace(st_size=size, st_mtime_ns=mtime_ns, st_ino=ino, st_dev=dev)


CHAIN = [{'path': '/src/top.qcow2', 'format': 'qcow2', 'virtual_size': 1 << 30},
         {'path': '/src/base.qcow2', 'format': 'qcow2', 'virtual_size': 1 << 30}]
RECIPE = {'src': '/src/top.qcow2', 'format': 'vdi', 'compress': False, 'options': {}, 'size': None}


def stored_for(source, recipe=None, virtual_size=1 << 30):
    return {'version': f.FINGERPRINT_VERSION, 'recipe': dict(recipe or RECIPE), 'source': source,
            'virtual_size': virtual_size}


def test_fingerprint_matches_when_nothing_changed():
    source = f.source_fingerprint(CHAIN, [_stat(), _stat(ino=8)])
    assert source[1] == {'path': '/src/base.qcow2', 'size': 100, 'mtime_ns': 5, 'inode': 8, 'device': 1,
                         'format': 'qcow2', 'virtual_size': 1 << 30}
    assert f.fingerprint_differences(stored_for(source), RECIPE, source, 1 << 30) == []
    # What comes back from JSON is the same
    assert f.fingerprint_differences(json.loads(json.dumps(stored_for(source))), RECIPE, source, 1 << 30) == []


@pytest.mark.parametrize('change,expected', [
    ({'mtime_ns': 6}, 'source /src/base.qcow2 changed since the last conversion (mtime_ns)'),
    ({'size': 101, 'ino': 9}, 'source /src/base.qcow2 changed since the last conversion (size, inode)'),
])
def test_fingerprint_sees_a_changed_backing_file(change, expected):
    old = f.source_fingerprint(CHAIN, [_stat(), _stat()])
    new = f.source_fingerprint(CHAIN, [_stat(), _stat(**change)])
    assert f.fingerprint_differences(stored_for(old), RECIPE, new, 1 << 30) == [expected]


def test_fingerprint_missing_foreign_and_changed_settings():
    source = f.source_fingerprint(CHAIN[:1], [_stat()])
    assert f.fingerprint_differences(None, RECIPE, source, 1) == \
        ['no record of a conversion from this source (no fingerprint)']
    assert f.fingerprint_differences({'version': 0}, RECIPE, source, 1) == \
        ['the fingerprint was not written by this module version']
    assert f.fingerprint_differences(['not', 'a', 'dict'], RECIPE, source, 1) == \
        ['the fingerprint was not written by this module version']
    other = dict(RECIPE, compress=True)
    assert f.fingerprint_differences(stored_for(source), other, source, 1 << 30) == \
        ['converted with compress false, asked for true']
    assert f.fingerprint_differences(stored_for(source), RECIPE, source, 2 << 30) == \
        ['the destination was resized since the conversion (2 GiB, converted as 1 GiB)']
    longer = f.source_fingerprint(CHAIN, [_stat(), _stat()])
    assert f.fingerprint_differences(stored_for(source), RECIPE, longer, 1 << 30) == \
        ['the source backing chain changed']


def test_temp_pattern_matches_only_this_targets_temporary_files():
    pattern = f.temp_pattern('disk.vdi')
    assert pattern.match('.disk.vdi.k2j4x9_b.qemu_image.tmp')
    for other in ('.disk.vdi.k2j4x9_b.tmp', '.disk.vdix.k2j4x9ab.qemu_image.tmp', 'disk.vdi.k2j4x9ab.qemu_image.tmp',
                  '.disk.vdi.k2j4.qemu_image.tmp', '.other.vdi.k2j4x9ab.qemu_image.tmp', '.disk.vdi.qemu_image.json'):
        assert not pattern.match(other), other


def test_stale_temp_files_skips_files_a_running_module_holds(tmp_path):
    target = str(tmp_path / 'disk.qcow2')
    (tmp_path / '.disk.qcow2.aaaaaaaa.qemu_image.tmp').write_text('left by a killed run')
    (tmp_path / '.disk.qcow2.bbbbbbbb.tmp').write_text('not ours')
    with f.TempImage(target) as tmp:
        found = f.stale_temp_files(target)  # the same process: its own lock does not count, the name does
        assert str(tmp_path / '.disk.qcow2.aaaaaaaa.qemu_image.tmp') in found
        assert os.path.basename(tmp.name).startswith('.disk.qcow2.')
    assert not os.path.exists(tmp.name)
    assert f.stale_temp_files(target) == [str(tmp_path / '.disk.qcow2.aaaaaaaa.qemu_image.tmp')]


def test_fingerprint_round_trip_in_an_xattr(tmp_path):
    image = tmp_path / 'disk.vdi'
    image.write_bytes(b'x')
    assert f.read_fingerprint(str(image)) is None
    assert f.store_fingerprint(str(image), str(image), {'version': 1, 'a': [1, 2]}) == 'xattr'
    assert f.read_fingerprint(str(image)) == {'version': 1, 'a': [1, 2]}


def test_fingerprint_sidecar_when_the_file_system_has_no_user_xattrs(tmp_path, monkeypatch):
    def no_xattrs(*_args):
        raise OSError(errno.EOPNOTSUPP, 'Operation not supported')
    monkeypatch.setattr(os, 'setxattr', no_xattrs)
    monkeypatch.setattr(os, 'getxattr', no_xattrs)
    tmp = tmp_path / '.disk.vdi.abcdefgh.qemu_image.tmp'
    tmp.write_bytes(b'x')
    image = tmp_path / 'disk.vdi'
    assert f.store_fingerprint(str(tmp), str(image), {'version': 1}) == 'sidecar'
    assert (tmp_path / '.disk.vdi.qemu_image.json').exists()
    os.rename(str(tmp), str(image))
    assert f.read_fingerprint(str(image)) == {'version': 1}
    # Another file renamed to the path (another inode): the sidecar is not its fingerprint.
    other = tmp_path / 'other'
    other.write_bytes(b'y')
    os.rename(str(other), str(image))
    assert f.read_fingerprint(str(image)) is None
