# Copyright (c) virtops.hypervisor contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Images by URL: checksums, checksum files, a download cache, streaming decompression (no libvirt here).

A download goes through Ansible's own URL handling (``fetch_url``: proxies, CA bundle, client certificates,
headers, timeouts, as ``get_url``), so a module using this has the URL options of
:data:`URL_OPTIONS` at its top level. The body is streamed into a temporary file in the cache
directory, hashed as it arrives (the checksum is of what the URL serves: the compressed file, as
SHA256SUMS files list it), decompressed on the way (``lzma``/``zlib``, no shell; zero blocks are left
as holes), verified, and only then renamed into place: the cache holds verified images or nothing. A
mismatch, an HTTP error or a timeout removes the temporary file.

Cache entries are named by the checksum of what was served and how it was decompressed
(``sha256-<hex>.unxz``), so every volume made from one image shares one download, whatever its URL.
``checksum: none`` names the entry after the URL instead (``url-<sha256 of the url>``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import re
import socket
import zlib
from urllib.parse import unquote, urlsplit

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.module_utils.urls import fetch_url
from ansible_collections.virtops.hypervisor.plugins.module_utils._contract import ModuleFailure
from ansible_collections.virtops.hypervisor.plugins.module_utils._image_files import TempImage, stale_temp_files

try:
    import lzma
except ImportError:  # Python built without liblzma: only .xz needs it, and the error says so
    lzma = None
    _DECODE_ERRORS = (zlib.error, EOFError)
else:
    _DECODE_ERRORS = (zlib.error, EOFError, lzma.LZMAError)

ALGORITHMS = {'sha224': 56, 'sha256': 64, 'sha384': 96, 'sha512': 128}
DECOMPRESS = ('auto', 'xz', 'gz', 'none')
MAGIC = {'xz': b'\xfd7zXZ\x00', 'gz': b'\x1f\x8b'}
CACHE_SUFFIX = {'xz': '.unxz', 'gz': '.ungz', 'none': ''}
DEFAULT_CACHE = '/var/cache/virtops/images'
CHUNK = 1 << 20
HEAD_BYTES = 512  # read before the temporary file exists: enough for the magic bytes
HOLE_BLOCK = 64 << 10
CHECKSUM_FILE_LIMIT = 4 << 20
URL_SCHEMES = ('http', 'https', 'ftp', 'file')

URL_OPTIONS = {
    'url_headers': {'type': 'dict'},
    'url_timeout': {'type': 'int', 'default': 30},
    'validate_certs': {'type': 'bool', 'default': True},
    'ca_path': {'type': 'path'},
    'client_cert': {'type': 'path'},
    'client_key': {'type': 'path'},
    'use_proxy': {'type': 'bool', 'default': True},
    'url_username': {'type': 'str'},
    'url_password': {'type': 'str', 'no_log': True},
    'force_basic_auth': {'type': 'bool', 'default': False},
    'download_cache': {'type': 'path', 'default': DEFAULT_CACHE},
}


def _where(label):
    return '%s: ' % label if label else ''


# --- checksums ---------------------------------------------------------------------------------

class Checksum(object):
    """A checksum as asked: a literal (``sha256:<hex>``), a checksum file URL, or ``none``."""

    def __init__(self, kind, algorithm=None, digest=None, url=None):
        self.kind = kind
        self.algorithm = algorithm
        self.digest = digest
        self.url = url

    @property
    def text(self):
        """'sha256:<hex>' or 'none' (a checksum file URL must be resolved first)."""
        return 'none' if self.kind == 'none' else '%s:%s' % (self.algorithm, self.digest)

    def resolved(self, text):
        algorithm, digest = text.split(':', 1)
        return Checksum('literal', algorithm, digest)


def parse_checksum(value, label):
    """A Checksum from 'sha256:<hex>', 'sha512:https://.../SHA512SUMS', 'https://.../SHA256SUMS' or 'none'."""
    text = to_text(value).strip()
    if text.lower() == 'none':
        return Checksum('none')
    if _is_url(text):
        return Checksum('file', url=text)
    algorithm, sep, rest = text.partition(':')
    algorithm = algorithm.lower()
    if sep and algorithm in ALGORITHMS and _is_url(rest):
        return Checksum('file', algorithm=algorithm, url=rest)
    if not sep or algorithm not in ALGORITHMS:
        raise ModuleFailure("%s'%s' is not a checksum: give <algorithm>:<hex> (algorithm one of %s), the URL of a "
                            "checksum file such as SHA256SUMS, or none" % (_where(label), value, ', '.join(sorted(ALGORITHMS))))
    digest = rest.strip().lower()
    if not re.match(r'^[0-9a-f]+$', digest) or len(digest) != ALGORITHMS[algorithm]:
        raise ModuleFailure("%s'%s' is not a %s checksum: it takes %d hex digits"
                            % (_where(label), value, algorithm, ALGORITHMS[algorithm]))
    return Checksum('literal', algorithm, digest)


def _is_url(text):
    return urlsplit(text).scheme in URL_SCHEMES and '://' in text


def url_file_name(url):
    """The file name a URL serves, as checksum files list it: 'debian-12.qcow2' of 'https://h/x/debian-12.qcow2?a=b'."""
    return unquote(posixpath.basename(urlsplit(url).path))


def algorithm_of_file(url):
    """The algorithm a checksum file's name says (SHA512SUMS, image.sha256, sha256sum.txt), or None."""
    name = url_file_name(url).lower()
    found = [algorithm for algorithm in ALGORITHMS if algorithm in name]
    return max(found, key=len) if found else None


_BSD_LINE = re.compile(r'^(?P<tag>SHA\d+)\s*\((?P<name>.+)\)\s*=\s*(?P<digest>[0-9a-fA-F]+)$')
_GNU_LINE = re.compile(r'^(?P<digest>[0-9a-fA-F]+)\s+\*?(?P<name>.+)$')


def find_checksum(text, name, algorithm, file_url):
    """'<algorithm>:<hex>' for the file name in a checksum file (GNU '<hex>  name', '<hex> *name' or BSD
    'SHA256 (name) = <hex>' lines); algorithm from the BSD tag, the one given, or the length of the hex."""
    for line in to_text(text, errors='surrogate_or_replace').splitlines():
        line = line.strip()
        match = _BSD_LINE.match(line) or _GNU_LINE.match(line)
        if not match or _listed_name(match.group('name')) != name:
            continue
        digest = match.group('digest').lower()
        tag = match.groupdict().get('tag')
        found = tag.lower() if tag else algorithm or _algorithm_of_length(len(digest))
        if found not in ALGORITHMS or len(digest) != ALGORITHMS[found]:
            raise ModuleFailure('checksum file %s lists %s with %s, which is not a %s checksum'
                                % (file_url, name, digest, found or 'known'))
        return '%s:%s' % (found, digest)
    raise ModuleFailure('checksum file %s does not list %s: check url and checksum (the file names the files by '
                        'their base name)' % (file_url, name))


def _listed_name(name):
    name = name.strip()
    return name[2:] if name.startswith('./') else name


def _algorithm_of_length(length):
    return next((algorithm for algorithm, size in ALGORITHMS.items() if size == length), None)


# --- decompression -----------------------------------------------------------------------------

def compression_by_suffix(url):
    name = url_file_name(url).lower()
    return 'xz' if name.endswith('.xz') else 'gz' if name.endswith('.gz') else None


def effective_compression(decompress, url, head):
    """How to decompress, from the option and the first bytes served. auto: the magic bytes decide; a URL
    ending in .xz or .gz whose data does not start with that format's magic is refused (a server that
    decompressed it on the way, an error page)."""
    if decompress != 'auto':
        return decompress
    by_magic = next((kind for kind, magic in MAGIC.items() if head.startswith(magic)), None)
    by_suffix = compression_by_suffix(url)
    if by_suffix and by_magic != by_suffix:
        raise ModuleFailure('%s ends in .%s but what it serves does not start as %s data (first bytes %s): set '
                            'decompress to say how to read it' % (url, by_suffix, by_suffix, _hex(head[:8])))
    return by_magic or 'none'


def _hex(data):
    return ' '.join('%02x' % byte for byte in bytearray(data)) or 'none'


class _Decoder(object):
    """Streaming xz or gzip decompression, over concatenated streams (pixz, pigz write several)."""

    def __init__(self, kind):
        if kind == 'xz' and lzma is None:
            raise ModuleFailure('this Python has no lzma module: .xz images cannot be decompressed on the target '
                                '(install a Python built with liblzma, or give an uncompressed or .gz URL)')
        self.kind = kind
        self._new()

    def _new(self):
        self.engine = lzma.LZMADecompressor() if self.kind == 'xz' else zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data):
        out = []
        while data:
            out.append(self.engine.decompress(data))
            finished = self.engine.eof
            data = self.engine.unused_data if finished else b''
            if finished and data:
                self._new()
        return b''.join(out)

    def ended(self):
        return self.engine.eof


