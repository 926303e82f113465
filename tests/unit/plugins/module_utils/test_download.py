# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Downloads by URL (_download): checksums and checksum files, the cache, decompression, HTTP failures.

The images are served by an HTTP server on 127.0.0.1 that the tests start (tests/lib/virtops_http.py):
a small qcow2 made with qemu-img, a raw image with holes, their .xz and .gz, SHA256SUMS and SHA512SUMS.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import subprocess

import pytest

from virtops_http import ImageServer
from virtops_unitlib import patch_module_args

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virtops.hypervisor.plugins.module_utils import _download as dl
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure, run_module

MIB = 1 << 20


def sha(algorithm, path):
    return '%s:%s' % (algorithm, hashlib.new(algorithm, path.read_bytes()).hexdigest())


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """{'dir': the served directory, 'server': the ImageServer}; disk.qcow2, disk.raw (with holes), their .xz/.gz."""
    root = tmp_path_factory.mktemp('served')
    raw = root / 'disk.raw'
    with open(raw, 'wb') as handle:
        handle.truncate(8 * MIB)
        handle.seek(3 * MIB)
        handle.write(b'virtops' * 4096)
    subprocess.run(['qemu-img', 'convert', '-q', '-f', 'raw', '-O', 'qcow2', str(raw), str(root / 'disk.qcow2')],
                   check=True)
    for name in ('disk.qcow2', 'disk.raw'):
        data = (root / name).read_bytes()
        (root / (name + '.xz')).write_bytes(lzma.compress(data))
        (root / (name + '.gz')).write_bytes(gzip.compress(data))
    names = sorted(path.name for path in root.iterdir())
    (root / 'SHA256SUMS').write_text(''.join('%s  %s\n' % (sha('sha256', root / n).split(':')[1], n) for n in names))
    (root / 'SHA512SUMS').write_text(''.join('%s *%s\n' % (sha('sha512', root / n).split(':')[1], n) for n in names))
    (root / 'CHECKSUM').write_text(''.join('SHA256 (%s) = %s\n' % (n, sha('sha256', root / n).split(':')[1])
                                           for n in names))
    with ImageServer(root) as server:
        yield {'dir': root, 'server': server}


def module(**params):
    with patch_module_args(params):
        return AnsibleModule(argument_spec=dict(dl.URL_OPTIONS))


def download(served, tmp_path, name, checksum=None, decompress='auto', **params):
    cache = dl.ImageCache(module(**params), str(tmp_path / 'cache'))
    checksum = dl.parse_checksum(checksum or sha('sha256', served['dir'] / name), 'checksum')
    return cache.download(served['server'].url(name), checksum, decompress, 'volumes[0]')


def cache_files(tmp_path):
    return sorted(os.listdir(str(tmp_path / 'cache'))) if (tmp_path / 'cache').exists() else []


# --- checksums ---------------------------------------------------------------------------------

def test_literal_checksums_are_normalized_and_bad_ones_named():
    parsed = dl.parse_checksum('SHA256:' + 'AB' * 32, 'checksum')
    assert (parsed.kind, parsed.text) == ('literal', 'sha256:' + 'ab' * 32)
    assert dl.parse_checksum('none', 'checksum').kind == 'none'
    for bad, message in (('sha256:abc', 'takes 64 hex digits'), ('md5:' + 'a' * 32, 'is not a checksum'),
                         ('ab' * 32, 'is not a checksum')):
        with pytest.raises(ModuleFailure, match=message) as raised:
            dl.parse_checksum(bad, 'volumes[2].checksum')
        assert raised.value.msg.startswith("volumes[2].checksum: '%s'" % bad)


def test_a_checksum_file_url_takes_its_algorithm_from_the_prefix_or_its_name():
    parsed = dl.parse_checksum('https://deb.example/images/SHA512SUMS', 'checksum')
    assert (parsed.kind, parsed.url, parsed.algorithm) == ('file', 'https://deb.example/images/SHA512SUMS', None)
    assert dl.parse_checksum('sha256:https://h/sums.txt', 'c').algorithm == 'sha256'
    assert dl.algorithm_of_file('https://h/x/SHA512SUMS') == 'sha512'
    assert dl.algorithm_of_file('https://h/x/disk.qcow2.sha256') == 'sha256'
    assert dl.algorithm_of_file('https://h/x/CHECKSUM') is None


