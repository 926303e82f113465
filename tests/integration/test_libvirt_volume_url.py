# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirt_volume's url against the real libvirtd (qemu:///system) and an HTTP server on 127.0.0.1.

The module runs in a process of its own (virtops_testlib.run_module) and downloads from a server this
test starts on loopback (tests/lib/virtops_http.py), which counts the requests it serves: a rerun must
download nothing. Volumes live in one dir pool under /var/lib/libvirt/images/<prefix>url-pool; the
download cache is a directory of each test. No network is created.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from virtops_http import ImageServer
from virtops_testlib import COLLECTIONS, PREFIX, import_libvirt, run_module

IMAGES = '/var/lib/libvirt/images'
MIB = 1 << 20
XATTR = 'user.virtops.libvirt_volume'


def sha256(path):
    return 'sha256:' + hashlib.sha256(open(path, 'rb').read()).hexdigest()


@pytest.fixture(scope='module')
def pool(conn):
    name = PREFIX + 'url-pool'
    path = os.path.join(IMAGES, name)
    os.makedirs(path, exist_ok=True)
    handle = conn.storagePoolDefineXML("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>"
                                       % (name, path), 0)
    handle.create(0)
    yield name
    handle.destroy()
    handle.undefine()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clean(conn, pool):
    yield
    libvirt = import_libvirt()
    for dom in conn.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    handle = conn.storagePoolLookupByName(pool)
    handle.refresh(0)
    for vol in handle.listAllVolumes(0):
        vol.delete(0)


@pytest.fixture
def served(tmp_path):
    """An ImageServer over a directory with disk.qcow2 (8 MiB of data in a 48 MiB qcow2), its .xz and .gz and a
    SHA256SUMS; {'dir', 'server', 'cache'}, cache being the download_cache for the module."""
    root = tmp_path / 'www'
    root.mkdir()
    raw = tmp_path / 'disk.raw'
    with open(raw, 'wb') as handle:
        handle.truncate(48 * MIB)
        handle.seek(5 * MIB)
        handle.write(os.urandom(MIB) + b'virtops' * 100000)
    subprocess.run(['qemu-img', 'convert', '-q', '-f', 'raw', '-O', 'qcow2', str(raw), str(root / 'disk.qcow2')],
                   check=True)
    data = (root / 'disk.qcow2').read_bytes()
    (root / 'disk.qcow2.xz').write_bytes(lzma.compress(data))
    (root / 'disk.qcow2.gz').write_bytes(gzip.compress(data))
    write_sums(root)
    with ImageServer(root) as server:
        yield {'dir': root, 'server': server, 'cache': str(tmp_path / 'cache')}


def write_sums(root):
    names = sorted(path.name for path in root.iterdir() if path.name != 'SHA256SUMS')
    (root / 'SHA256SUMS').write_text(''.join('%s  %s\n' % (sha256(root / name)[7:], name) for name in names))


def volume(args, served, check=False):
    return run_module('libvirt_volume', dict(args, download_cache=served['cache']), check=check)


def four_ways(args, served):
    runs = [volume(args, served, check) for check in (True, False, False, True)]
    assert not any(run.get('failed') for run in runs), runs
    assert [run['changed'] for run in runs] == [True, True, False, False], runs
    assert runs[0]['actions'] == runs[1]['actions'] and runs[2]['actions'] == runs[3]['actions'] == [], runs
    assert runs[2]['diff'] == runs[3]['diff']
    return runs


def vol_path(pool, name):
    return os.path.join(IMAGES, pool, name)


def same_image(image, path):
    subprocess.run(['qemu-img', 'compare', '-q', '-U', str(image), path], check=True)


def record(pool, name):
    return json.loads(os.getxattr(vol_path(pool, name), XATTR))


def leftovers(served, pool):
    cache = sorted(os.listdir(served['cache'])) if os.path.isdir(served['cache']) else []
    return cache, sorted(os.listdir(os.path.join(IMAGES, pool)))


