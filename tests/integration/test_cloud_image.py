# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cloud test image (scripts/build-cloud-image.sh) is published with checksum files that match it.

What a booted guest of the image does (SSH login with the seed's key, the seed's file and hostname, the
root grown to the overlay, sudo, cloud-init done, the guest agent) is checked on the three lab VMs of
tests/integration/host/test_cloud_lab.py, which boot once per `make test`.
"""

from __future__ import annotations

import hashlib

import pytest

from virtops_cloud import build_image


@pytest.fixture(scope='module')
def image():
    return build_image()


def test_published_files_match_their_checksums(image):
    for sums in ('SHA256SUMS', 'SHA512SUMS'):
        algorithm = hashlib.new(sums[:6].lower())
        lines = (image.parent / sums).read_text(encoding='utf-8').splitlines()
        names = {}
        for line in lines:
            digest, name = line.split('  ', 1)
            names[name] = digest
        assert sorted(names) == [image.name, image.name + '.xz']
        for name, digest in names.items():
            check = algorithm.copy()
            with open(image.parent / name, 'rb') as stream:
                for block in iter(lambda: stream.read(1 << 20), b''):
                    check.update(block)
            assert check.hexdigest() == digest, '%s: %s does not match %s' % (sums, name, digest)