def test_checksum_file_lines_in_gnu_binary_and_bsd_forms():
    digest = 'cd' * 32
    text = 'ff%s  other.qcow2\n%s *disk.qcow2\n' % ('0' * 62, digest)
    assert dl.find_checksum(text, 'disk.qcow2', None, 'u') == 'sha256:' + digest
    assert dl.find_checksum('%s  ./disk.qcow2' % digest, 'disk.qcow2', None, 'u') == 'sha256:' + digest
    long_digest = 'ef' * 64
    assert dl.find_checksum('SHA512 (disk.qcow2) = %s' % long_digest, 'disk.qcow2', None, 'u') == 'sha512:' + long_digest
    with pytest.raises(ModuleFailure, match='checksum file https://h/SUMS does not list disk.raw'):
        dl.find_checksum(text, 'disk.raw', None, 'https://h/SUMS')
    with pytest.raises(ModuleFailure, match='not a sha512 checksum'):
        dl.find_checksum(text, 'disk.qcow2', 'sha512', 'u')


def test_the_checksum_file_is_fetched_and_the_line_for_the_url_found(served):
    server = served['server']
    for sums, algorithm in (('SHA256SUMS', 'sha256'), ('SHA512SUMS', 'sha512'), ('CHECKSUM', 'sha256')):
        checksum = dl.parse_checksum(server.url(sums), 'checksum')
        text = dl.fetch_checksum_file(module(), checksum.url)
        found = dl.checksum_from_file(text, checksum, server.url('disk.qcow2.xz?mirror=1'))
        assert found == sha(algorithm, served['dir'] / 'disk.qcow2.xz'), sums


# --- downloads ---------------------------------------------------------------------------------

@pytest.mark.parametrize('name', ['disk.qcow2', 'disk.qcow2.xz', 'disk.qcow2.gz', 'disk.raw.xz'])
def test_an_image_is_verified_decompressed_and_cached_under_its_checksum(served, tmp_path, name):
    path = download(served, tmp_path, name)
    plain = served['dir'] / name.rsplit('.', 1)[0] if name.endswith(('.xz', '.gz')) else served['dir'] / name
    with open(path, 'rb') as handle:
        assert handle.read() == plain.read_bytes()
    key = sha('sha256', served['dir'] / name).replace(':', '-')
    assert os.path.basename(path) == key + {'xz': '.unxz', 'gz': '.ungz'}.get(name.rsplit('.', 1)[1], '')
    assert cache_files(tmp_path) == [os.path.basename(path)], 'a temporary file was left behind'
    assert oct(os.stat(path).st_mode & 0o777) == '0o600' and oct(os.stat(str(tmp_path / 'cache')).st_mode & 0o777) == '0o700'
    cache = dl.ImageCache(module(), str(tmp_path / 'cache'))
    checksum = dl.parse_checksum(sha('sha256', served['dir'] / name), 'c')
    assert cache.lookup('http://elsewhere/any-name', checksum, 'auto') == path


def test_zero_blocks_of_a_raw_image_stay_holes(served, tmp_path):
    path = download(served, tmp_path, 'disk.raw.gz')
    assert os.path.getsize(path) == 8 * MIB and os.stat(path).st_blocks * 512 < 2 * MIB


def test_a_checksum_mismatch_names_url_expected_and_got_and_leaves_nothing(served, tmp_path):
    wrong = 'sha256:' + '0' * 64
    with pytest.raises(ModuleFailure) as raised:
        download(served, tmp_path, 'disk.qcow2.xz', checksum=wrong)
    got = sha('sha256', served['dir'] / 'disk.qcow2.xz')
    assert raised.value.msg == ('volumes[0]: checksum mismatch for %s: expected %s, got %s; nothing was kept or '
                                'imported' % (served['server'].url('disk.qcow2.xz'), wrong, got))
    assert cache_files(tmp_path) == []


def test_decompress_none_keeps_the_compressed_file_and_auto_does_not_take_it(served, tmp_path):
    name = 'disk.qcow2.xz'
    path = download(served, tmp_path, name, decompress='none')
    assert open(path, 'rb').read() == (served['dir'] / name).read_bytes()
    checksum = dl.parse_checksum(sha('sha256', served['dir'] / name), 'c')
    cache = dl.ImageCache(module(), str(tmp_path / 'cache'))
    assert cache.lookup(served['server'].url(name), checksum, 'none') == path
    assert cache.lookup(served['server'].url(name), checksum, 'auto') is None