def test_an_image_by_url_is_imported_once_and_the_rerun_makes_no_request(pool, clean, served):
    server, name = served['server'], PREFIX + 'web.qcow2'
    url, checksum = server.url('disk.qcow2'), sha256(served['dir'] / 'disk.qcow2')
    args = {'pool': pool, 'name': name, 'url': url, 'checksum': checksum, 'format': 'qcow2', 'capacity': '64M'}
    check, real, rerun, _check_rerun = four_ways(args, served)
    assert real['actions'] == ['download', 'import', 'resize'], real
    assert check['diff'] == real['diff'], 'format and capacity given: check mode predicts the diff exactly'
    assert real['diff']['after'] == {'exists': True, 'format': 'qcow2', 'capacity': 64 * MIB, 'backing': None,
                                     'url': url, 'checksum': checksum}
    assert server.count('disk.qcow2') == 1, 'check mode or a rerun downloaded the image'
    same_image(served['dir'] / 'disk.qcow2', vol_path(pool, name))
    assert record(pool, name)['recipe'] == {'url': url, 'checksum': checksum}
    assert rerun['diff']['before'] == rerun['diff']['after']
    assert leftovers(served, pool) == ([checksum.replace(':', '-')], [name])


def test_xz_and_gz_with_a_checksum_file_share_one_fetch_of_it_per_run(pool, clean, served):
    server = served['server']
    args = {'pool': pool, 'checksum': server.url('SHA256SUMS'), 'volumes': [
        {'name': PREFIX + 'from-xz.qcow2', 'url': server.url('disk.qcow2.xz')},
        {'name': PREFIX + 'from-gz.qcow2', 'url': server.url('disk.qcow2.gz')}]}
    runs = four_ways(args, served)
    assert [item['actions'] for item in runs[1]['volumes']] == [['download', 'import']] * 2
    assert [item['volume']['format'] for item in runs[1]['volumes']] == ['qcow2', 'qcow2']
    for item in args['volumes']:
        same_image(served['dir'] / 'disk.qcow2', vol_path(pool, item['name']))
    assert (server.count('disk.qcow2.xz'), server.count('disk.qcow2.gz')) == (1, 1)
    assert server.count('SHA256SUMS') == 4, 'one request for the checksum file per run'
    assert runs[1]['volumes'][0]['volume']['capacity'] == 48 * MIB
    assert runs[1]['diff'][0]['after']['checksum'] == sha256(served['dir'] / 'disk.qcow2.xz')


def test_a_second_volume_from_the_same_image_under_another_url_is_a_cache_hit(pool, clean, served):
    server = served['server']
    os.mkdir(str(served['dir'] / 'mirror'))
    shutil.copy(str(served['dir'] / 'disk.qcow2'), str(served['dir'] / 'mirror' / 'disk.qcow2'))
    checksum = sha256(served['dir'] / 'disk.qcow2')
    volume({'pool': pool, 'name': PREFIX + 'first.qcow2', 'url': server.url('disk.qcow2'), 'checksum': checksum},
           served)
    check, real, _rerun, _check_rerun = four_ways(
        {'pool': pool, 'name': PREFIX + 'second.qcow2', 'url': server.url('mirror/disk.qcow2'), 'checksum': checksum},
        served)
    assert real['actions'] == ['import'] and check['diff'] == real['diff'], (check, real)
    assert (server.count('disk.qcow2'), server.count('mirror/disk.qcow2')) == (1, 0)

    moved = four_ways({'pool': pool, 'name': PREFIX + 'first.qcow2', 'url': server.url('mirror/disk.qcow2'),
                       'checksum': checksum}, served)
    assert moved[1]['actions'] == ['record'] and moved[1]['reasons'][0].endswith('(same checksum, not downloaded again)')
    assert record(pool, PREFIX + 'first.qcow2')['recipe']['url'] == server.url('mirror/disk.qcow2')
    assert (server.count('disk.qcow2'), server.count('mirror/disk.qcow2')) == (1, 0)


def test_two_volumes_of_a_batch_from_one_url_share_one_download(pool, clean, served):
    server = served['server']
    item = {'url': server.url('disk.qcow2.xz'), 'checksum': sha256(served['dir'] / 'disk.qcow2.xz')}
    args = {'pool': pool, 'volumes': [dict(item, name=PREFIX + 'one.qcow2'), dict(item, name=PREFIX + 'two.qcow2')]}
    runs = four_ways(args, served)
    for run in runs[:2]:
        assert [entry['actions'] for entry in run['volumes']] == [['download', 'import'], ['import']], run
    assert server.count('disk.qcow2.xz') == 1


