# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""qemu_image and qemu_image_info with the real qemu-img, on small images with random data.

Results are checked on the host: `qemu-img compare` for contents, `qemu-img info` for format, size and
backing, stat for owner and mode, directory listings for temporary files. Interruptions are real
(SIGKILL, SIGTERM), a full file system is a small tmpfs, and an image in use is held open by qemu-io,
which takes qemu's image locks as a running VM does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from virtops_testlib import COLLECTIONS, run_module

FORMATS = ['qcow2', 'raw', 'vdi', 'vmdk', 'vpc']
MIB = 1 << 20


def image(args, check=False, diff=True):
    return run_module('qemu_image', args, check=check, diff=diff)


def info(path):
    return json.loads(subprocess.run(['qemu-img', 'info', '-U', '--output=json', str(path)], capture_output=True,
                                     text=True, check=True).stdout)


def info_as(path, fmt):
    """qemu-img info read as fmt (a fixed VHD looks raw to qemu-img's probe)."""
    return json.loads(subprocess.run(['qemu-img', 'info', '-U', '-f', fmt, '--output=json', str(path)],
                                     capture_output=True, text=True, check=True).stdout)


def compare(first, second, second_format=None):
    argv = ['qemu-img', 'compare', '-U'] + (['-F', second_format] if second_format else [])
    proc = subprocess.run(argv + [str(first), str(second)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def qemu_io(path, fmt, command):
    subprocess.run(['qemu-io', '-f', fmt, '-c', command, str(path)], capture_output=True, check=True)


def leftovers(directory):
    return sorted(name for name in os.listdir(str(directory)) if name.endswith('.tmp'))


def make_raw(path, size_mib, data_mib):
    """A sparse raw image: stripes of random data, each followed by a MiB of written zeros, holes in between."""
    with open(str(path), 'wb') as handle:
        handle.truncate(size_mib * MIB)
        chunk = min(4, data_mib)
        for index in range(data_mib // chunk):
            handle.seek(index * 2 * chunk * MIB)
            handle.write(os.urandom(chunk * MIB))
            if (index * 2 + 1) * chunk + 1 <= size_mib:
                handle.seek((index * 2 + 1) * chunk * MIB)
                handle.write(b'\0' * MIB)
    return path


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    """The same 24 MiB image (12 MiB of random data) in each format."""
    directory = tmp_path_factory.mktemp('sources')
    raw = make_raw(directory / 'src.raw', 24, 12)
    found = {'raw': raw}
    for fmt in FORMATS:
        if fmt != 'raw':
            found[fmt] = directory / ('src.' + fmt)
            subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', fmt, str(raw), str(found[fmt])], check=True)
    return found


@pytest.fixture
def src(tmp_path):
    return make_raw(tmp_path / 'src.raw', 24, 12)


@pytest.fixture
def holder():
    """Hold images open with qemu-io (read-write, as a running VM does); closed afterwards."""
    processes = []

    def hold(path, fmt):
        proc = subprocess.Popen(['qemu-io', '-f', fmt, str(path)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        processes.append(proc)
        # Wait for qemu's locks in /proc/locks (probing with qemu-img could make qemu-io fail to get them).
        inode = ':%d ' % os.stat(str(path)).st_ino
        deadline = time.monotonic() + 10
        while not any('OFDLCK' in line and inode in line for line in open('/proc/locks')):
            assert proc.poll() is None and time.monotonic() < deadline, 'qemu-io did not open %s' % path
            time.sleep(0.02)
        return proc
    yield hold
    for proc in processes:
        proc.kill()
        proc.wait()


# --- conversions -------------------------------------------------------------------------------

@pytest.mark.parametrize('source_format,target_format',
                         [pair for pair in itertools.product(FORMATS, FORMATS) if pair[0] != pair[1]])
def test_convert_every_pair(sources, tmp_path, source_format, target_format):
    dest = tmp_path / ('dest.' + target_format)
    args = {'src': str(sources[source_format]), 'path': str(dest), 'format': target_format}

    first = image(args)
    assert first['changed'] is True and first['actions'] == ['convert'], first
    assert info(dest)['format'] == target_format
    compare(sources[source_format], dest)
    compare(sources['raw'], dest)

    assert image(args)['changed'] is False
    assert image(args, check=True)['changed'] is False
    assert leftovers(tmp_path) == []


def test_check_mode_and_diff_create_nothing(src, tmp_path):
    dest = tmp_path / 'dest.vdi'
    args = {'src': str(src), 'path': str(dest), 'format': 'vdi', 'mode': '0640'}

    checked = image(args, check=True)
    assert checked['changed'] is True and checked['actions'] == ['convert']
    assert checked['diff']['before'] == {'exists': False}
    after = checked['diff']['after']
    assert (after['format'], after['virtual_size'], after['mode']) == ('vdi', 24 * MIB, '0640')
    assert os.listdir(str(tmp_path)) == ['src.raw']

    done = image(args)
    assert done['changed'] is True and done['actions'] == checked['actions']
    assert done['diff']['after'] == checked['diff']['after']
    assert oct(os.stat(str(dest)).st_mode & 0o777) == '0o640'
    again = image(args, check=True)
    assert again['changed'] is False and again['diff']['before'] == again['diff']['after'] == done['diff']['after']


def test_source_changes_reconvert(src, tmp_path):
    dest = tmp_path / 'dest.qcow2'
    args = {'src': str(src), 'path': str(dest)}
    assert image(args)['changed'] is True

    qemu_io(src, 'raw', 'write -P 0xab 1M 64k')
    checked = image(args, check=True)
    assert checked['changed'] is True
    assert any('changed since the last conversion' in reason for reason in checked['reasons']), checked['reasons']
    done = image(args)
    assert done['changed'] is True
    compare(src, dest)
    assert image(args)['changed'] is False

    # Replacing the source by another file of the same size (a new inode) counts too.
    replacement = tmp_path / 'other.raw'
    make_raw(replacement, 24, 12)
    os.rename(str(replacement), str(src))
    assert image(args)['changed'] is True
    compare(src, dest)


def test_force_and_changed_settings_reconvert(src, tmp_path):
    dest = tmp_path / 'dest.qcow2'
    args = {'src': str(src), 'path': str(dest)}
    assert image(args)['changed'] is True
    inode = os.stat(str(dest)).st_ino

    forced = image(dict(args, force=True))
    assert forced['changed'] is True and forced['reasons'] == ['force: true']
    assert os.stat(str(dest)).st_ino != inode  # a new file renamed over the old one

    compressed = image(dict(args, compress=True))
    assert compressed['changed'] is True
    assert any('compress' in reason for reason in compressed['reasons'])
    assert image(dict(args, compress=True))['changed'] is False
    compare(src, dest)

    as_vmdk = image(dict(args, format='vmdk', subformat='streamOptimized'))
    assert as_vmdk['changed'] is True
    assert info(dest)['format-specific']['data']['create-type'] == 'streamOptimized'
    assert image(dict(args, format='vmdk', subformat='streamOptimized'))['changed'] is False
    compare(src, dest)


def test_foreign_destination_is_converted_once(src, tmp_path):
    dest = tmp_path / 'dest.qcow2'
    subprocess.run(['qemu-img', 'convert', '-O', 'qcow2', str(src), str(dest)], check=True)
    args = {'src': str(src), 'path': str(dest)}

    first = image(args)
    assert first['changed'] is True
    assert first['reasons'] == ['no record of a conversion from this source (no fingerprint)']
    assert image(args)['changed'] is False


def test_vpc_fixed_keeps_its_rounded_size(src, tmp_path):
    dest = tmp_path / 'dest.vhd'
    args = {'src': str(src), 'path': str(dest), 'format': 'vpc', 'subformat': 'fixed'}
    assert image(args)['changed'] is True
    # A fixed VHD has only a footer: qemu-img's probe sees raw, the module reads it as vpc.
    data = json.loads(subprocess.run(['qemu-img', 'info', '-f', 'vpc', '--output=json', str(dest)],
                                     capture_output=True, text=True, check=True).stdout)
    assert data['virtual-size'] != 24 * MIB  # vpc rounds to its disk geometry
    assert os.stat(str(dest)).st_size > 24 * MIB  # fixed: fully allocated
    assert image(args)['changed'] is False
    compare(src, dest, 'vpc')

    exact = image(dict(args, options={'force_size': True}))
    assert exact['changed'] is True and exact['image']['virtual_size'] == 24 * MIB
    assert image(dict(args, options={'force_size': True}))['changed'] is False
    compare(src, dest, 'vpc')


def test_convert_to_a_larger_size(src, tmp_path):
    dest = tmp_path / 'dest.qcow2'
    args = {'src': str(src), 'path': str(dest), 'size': '32M'}
    assert image(args)['changed'] is True
    assert info(dest)['virtual-size'] == 32 * MIB
    compare(src, dest)
    assert image(args)['changed'] is False

    smaller = image(dict(args, size='16M'))
    assert smaller['failed'] is True and 'smaller than the virtual size of src' in smaller['msg']


def test_convert_with_a_backing_file(sources, tmp_path):
    """An overlay converted onto a copy of its base (-B): only the overlay's own data is written."""
    base = tmp_path / 'base.qcow2'
    subprocess.run(['qemu-img', 'convert', '-O', 'qcow2', str(sources['raw']), str(base)], check=True)
    changed = tmp_path / 'changed.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', str(changed)],
                   check=True)
    qemu_io(changed, 'qcow2', 'write -P 0x5a 2M 1M')
    copy = tmp_path / 'copy-of-base.qcow2'
    subprocess.run(['cp', '--sparse=always', str(base), str(copy)], check=True)

    dest = tmp_path / 'delta.qcow2'
    args = {'src': str(changed), 'path': str(dest), 'backing_file': 'copy-of-base.qcow2'}
    assert image(args)['changed'] is True
    data = info(dest)
    assert (data['backing-filename'], data['backing-filename-format']) == ('copy-of-base.qcow2', 'qcow2')
    assert data['actual-size'] < 4 * MIB  # the overlay's 1 MiB, not the 12 MiB of its base
    compare(changed, dest)
    assert image(args)['changed'] is False

    # A change in the source's backing chain counts as a change of the source.
    qemu_io(base, 'qcow2', 'write -P 0x77 8M 64k')
    again = image(args, check=True)
    assert again['changed'] is True
    assert any(str(base) in reason for reason in again['reasons']), again['reasons']


# --- create, resize, attributes ----------------------------------------------------------------

def test_create_and_overlay(tmp_path):
    base = tmp_path / 'base.qcow2'
    args = {'path': str(base), 'size': '64M', 'cluster_size': '128K', 'options': {'lazy_refcounts': True}}
    assert image(args, check=True)['changed'] is True
    assert not base.exists()
    created = image(args)
    assert created['changed'] is True and created['actions'] == ['create']
    data = info(base)
    assert (data['virtual-size'], data['cluster-size']) == (64 * MIB, 128 * 1024)
    assert data['format-specific']['data']['lazy-refcounts'] is True
    assert image(args)['changed'] is False

    overlay = tmp_path / 'overlay.qcow2'
    over = {'path': str(overlay), 'backing_file': 'base.qcow2'}
    assert image(over)['changed'] is True
    data = info(overlay)
    assert (data['backing-filename'], data['backing-filename-format'], data['virtual-size']) == \
        ('base.qcow2', 'qcow2', 64 * MIB)
    assert image(over)['changed'] is False

    other = image({'path': str(overlay), 'backing_file': 'other.qcow2'})
    assert other['failed'] is True and 'backed by base.qcow2' in other['msg']
    wrong = image({'path': str(base), 'format': 'raw', 'size': '64M'})
    assert wrong['failed'] is True and 'is a qcow2 image, not raw' in wrong['msg']
    differs = image(dict(args, cluster_size='64K'))
    assert differs['changed'] is False and differs['differences'] == ['cluster size is 128 KiB']
    assert leftovers(tmp_path) == []


def test_resize_grows_and_shrinks_only_when_allowed(tmp_path):
    disk = tmp_path / 'disk.raw'
    assert image({'path': str(disk), 'format': 'raw', 'size': 32 * MIB})['changed'] is True
    qemu_io(disk, 'raw', 'write -P 0x11 0 1M')

    grow = {'path': str(disk), 'format': 'raw', 'size': '48M'}
    checked = image(grow, check=True)
    assert checked['changed'] is True and checked['actions'] == ['grow']
    assert checked['diff']['before']['virtual_size'] == 32 * MIB
    assert checked['diff']['after']['virtual_size'] == 48 * MIB
    assert info(disk)['virtual-size'] == 32 * MIB
    assert image(grow)['changed'] is True
    assert info(disk)['virtual-size'] == 48 * MIB
    assert image(grow)['changed'] is False

    shrink = {'path': str(disk), 'format': 'raw', 'size': '16M'}
    refused = image(shrink)
    assert refused['failed'] is True
    assert 'would shrink it' in refused['msg'] and 'allow_shrink' in refused['msg']
    assert info(disk)['virtual-size'] == 48 * MIB
    done = image(dict(shrink, allow_shrink=True))
    assert done['changed'] is True and done['actions'] == ['shrink']
    assert info(disk)['virtual-size'] == 16 * MIB
    qemu_io(disk, 'raw', 'read -P 0x11 0 1M')


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# Every variant of the formats qemu-img 7.2 cannot resize ("Image format driver does not support resize").
NOT_RESIZABLE = [('vdi', None), ('vmdk', 'monolithicSparse'), ('vmdk', 'streamOptimized'), ('vpc', 'dynamic'),
                 ('vpc', 'fixed'), ('vhdx', 'dynamic'), ('vhdx', 'fixed')]


@pytest.mark.parametrize('fmt,subformat', NOT_RESIZABLE)
def test_a_format_qemu_img_cannot_resize_is_refused_in_check_mode_too(tmp_path, fmt, subformat):
    disk = tmp_path / ('disk.' + fmt)
    created = {'path': str(disk), 'format': fmt, 'size': '32M'}
    if subformat:
        created['subformat'] = subformat
    predicted = image(created, check=True)
    made = image(created)
    assert made['changed'] is True and made['actions'] == predicted['actions'] == ['create']
    assert made['diff'] == predicted['diff']  # vpc: the size its disk geometry makes of 32M, predicted
    assert made['image']['virtual_size'] == info_as(disk, fmt)['virtual-size']
    qemu_io(disk, fmt, 'write -P 0x22 0 1M')
    # The same task again: the size qemu-img made of 32M (vpc rounds it to its disk geometry) is no change.
    assert image(created)['changed'] is False
    assert image(created, check=True)['changed'] is False
    before_info, before_bytes = info_as(disk, fmt), sha256(disk)

    for size, extra in (('48M', {}), ('16M', {'allow_shrink': True}), ('16M', {})):
        for check in (True, False):
            result = image(dict(created, size=size, **extra), check=check)
            assert result.get('failed') is True and result['changed'] is False, result
            assert result['actions'] == [] and result['failed_object'] == str(disk)
            assert result['msg'].startswith('cannot resize %s from ' % disk), result['msg']
            assert 'qemu-img cannot resize %s images (only qcow2 and raw)' % fmt in result['msg']
            assert 'convert it to qcow2 or raw first' in result['msg'] and 'Nothing was changed' in result['msg']
            assert info_as(disk, fmt) == before_info and sha256(disk) == before_bytes
    assert leftovers(tmp_path) == []


def test_the_way_out_of_a_refused_grow_works(tmp_path):
    disk = tmp_path / 'disk.vdi'
    assert image({'path': str(disk), 'format': 'vdi', 'size': '32M'})['changed'] is True
    qemu_io(disk, 'vdi', 'write -P 0x33 0 1M')
    refused = image({'path': str(disk), 'format': 'vdi', 'size': '48M'})
    assert 'convert it to a new vdi image with src: %s and size: 48 MiB' % disk in refused['msg'], refused['msg']

    bigger = tmp_path / 'bigger.vdi'
    args = {'src': str(disk), 'path': str(bigger), 'format': 'vdi', 'size': '48M'}
    assert image(args)['changed'] is True
    assert info(bigger)['virtual-size'] == 48 * MIB
    qemu_io(bigger, 'vdi', 'read -P 0x33 0 1M')
    as_qcow2 = tmp_path / 'disk.qcow2'
    assert image({'src': str(disk), 'path': str(as_qcow2)})['changed'] is True
    assert image({'path': str(as_qcow2), 'size': '48M'})['actions'] == ['grow']
    qemu_io(as_qcow2, 'qcow2', 'read -P 0x33 0 1M')


@pytest.mark.parametrize('fmt', ['qcow2', 'raw'])
@pytest.mark.parametrize('size,extra,action', [('48M', {}, 'grow'), ('16M', {'allow_shrink': True}, 'shrink'),
                                               ('40000001', {}, 'grow')])
def test_resize_four_ways(tmp_path, fmt, size, extra, action):
    """Check mode, real run, rerun, check-mode rerun; a size that is no whole number of sectors is rounded up to one,
    as qemu-img does."""
    disk = tmp_path / ('disk.' + fmt)
    assert image({'path': str(disk), 'format': fmt, 'size': '32M'})['changed'] is True
    qemu_io(disk, fmt, 'write -P 0x44 0 1M')
    args = dict({'path': str(disk), 'format': fmt, 'size': size}, **extra)
    wanted = -(-parse_bytes(size) // 512) * 512
    before_bytes = sha256(disk)

    checked = image(args, check=True)
    assert checked['changed'] is True and checked['actions'] == [action], checked
    assert checked['diff']['after']['virtual_size'] == wanted
    assert info(disk)['virtual-size'] == 32 * MIB and sha256(disk) == before_bytes

    done = image(args)
    assert done['changed'] is True and done['actions'] == [action], done
    assert info(disk)['virtual-size'] == wanted
    assert done['diff'] == checked['diff'] and done['image']['virtual_size'] == wanted
    qemu_io(disk, fmt, 'read -P 0x44 0 1M')

    again = image(args)
    assert again['changed'] is False and again['actions'] == [], again
    again_checked = image(args, check=True)
    assert again_checked['changed'] is False and again_checked['diff']['before'] == again_checked['diff']['after']


def parse_bytes(size):
    return int(size[:-1]) * MIB if size.endswith('M') else int(size)


def test_owner_and_mode(tmp_path):
    disk = tmp_path / 'disk.qcow2'
    args = {'path': str(disk), 'size': '16M', 'mode': '0600'}
    assert image(args)['changed'] is True
    assert os.stat(str(disk)).st_mode & 0o777 == 0o600

    wanted = dict(args, owner='nobody', group='nogroup', mode='0640')
    checked = image(wanted, check=True)
    assert checked['changed'] is True and checked['actions'] == ['attributes']
    assert (checked['diff']['after']['owner'], checked['diff']['after']['mode']) == ('nobody', '0640')
    assert os.stat(str(disk)).st_mode & 0o777 == 0o600
    done = image(wanted)
    assert done['changed'] is True and done['diff']['after'] == checked['diff']['after']
    st = os.stat(str(disk))
    assert (st.st_mode & 0o777, st.st_uid) == (0o640, 65534)
    assert image(wanted)['changed'] is False

    # A conversion over it keeps owner and mode.
    src = make_raw(tmp_path / 'src.raw', 16, 4)
    assert image({'path': str(disk), 'src': str(src)})['changed'] is True
    st = os.stat(str(disk))
    assert (st.st_mode & 0o777, st.st_uid) == (0o640, 65534)


def test_absent(src, tmp_path):
    dest = tmp_path / 'dest.qcow2'
    assert image({'src': str(src), 'path': str(dest)})['changed'] is True
    checked = image({'path': str(dest), 'state': 'absent'}, check=True)
    assert checked['changed'] is True and dest.exists()
    assert image({'path': str(dest), 'state': 'absent'})['changed'] is True
    assert not dest.exists()
    assert image({'path': str(dest), 'state': 'absent'})['changed'] is False


def test_bad_inputs(src, tmp_path):
    cases = [
        ({'path': str(tmp_path / 'a.qcow2')}, 'give size to create it'),
        ({'path': str(tmp_path / 'a.qcow2'), 'size': '10X'}, "size '10X' is not a size"),
        ({'path': str(tmp_path / 'a.qcow2'), 'src': str(tmp_path / 'missing.raw')}, 'does not exist'),
        ({'path': str(src), 'src': str(src)}, 'src and path are both'),
        ({'path': str(tmp_path / 'a.vmdk'), 'src': str(src), 'format': 'vmdk', 'subformat': 'monolithicFlat'},
         'cannot be replaced atomically'),
        ({'path': str(tmp_path), 'size': '1M'}, 'is not a regular file'),
        ({'path': str(tmp_path / 'a.raw'), 'src': str(src), 'format': 'raw', 'compress': True}, 'compress works'),
        ({'path': str(tmp_path / 'a.qcow2'), 'src': str(src), 'owner': 'no-such-user'},
         "owner 'no-such-user' does not exist on the target"),
        ({'path': str(tmp_path / 'a.qcow2'), 'size': '1M', 'group': 'no-such-group'},
         "group 'no-such-group' does not exist on the target"),
    ]
    for args, message in cases:
        result = image(args)
        assert result.get('failed') is True and message in result['msg'], (args, result)
        assert result['changed'] is False, result
    assert sorted(os.listdir(str(tmp_path))) == ['src.raw']


# --- interruptions, full file systems, images in use -------------------------------------------

def _start_module(args):
    handle = tempfile.NamedTemporaryFile('w', suffix='.json', delete=False)
    json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
    handle.close()
    proc = subprocess.Popen(
        [sys.executable, '-m', 'ansible_collections.virtops.hypervisor.plugins.modules.qemu_image', handle.name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir(),
        env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)))
    return proc, handle.name


def _children(pid):
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def _wait_for_writing(proc, directory):
    """Wait until qemu-img runs under the module and its temporary file has data; returns qemu-img's pid."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = _children(proc.pid)
        temps = leftovers(directory)
        if children and temps and os.stat(os.path.join(str(directory), temps[0])).st_blocks * 512 > 8 * MIB:
            return children[0]
        assert proc.poll() is None, 'the module ended before it could be interrupted: %s' % (proc.communicate(),)
        time.sleep(0.005)
    raise AssertionError('qemu-img did not start writing')


@pytest.fixture(scope='module')
def big_source(tmp_path_factory):
    """1 GiB, 256 MiB of it random data: a conversion takes long enough to be interrupted."""
    return make_raw(tmp_path_factory.mktemp('big') / 'big.raw', 1024, 256)


def test_kill_9_leaves_no_destination(big_source, tmp_path):
    dest = tmp_path / 'dest.vdi'
    args = {'src': str(big_source), 'path': str(dest), 'format': 'vdi', 'fsync': True}
    proc, args_file = _start_module(args)
    try:
        qemu_img = _wait_for_writing(proc, tmp_path)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        # qemu-img lives on, finishes its temporary file and exits; nothing renames it.
        for _attempt in range(600):
            if not os.path.exists('/proc/%d' % qemu_img):
                break
            time.sleep(0.05)
    finally:
        os.unlink(args_file)
    assert not dest.exists()
    stale = leftovers(tmp_path)
    assert len(stale) == 1 and stale[0].startswith('.dest.vdi.')

    checked = image(args, check=True)
    assert checked['stale_temp_files'] == [str(tmp_path / stale[0])] and leftovers(tmp_path) == stale
    rerun = image(dict(args, fsync=False))
    assert rerun['changed'] is True and rerun['stale_temp_files'] == [str(tmp_path / stale[0])]
    assert leftovers(tmp_path) == []
    compare(big_source, dest)


def test_sigterm_removes_the_temporary_file_and_keeps_the_old_image(big_source, src, tmp_path):
    dest = tmp_path / 'dest.qcow2'
    assert image({'src': str(src), 'path': str(dest)})['changed'] is True
    before = os.stat(str(dest))
    proc, args_file = _start_module({'src': str(big_source), 'path': str(dest), 'fsync': True})
    try:
        qemu_img = _wait_for_writing(proc, tmp_path)
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=30)
    finally:
        os.unlink(args_file)
    result = json.loads(out)
    assert result['failed'] is True and 'interrupted by signal 15' in result['msg']
    assert not os.path.exists('/proc/%d' % qemu_img) or open('/proc/%d/stat' % qemu_img).read().split()[2] == 'Z'
    assert leftovers(tmp_path) == []
    assert os.stat(str(dest)).st_ino == before.st_ino
    compare(src, dest)


def mounted(mountpoint, fstype, *options):
    """Mount a file system of that type (needs root) at mountpoint for a fixture; skips the test when it cannot."""
    mountpoint.mkdir()
    proc = subprocess.run(['mount', '-t', fstype] + list(options) + [fstype, str(mountpoint)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.skip('cannot mount a %s: %s' % (fstype, proc.stderr.strip()))
    try:
        yield mountpoint
    finally:
        subprocess.run(['umount', str(mountpoint)], check=True)


@pytest.fixture
def small_fs(tmp_path):
    """An 8 MiB tmpfs."""
    yield from mounted(tmp_path / 'small', 'tmpfs', '-o', 'size=8m')


def test_full_file_system_fails_clearly_and_leaves_nothing(src, small_fs):
    old = small_fs / 'old.raw'
    old_args = {'src': str(make_raw(small_fs.parent / 'old-src.raw', 2, 1)), 'path': str(old), 'format': 'raw'}
    assert image(old_args)['changed'] is True
    for fmt in ('qcow2', 'raw', 'vdi'):
        dest = small_fs / ('dest.' + fmt)
        result = image({'src': str(src), 'path': str(dest), 'format': fmt})
        assert result['failed'] is True and result['changed'] is False and result['actions'] == [], result
        assert 'no space left on the file system of %s' % small_fs in result['msg'], result['msg']
        assert 'is unchanged' in result['msg']
        assert sorted(os.listdir(str(small_fs))) == ['old.raw']
    # Replacing an existing image fails the same way and keeps it.
    result = image(dict(old_args, src=str(src)))
    assert result['failed'] is True and 'no space left' in result['msg']
    assert sorted(os.listdir(str(small_fs))) == ['old.raw']
    compare(old_args['src'], old)


@pytest.fixture
def no_xattr_fs(tmp_path):
    """A ramfs: a real file system without extended attributes, as some NFS and FUSE exports."""
    yield from mounted(tmp_path / 'ramfs', 'ramfs')


def test_fingerprint_sidecar_on_a_file_system_without_xattrs(src, no_xattr_fs):
    probe = no_xattr_fs / 'probe'
    probe.write_bytes(b'')
    with pytest.raises(OSError):
        os.setxattr(str(probe), 'user.virtops.probe', b'1')
    probe.unlink()
    dest = no_xattr_fs / 'dest.vdi'
    args = {'src': str(src), 'path': str(dest), 'format': 'vdi'}
    assert image(args)['changed'] is True
    sidecar = no_xattr_fs / '.dest.vdi.qemu_image.json'
    assert sorted(os.listdir(str(no_xattr_fs))) == ['.dest.vdi.qemu_image.json', 'dest.vdi']
    assert json.loads(sidecar.read_text())['image']['inode'] == os.stat(str(dest)).st_ino
    compare(src, dest)
    assert image(args)['changed'] is False
    assert image(args, check=True)['changed'] is False

    qemu_io(src, 'raw', 'write -P 0xcd 2M 64k')
    assert image(args)['changed'] is True
    compare(src, dest)
    assert image(args)['changed'] is False

    # Another file renamed over the image: the sidecar belongs to the old inode and no longer counts.
    subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'vdi', str(src), str(no_xattr_fs / 'other.vdi')],
                   check=True)
    os.rename(str(no_xattr_fs / 'other.vdi'), str(dest))
    again = image(args)
    assert again['changed'] is True
    assert again['reasons'] == ['no record of a conversion from this source (no fingerprint)'], again['reasons']
    assert image(args)['changed'] is False

    assert image({'path': str(dest), 'state': 'absent'})['changed'] is True
    assert os.listdir(str(no_xattr_fs)) == []


def test_vhdx_create_and_convert(src, tmp_path):
    created = tmp_path / 'new.vhdx'
    args = {'path': str(created), 'format': 'vhdx', 'size': '64M', 'subformat': 'dynamic'}
    assert image(args, check=True)['changed'] is True and not created.exists()
    assert image(args)['changed'] is True
    data = info(created)
    assert (data['format'], data['virtual-size']) == ('vhdx', 64 * MIB)
    assert image(args)['changed'] is False

    dest = tmp_path / 'dest.vhdx'
    conversion = {'src': str(src), 'path': str(dest), 'format': 'vhdx'}
    assert image(conversion)['changed'] is True
    assert info(dest)['format'] == 'vhdx'
    compare(src, dest)
    assert image(conversion)['changed'] is False
    back = tmp_path / 'back.qcow2'
    assert image({'src': str(dest), 'path': str(back)})['changed'] is True
    compare(src, back)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize('fmt', ['qcow2', 'raw'])
def test_image_in_use_is_refused(src, tmp_path, holder, fmt):
    dest = tmp_path / ('dest.' + fmt)
    args = {'src': str(src), 'path': str(dest), 'format': fmt}
    assert image(args)['changed'] is True
    before = os.stat(str(dest))
    holder(dest, fmt)

    assert image(args)['changed'] is False  # nothing to do is fine while a VM runs
    for change in ({'force': True}, {'state': 'absent'}):
        for check in (True, False):
            result = image(dict(args, **change), check=check)
            assert result.get('failed') is True and result['changed'] is False, result
            assert result['msg'].startswith('%s is in use: a running VM' % dest), result['msg']
    grow = image({'path': str(dest), 'format': fmt, 'size': '32M'})
    assert grow['failed'] is True and 'is in use' in grow['msg']
    after = os.stat(str(dest))
    assert (after.st_ino, after.st_mtime_ns, info(dest)['virtual-size']) == (before.st_ino, before.st_mtime_ns,
                                                                             24 * MIB)
    assert leftovers(tmp_path) == []


def test_source_in_use_is_refused(src, tmp_path, holder):
    source = tmp_path / 'running.qcow2'
    subprocess.run(['qemu-img', 'convert', '-O', 'qcow2', str(src), str(source)], check=True)
    holder(source, 'qcow2')
    dest = tmp_path / 'copy.vdi'
    result = image({'src': str(source), 'path': str(dest), 'format': 'vdi'})
    assert result['failed'] is True
    assert 'src %s is in use by a running VM' % source in result['msg'], result['msg']
    assert not dest.exists() and leftovers(tmp_path) == []


# --- qemu_image_info ---------------------------------------------------------------------------

def test_info_fields_chain_snapshots_and_check(src, tmp_path):
    base = tmp_path / 'base.qcow2'
    subprocess.run(['qemu-img', 'convert', '-O', 'qcow2', str(src), str(base)], check=True)
    subprocess.run(['qemu-img', 'snapshot', '-c', 'before', str(base)], check=True)
    overlay = tmp_path / 'overlay.qcow2'
    assert image({'path': str(overlay), 'backing_file': 'base.qcow2', 'mode': '0640'})['changed'] is True

    result = run_module('qemu_image_info', {'path': [str(overlay), str(base), str(src), str(tmp_path / 'no.qcow2')],
                                            'check': True})
    assert result['changed'] is False
    top, middle, raw, missing = result['images']
    assert (top['format'], top['virtual_size'], top['backing_file'], top['backing_format']) == \
        ('qcow2', 24 * MIB, 'base.qcow2', 'qcow2')
    assert top['full_backing_file'] == str(base)
    assert [item['path'] for item in top['backing_chain']] == [str(base)]
    assert top['backing_chain'][0]['format'] == 'qcow2'
    assert (top['cluster_size'], top['dirty'], top['corrupt'], top['encrypted'], top['mode']) == \
        (65536, False, False, False, '0640')
    assert top['check']['result'] == 'ok' and top['check']['corruptions'] == 0
    assert [snap['name'] for snap in middle['snapshots']] == ['before']
    assert middle['actual_size'] > 8 * MIB and middle['backing_chain'] == []
    assert raw['format'] == 'raw' and raw['check']['result'] == 'unsupported'
    assert missing == {'path': str(tmp_path / 'no.qcow2'), 'exists': False}

    one = run_module('qemu_image_info', {'path': str(base)}, check=True)
    assert len(one['images']) == 1 and 'check' not in one['images'][0]


def test_info_reads_images_in_use(src, tmp_path, holder):
    disk = tmp_path / 'disk.qcow2'
    subprocess.run(['qemu-img', 'convert', '-O', 'qcow2', str(src), str(disk)], check=True)
    holder(disk, 'qcow2')
    result = run_module('qemu_image_info', {'path': [str(disk)], 'check': True})
    assert result['images'][0]['format'] == 'qcow2'
    assert result['images'][0]['check']['result'] in ('ok', 'leaks')