def test_a_url_ending_in_xz_that_serves_other_data_is_refused(served, tmp_path):
    (served['dir'] / 'fake.xz').write_bytes(b'<html>not found</html>')
    with pytest.raises(ModuleFailure, match=r'fake.xz ends in .xz but what it serves does not start as xz data'):
        download(served, tmp_path, 'fake.xz')
    with pytest.raises(ModuleFailure, match='is not valid xz data'):
        download(served, tmp_path, 'fake.xz', decompress='xz')
    assert cache_files(tmp_path) == []


def test_a_404_and_a_timeout_give_clear_errors_and_leave_nothing(served, tmp_path):
    with pytest.raises(ModuleFailure, match=r'volumes\[0\]: cannot download http://127.0.0.1:\d+/missing.qcow2: '
                                            r'HTTP Error 404: File not found$'):
        download(served, tmp_path, 'missing.qcow2', checksum='none')
    served['server'].stall('slow.qcow2', 3)
    with pytest.raises(ModuleFailure, match=r'download of .*slow.qcow2 failed: .*timed out.*url_timeout'):
        download(served, tmp_path, 'slow.qcow2', checksum='none', url_timeout=1)
    assert cache_files(tmp_path) == []


def test_fetch_url_failures_inside_a_module_become_module_failures(tmp_path, capsys):
    """fetch_url ends the module with fail_json on some errors: inside run_module that is one failure result."""
    with patch_module_args({}):
        mod = AnsibleModule(argument_spec=dict(dl.URL_OPTIONS))
        with pytest.raises(SystemExit):
            run_module(mod, lambda result: dl.ImageCache(mod, str(tmp_path)).download(
                'http://127.0.0.1:1/x.qcow2', dl.parse_checksum('none', 'c'), 'auto'))
    out = capsys.readouterr().out
    assert '"failed": true' in out and 'cannot download http://127.0.0.1:1/x.qcow2' in out


def test_a_file_url_is_downloaded_like_an_http_one(served, tmp_path):
    """file:// serves images already on the target (the lvhost container of the end-to-end test, a NFS mirror)."""
    image = served['dir'] / 'disk.raw.gz'
    cache = dl.ImageCache(module(), str(tmp_path / 'cache'))
    path = cache.download('file://%s' % image, dl.parse_checksum(sha('sha256', image), 'c'), 'auto')
    assert open(path, 'rb').read() == (served['dir'] / 'disk.raw').read_bytes()
    with pytest.raises(ModuleFailure, match='cannot download file:///nonexistent/x.qcow2'):
        cache.download('file:///nonexistent/x.qcow2', dl.parse_checksum('none', 'c'), 'auto')


def test_https_is_verified_against_the_system_cas_or_ca_path(served, tmp_path):
    """A self-signed server: refused by default, accepted with its certificate as ca_path (as get_url does)."""
    cert, key = str(tmp_path / 'cert.pem'), str(tmp_path / 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
                    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert],
                   check=True, capture_output=True)
    image = served['dir'] / 'disk.qcow2'
    checksum = dl.parse_checksum(sha('sha256', image), 'c')
    with ImageServer(served['dir'], tls=(cert, key)) as server:
        with pytest.raises(ModuleFailure, match='cannot download https://127.0.0.1:.*CERTIFICATE_VERIFY_FAILED'):
            dl.ImageCache(module(), str(tmp_path / 'cache')).download(server.url('disk.qcow2'), checksum, 'auto')
        path = dl.ImageCache(module(ca_path=cert), str(tmp_path / 'cache')).download(
            server.url('disk.qcow2'), checksum, 'auto')
    assert open(path, 'rb').read() == image.read_bytes()


def test_url_headers_and_basic_auth_are_sent_as_get_url_sends_them(served, tmp_path):
    download(served, tmp_path, 'disk.qcow2', url_headers={'X-Mirror-Token': 'abc'}, url_username='ops',
             url_password='secret', force_basic_auth=True)
    sent = served['server'].headers('disk.qcow2')
    assert sent['X-Mirror-Token'] == 'abc' and sent['Authorization'] == 'Basic b3BzOnNlY3JldA=='
    assert 'gzip' not in sent.get('Accept-Encoding', ''), 'the checksum is of the bytes served: no transfer decoding'
