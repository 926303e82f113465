# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pieces of a volume import that need no libvirt: the record of the source, and the hole map the
sparse upload stream follows (the upload itself runs in tests/integration/test_libvirt_volume.py)."""

from __future__ import annotations

import errno
import os

from ansible_collections.virtops.hypervisor.plugins.module_utils import _volume_import as vi

MIB = 1 << 20


def test_the_record_is_read_back_and_a_file_without_one_has_none(tmp_path):
    path = tmp_path / 'vol.raw'
    path.write_bytes(b'x')
    assert vi.read_record(str(path)) is None
    vi.store_record(str(path), {'version': 1, 'source': [{'size': 1}]})
    assert vi.read_record(str(path)) == {'version': 1, 'source': [{'size': 1}]}
    assert vi.records_unsupported(str(tmp_path)) is None


def test_a_file_system_without_user_xattrs_is_named(monkeypatch, tmp_path):
    def refuse(_path, _name):
        raise OSError(errno.EOPNOTSUPP, 'Operation not supported')
    monkeypatch.setattr(os, 'getxattr', refuse)
    assert 'not supported' in vi.records_unsupported(str(tmp_path))


def test_the_stream_sends_data_and_skips_holes(tmp_path):
    path = tmp_path / 'sparse.raw'
    with open(str(path), 'wb') as handle:
        handle.truncate(4 * MIB)
        handle.seek(MIB)
        handle.write(b'y' * 4096)
    fd = os.open(str(path), os.O_RDONLY)
    sections, data = [], b''
    try:
        while os.lseek(fd, 0, os.SEEK_CUR) < 4 * MIB:
            in_data, length = vi._in_data(None, fd)
            sections.append((in_data, length))
            if in_data:
                data += vi._read_chunk(None, length, fd)
            else:
                vi._skip_hole(None, length, fd)
    finally:
        os.close(fd)
    assert sum(length for _data, length in sections) == 4 * MIB
    assert [in_data for in_data, _length in sections] == [0, 1, 0]
    assert data.strip(b'\0') == b'y' * 4096  # a file system may report whole blocks as data
