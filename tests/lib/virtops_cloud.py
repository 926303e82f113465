# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cloud test image (scripts/build-cloud-image.sh) and an SSH key to log in to its guests with.

    image = build_image()            # the qcow2; its .xz and SHA256SUMS/SHA512SUMS beside it
    key = ssh_keypair(tmp_path)      # key.private (a path), key.public (the authorized_keys line)

Under TCG a first boot takes about 1.5 min to SSH (docs/development.md, "The cloud test image").
"""

from __future__ import annotations

import subprocess
from collections import namedtuple
from pathlib import Path

from virtops_testlib import REPO

SshKey = namedtuple('SshKey', 'private public')


def build_image(outdir=None):
    """Path of the cloud image, built (or found cached) by scripts/build-cloud-image.sh."""
    argv = [str(REPO / 'scripts' / 'build-cloud-image.sh')] + ([str(outdir)] if outdir else [])
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError('%s failed (rc %d):\n%s' % (argv[0], proc.returncode, proc.stderr[-3000:]))
    return Path(proc.stdout.strip().splitlines()[-1])


def ssh_keypair(directory, name='id_ed25519'):
    """A new passphrase-less ed25519 key pair in directory."""
    private = Path(directory) / name
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'virtops-test', '-f', str(private)],
                   check=True)
    return SshKey(private, private.with_suffix('.pub').read_text(encoding='utf-8').strip())