class _SparseWriter(object):
    """Writes to a file descriptor, leaving blocks of zeros as holes."""

    ZEROS = bytes(HOLE_BLOCK)

    def __init__(self, fd):
        self.fd = fd
        self.offset = 0

    def write(self, data):
        view = memoryview(data)
        for start in range(0, len(view), HOLE_BLOCK):
            block = view[start:start + HOLE_BLOCK]
            if block != self.ZEROS[:len(block)]:
                os.lseek(self.fd, self.offset, os.SEEK_SET)
                os.write(self.fd, block)
            self.offset += len(block)

    def close(self):
        os.ftruncate(self.fd, self.offset)
        os.fsync(self.fd)


# --- the cache ---------------------------------------------------------------------------------

def cache_key(url, checksum):
    """'sha256-<hex>' for a checksum, 'url-<sha256 of the url>' for checksum none."""
    if checksum.kind == 'none':
        return 'url-%s' % hashlib.sha256(to_bytes(url)).hexdigest()
    return '%s-%s' % (checksum.algorithm, checksum.digest)


class ImageCache(object):
    """Verified downloads in one directory of the target."""

    def __init__(self, module, directory):
        self.module = module
        self.directory = directory

    def path(self, key, compression):
        return os.path.join(self.directory, key + CACHE_SUFFIX[compression])

    def lookup(self, url, checksum, decompress):
        """The cached image for url and checksum as decompress would leave it, or None (never reads the image,
        but its first bytes when decompress is auto)."""
        key = cache_key(url, checksum)
        if decompress != 'auto':
            return _existing(self.path(key, decompress))
        for compression in ('xz', 'gz'):
            if _existing(self.path(key, compression)):
                return self.path(key, compression)
        plain = _existing(self.path(key, 'none'))
        # an entry that decompress: none kept compressed is not what auto makes of the same download
        if plain and not any(_head(plain).startswith(magic) for magic in MAGIC.values()):
            return plain
        return None

    def download(self, url, checksum, decompress, label=''):
        """Download url into the cache (verified, decompressed) and return the path of the image."""
        self._prepare()
        response = open_url_checked(self.module, url, label)
        hasher = hashlib.new(checksum.algorithm) if checksum.kind != 'none' else None
        head = _read(response, url, label, HEAD_BYTES)
        compression = effective_compression(decompress, url, head)
        final = self.path(cache_key(url, checksum), compression)
        for stale in stale_temp_files(final):
            os.unlink(stale)
        with TempImage(final) as tmp:
            served = _stream(response, head, hasher, compression, tmp.fd, url, label)
            _check_length(response, served, url, label)
            if hasher is not None and hasher.hexdigest() != checksum.digest:
                raise ModuleFailure('%schecksum mismatch for %s: expected %s, got %s:%s; nothing was kept or imported'
                                    % (_where(label), url, checksum.text, checksum.algorithm, hasher.hexdigest()))
            os.rename(tmp.name, final)
        return final

    def _prepare(self):
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ModuleFailure('cannot create the download cache %s: %s (set download_cache to a directory the '
                                'module may write)' % (self.directory, to_native(exc)))