def test_a_checksum_mismatch_fails_naming_url_expected_and_got_and_leaves_nothing(pool, clean, served):
    url, wrong = served['server'].url('disk.qcow2.xz'), 'sha256:' + '0' * 64
    for check in (True, False):
        result = volume({'pool': pool, 'name': PREFIX + 'bad.qcow2', 'url': url, 'checksum': wrong}, served, check)
        if check:
            assert result['changed'] and result['actions'] == ['download', 'import'], result
            continue
        assert result['failed'], result
        got = sha256(served['dir'] / 'disk.qcow2.xz')
        assert result['msg'] == 'checksum mismatch for %s: expected %s, got %s; nothing was kept or imported' % (
            url, wrong, got)
    assert leftovers(served, pool) == ([], [])


def test_a_404_and_a_timeout_give_clear_errors_and_leave_nothing(pool, clean, served):
    server = served['server']
    server.stall('slow.qcow2', 4)
    for name, timeout, message in (('missing.qcow2', 30, 'cannot download %s: HTTP Error 404: File not found'),
                                   ('slow.qcow2', 1, 'download of %s failed: timed out (url_timeout is the limit')):
        url = server.url(name)
        result = volume({'pool': pool, 'name': PREFIX + name, 'url': url, 'checksum': 'none', 'url_timeout': timeout},
                        served)
        assert result['failed'] and result['msg'].startswith(message % url), result
        assert result['failed_object'] == "volume '%s' in pool '%s'" % (PREFIX + name, pool)
    assert leftovers(served, pool) == ([], [])


def test_a_changed_checksum_imports_again_but_not_while_an_overlay_uses_the_volume(pool, clean, served):
    """An overlay volume is the user here: a domain is the same refusal (tests/integration/test_libvirt_volume.py),
    and defining one makes libvirtd probe QEMU, which takes a minute on a host whose /dev/kvm it cannot open."""
    server, name, overlay = served['server'], PREFIX + 'latest.qcow2', PREFIX + 'latest-overlay.qcow2'
    args = {'pool': pool, 'name': name, 'url': server.url('disk.qcow2'), 'checksum': server.url('SHA256SUMS')}
    volume(args, served)
    old_checksum = sha256(served['dir'] / 'disk.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(served['dir'] / 'disk.qcow2'), '32M'], check=True)
    write_sums(served['dir'])
    new_checksum = sha256(served['dir'] / 'disk.qcow2')
    volume({'pool': pool, 'name': overlay, 'backing': {'volume': name}}, served)
    for check in (True, False):
        refused = volume(args, served, check)
        assert refused['failed'] and not refused['changed'], refused
        assert 'in use by overlay volume %s/%s' % (pool, overlay) in refused['msg'], refused
        assert new_checksum in refused['msg'], refused
    assert server.count('disk.qcow2') == 1, 'an image was downloaded for a volume that cannot be imported again'
    volume({'pool': pool, 'name': overlay, 'state': 'absent'}, served)
    check, real, _rerun, _check_rerun = four_ways(args, served)
    assert real['actions'] == ['download', 'reimport'], real
    assert (check['diff']['before']['checksum'], check['diff']['after']['checksum']) == (old_checksum, new_checksum)
    assert real['differences'] == ['url: downloaded with checksum %s, the checksum is now %s'
                                   % (old_checksum, new_checksum)]
    assert real['volume']['capacity'] == 32 * MIB and real['diff']['after']['checksum'] == new_checksum
    assert server.count('disk.qcow2') == 2


def test_a_download_stopped_by_sigterm_leaves_no_temporary_file(pool, clean, served):
    """Ansible stops a task with SIGTERM (a timeout, ^C): the temporary file goes, the cache keeps nothing."""
    server = served['server']
    server.stall('stalled.qcow2', 30)
    args = {'ANSIBLE_MODULE_ARGS': {'pool': pool, 'name': PREFIX + 'stalled.qcow2', 'url': server.url('stalled.qcow2'),
                                    'checksum': 'none', 'download_cache': served['cache']}}
    with tempfile.NamedTemporaryFile('w', suffix='.json') as handle:
        json.dump(args, handle)
        handle.flush()
        proc = subprocess.Popen(
            [sys.executable, '-m', 'ansible_collections.virtops.hypervisor.plugins.modules.libvirt_volume', handle.name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(COLLECTIONS)))
        deadline = time.monotonic() + 20
        while not (os.path.isdir(served['cache']) and os.listdir(served['cache'])):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    result = json.loads(out or '{}') if out.strip().startswith('{') else {'stderr': err}
    assert result.get('failed') and 'interrupted by signal 15' in result.get('msg', ''), result
    assert leftovers(served, pool) == ([], [])
