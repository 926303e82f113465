# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cloud test image (scripts/build-cloud-image.sh) boots from its own disk to what the labs rely on.

One boot under plain QEMU (TCG, user networking, SSH forwarded from loopback): a login as the image's
default user with the key from the NoCloud seed, the file and hostname the seed asks for, the root file
system grown to a bigger overlay, DHCP on the first NIC with no network config, the guest agent answering.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from virtops_cloud import CloudGuest, build_image, cloud_config, make_seed, meta_data, ssh_keypair, tools_missing
from virtops_testlib import PREFIX

GIB = 1024 ** 3
# A first boot reaches SSH in ~1 min here; three guests at once in ~2.5 min.
BOOT_TIMEOUT = 300
# Run by the guest's python3 (the image has it, as genericcloud does): what the test checks, as JSON.
GUEST_FACTS = '''
import json, os, socket, subprocess

def out(*argv):
    return subprocess.run(argv, capture_output=True, text=True).stdout.strip()

root = os.statvfs('/')
print(json.dumps({
    'hello': open('/var/lib/virtops/hello').read(),
    'hostname': socket.gethostname(),
    'root_bytes': root.f_blocks * root.f_frsize,
    'sudo': out('sudo', '-n', 'id', '-un'),
    'route': out('ip', '-4', 'route', 'show', 'default'),
    'cloud_init': out('cloud-init', 'status', '--wait').splitlines()[-1],
}))
'''


@pytest.fixture(scope='module')
def image():
    missing = tools_missing()
    assert not missing, 'not on PATH: %s (run `make bootstrap`)' % ', '.join(missing)
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


def test_boots_from_its_disk_to_ssh_with_the_seed_applied(image, tmp_path):
    name = PREFIX + 'cloud-image'
    key = ssh_keypair(tmp_path)
    token = 'written by cloud-init for %s' % name
    user_data = cloud_config(key.public, write_files=[{'path': '/var/lib/virtops/hello', 'content': token}])
    seed = make_seed(tmp_path / 'seed.iso', user_data, meta_data(name))
    with CloudGuest(image, seed, tmp_path / name, disk_size='4G') as guest:
        seconds = guest.wait_for_ssh(key, 'test -f /var/lib/virtops/hello', timeout=BOOT_TIMEOUT)
        print('%s: SSH login after %.0f s' % (name, seconds))

        # cloud-init's last stage may still run after the login: `cloud-init status --wait` waits for it.
        facts = json.loads(guest.ssh(key, 'python3 -', stdin=GUEST_FACTS, timeout=180).stdout)
        assert facts['hello'] == token
        assert facts['hostname'] == name
        # The overlay is 4 GiB; the image's root file system 2 GiB: cloud-init grew partition and file system.
        assert facts['root_bytes'] > 3 * GIB, facts
        assert facts['sudo'] == 'root'
        # No network-config in the seed: cloud-init's fallback, DHCP on the first NIC (QEMU's 10.0.2.2 router).
        assert 'via 10.0.2.2' in facts['route'], facts
        assert facts['cloud_init'] == 'status: done', facts

        assert guest.agent('guest-ping') == {'return': {}}
        host_name = guest.agent('guest-get-host-name')
        assert host_name == {'return': {'host-name': name}}