def _existing(path):
    return path if os.path.isfile(to_bytes(path, errors='surrogate_or_strict')) else None


def _head(path):
    with open(to_bytes(path, errors='surrogate_or_strict'), 'rb') as handle:
        return handle.read(8)


def _stream(response, head, hasher, compression, fd, url, label):
    """Hash, decompress and write the body (head already read); the number of bytes served."""
    decoder = _Decoder(compression) if compression != 'none' else None
    writer = _SparseWriter(fd)
    served = 0
    data = head
    while data:
        served += len(data)
        if hasher is not None:
            hasher.update(data)
        try:
            writer.write(decoder.feed(data) if decoder else data)
        except _DECODE_ERRORS as exc:
            raise ModuleFailure('%s%s is not valid %s data (%s): check url and decompress'
                                % (_where(label), url, compression, to_native(exc)))
        data = _read(response, url, label, CHUNK)
    if decoder is not None and not decoder.ended():
        raise ModuleFailure('%s%s ended inside its %s data: the download is truncated' % (_where(label), url, compression))
    writer.close()
    return served


def _check_length(response, served, url, label):
    expected = response.headers.get('Content-Length') if hasattr(response, 'headers') else None
    if expected and expected.isdigit() and int(expected) != served:
        raise ModuleFailure('%s%s sent %d bytes of %s: the download was cut off; try again'
                            % (_where(label), url, served, expected))


# --- HTTP --------------------------------------------------------------------------------------

def open_url_checked(module, url, label=''):
    """The response to a GET of url through fetch_url, or a ModuleFailure with the status and the reason."""
    params = module.params
    try:
        response, info = fetch_url(module, url, headers=params.get('url_headers'), timeout=params.get('url_timeout'),
                                   use_proxy=params.get('use_proxy'), ca_path=params.get('ca_path'), decompress=False)
    except ModuleFailure as failure:  # fetch_url ends with fail_json on some errors
        raise ModuleFailure('%scannot download %s: %s' % (_where(label), url, failure.msg))
    status = info.get('status')
    if response is None or not _ok(url, status):
        reason = info.get('msg') or 'no answer'
        if status not in (None, -1) and str(status) not in reason:
            reason += ' (HTTP %s)' % status
        raise ModuleFailure('%scannot download %s: %s' % (_where(label), url, reason))
    return response


def _ok(url, status):
    """HTTP(S) must answer 200 (a redirect is followed by fetch_url); ftp and file have no status to check."""
    return status == 200 or urlsplit(url).scheme not in ('http', 'https')


def _read(response, url, label, size):
    try:
        return response.read(size)
    except (socket.timeout, OSError, ValueError, http.client.HTTPException) as exc:
        raise ModuleFailure('%sdownload of %s failed: %s (url_timeout is the limit for each read, in seconds)'
                            % (_where(label), url, to_native(exc) or type(exc).__name__))


def fetch_checksum_file(module, checksum_url, label=''):
    """The text of the checksum file at checksum_url (one small GET)."""
    response = open_url_checked(module, checksum_url, label)
    text = _read(response, checksum_url, label, CHECKSUM_FILE_LIMIT + 1)
    if len(text) > CHECKSUM_FILE_LIMIT:
        raise ModuleFailure('%schecksum file %s is larger than %d bytes: is it a checksum file?'
                            % (_where(label), checksum_url, CHECKSUM_FILE_LIMIT))
    return text


def checksum_from_file(text, checksum, url, label=''):
    """'<algorithm>:<hex>' for url in the text of the checksum file checksum.url names."""
    algorithm = checksum.algorithm or algorithm_of_file(checksum.url)
    try:
        return find_checksum(text, url_file_name(url), algorithm, checksum.url)
    except ModuleFailure as failure:
        raise ModuleFailure(_where(label) + failure.msg)
