# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Boot the cloud test image (scripts/build-cloud-image.sh) under plain QEMU, without libvirt.

A guest gets a fresh qcow2 overlay of the image, a NoCloud seed ISO (volume id ``cidata``), user
networking whose only way in is a port forward on this machine's loopback to the guest's port 22
(no bridge, no tap: nothing changes in this machine's network namespace) and a guest agent socket.

    image = build_image()
    key = ssh_keypair(tmp_path)
    seed = make_seed(tmp_path / 'seed.iso', cloud_config(key.public), meta_data('vm1'))
    with CloudGuest(image, seed, tmp_path / 'vm1', disk_size='4G') as guest:
        guest.wait_for_ssh(key)                       # seconds from QEMU's start to a login
        guest.ssh(key, 'cat /etc/hostname')
        guest.agent('guest-ping')

Under TCG a first boot takes about a minute to SSH (docs/development.md, "The cloud test image").
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections import namedtuple
from pathlib import Path

from virtops_testlib import REPO

IMAGE_USER = 'debian'
# guest-sync ids start here: far from the small integers other agent commands return.
SYNC_BASE = 7 << 40
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


def cloud_config(public_key, write_files=(), **extra):
    """user-data: the image's default user with public_key, the files given ({'path':, 'content':})."""
    config = {'ssh_authorized_keys': [public_key]}
    if write_files:
        config['write_files'] = list(write_files)
    config.update(extra)
    # JSON is YAML: no YAML library needed.
    return '#cloud-config\n' + json.dumps(config, indent=2) + '\n'


def meta_data(hostname, instance_id=None):
    return 'instance-id: %s\nlocal-hostname: %s\n' % (instance_id or hostname, hostname)


def make_seed(path, user_data, meta, network_config=None):
    """A NoCloud seed ISO at path (files user-data, meta-data and, if given, network-config)."""
    path = Path(path)
    files = path.with_name(path.name + '.d')
    files.mkdir(parents=True, exist_ok=True)
    (files / 'user-data').write_text(user_data, encoding='utf-8')
    (files / 'meta-data').write_text(meta, encoding='utf-8')
    if network_config is not None:
        (files / 'network-config').write_text(network_config, encoding='utf-8')
    subprocess.run(['xorriso', '-as', 'mkisofs', '-quiet', '-output', str(path), '-volid', 'cidata',
                    '-joliet', '-rock', str(files)], check=True, capture_output=True)
    return path


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class CloudGuest:
    """One QEMU (TCG) guest booting the image from an overlay in workdir; stopped on exit of the with block.

    t0 is QEMU's start (time.monotonic()); the serial console goes to workdir/console.log.
    """

    def __init__(self, image, seed, workdir, memory=1024, disk_size=None, port=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.image = Path(image)
        self.seed = Path(seed)
        self.memory = memory
        self.disk_size = disk_size
        self.port = port or free_port()
        self.overlay = self.workdir / 'disk.qcow2'
        self.console = self.workdir / 'console.log'
        self.agent_path = self.workdir / 'qga.sock'
        self.proc = None
        self.t0 = None
        self._agent = None
        self._agent_buffer = b''
        self._sync_id = SYNC_BASE

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def create_overlay(self):
        argv = ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', str(self.image), str(self.overlay)]
        subprocess.run(argv + ([self.disk_size] if self.disk_size else []), check=True)

    def argv(self):
        return [
            'qemu-system-x86_64', '-name', self.workdir.name, '-machine', 'pc', '-accel', 'tcg', '-cpu', 'max',
            '-m', str(self.memory), '-smp', '1', '-nodefaults', '-display', 'none', '-monitor', 'none',
            '-serial', 'file:%s' % self.console,
            '-drive', 'file=%s,if=virtio,format=qcow2,discard=unmap' % self.overlay,
            '-drive', 'file=%s,media=cdrom,readonly=on' % self.seed,
            '-netdev', 'user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22' % self.port,
            '-device', 'virtio-net-pci,netdev=net0',
            '-chardev', 'socket,path=%s,server=on,wait=off,id=qga0' % self.agent_path,
            '-device', 'virtio-serial', '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
        ]

    def start(self):
        """Boot: a new overlay unless one exists (a second start boots the same disk again)."""
        if not self.overlay.exists():
            self.create_overlay()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.workdir / 'qemu.log', 'ab'))  # pylint: disable=consider-using-with

    def elapsed(self):
        return time.monotonic() - self.t0

    def console_text(self):
        return self.console.read_text(encoding='utf-8', errors='replace') if self.console.exists() else ''

    def _check_running(self):
        if self.proc.poll() is not None:
            raise RuntimeError('QEMU exited with %s: %s\n--- console (tail):\n%s' % (
                self.proc.returncode, (self.workdir / 'qemu.log').read_text(errors='replace')[-2000:],
                self.console_text()[-3000:]))

    def _fail(self, what, timeout):
        raise TimeoutError('%s: no %s after %d s\n--- console (tail):\n%s' % (
            self.workdir.name, what, timeout, self.console_text()[-4000:]))

    def ssh_banner(self):
        """True once sshd in the guest answers (the forwarded port accepts before the guest listens)."""
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=5) as sock:
                return sock.recv(64).startswith(b'SSH-')
        except OSError:
            return False

    def ssh_argv(self, key, command, user=IMAGE_USER):
        return ['ssh', '-q', '-p', str(self.port), '-i', str(key.private), '-o', 'IdentitiesOnly=yes',
                '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
                '-o', 'ConnectTimeout=10', '%s@127.0.0.1' % user, command]

    def ssh(self, key, command, user=IMAGE_USER, check=True, timeout=60, stdin=None):
        """Run command in the guest (stdin: text for its standard input); the CompletedProcess (text)."""
        proc = subprocess.run(self.ssh_argv(key, command, user), capture_output=True, text=True, check=False,
                              timeout=timeout, input=stdin if stdin is not None else '')
        if check and proc.returncode != 0:
            raise RuntimeError('ssh %s@%s: %r failed (rc %d): %s' % (
                user, self.workdir.name, command, proc.returncode, proc.stderr))
        return proc

    def wait_for_ssh(self, key, command='true', timeout=300, user=IMAGE_USER):
        """Wait until command runs over SSH with key (cloud-init has put the key in place); seconds since t0."""
        deadline = self.t0 + timeout
        while time.monotonic() < deadline:
            self._check_running()
            if self.ssh_banner() and self.ssh(key, command, user, check=False, timeout=30).returncode == 0:
                return self.elapsed()
            time.sleep(1)
        return self._fail('SSH login as %s' % user, timeout)

    def agent(self, command, arguments=None, timeout=60):
        """The guest agent's answer ({'return': ...}) to command.

        One connection is kept for the guest's life: a client that connects and leaves made qemu-ga spin
        (and delay poweroff by 90 s). Before the first command, guest-sync drops whatever an agent that
        started late left in the channel.
        """
        deadline = time.monotonic() + timeout
        if self._agent is None:
            self._agent = socket.socket(socket.AF_UNIX)
            self._agent.connect(str(self.agent_path))
            self._sync(deadline)
        return self._request({'execute': command, **({'arguments': arguments} if arguments else {})}, deadline)

    def _sync(self, deadline):
        while True:
            self._sync_id += 1
            self._send({'execute': 'guest-sync', 'arguments': {'id': self._sync_id}})
            try:
                while self._read_answer(min(deadline, time.monotonic() + 5)).get('return') != self._sync_id:
                    pass
                return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    def _request(self, message, deadline):
        self._send(message)
        while True:
            answer = self._read_answer(deadline)
            # A late answer to an earlier guest-sync is not this request's.
            if not self._is_sync_answer(answer):
                return answer

    def _is_sync_answer(self, answer):
        value = answer.get('return')
        return isinstance(value, int) and SYNC_BASE < value <= self._sync_id

    def _send(self, message):
        self._agent.sendall(json.dumps(message).encode() + b'\n')

    def _read_answer(self, deadline):
        while True:
            line, sep, rest = self._agent_buffer.partition(b'\n')
            if sep:
                self._agent_buffer = rest
                try:
                    return json.loads(line)
                except ValueError:
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError('%s: no answer from the guest agent' % self.workdir.name)
            self._agent.settimeout(remaining)
            try:
                chunk = self._agent.recv(65536)
            except socket.timeout as exc:
                raise TimeoutError('%s: no answer from the guest agent' % self.workdir.name) from exc
            if not chunk:
                raise RuntimeError('%s: the guest agent socket closed' % self.workdir.name)
            self._agent_buffer += chunk

    def shutdown(self, key, timeout=120):
        """Power the guest off from inside (sudo poweroff) and wait for QEMU to exit; seconds it took."""
        start = time.monotonic()
        self.ssh(key, 'sudo systemctl poweroff', check=False, timeout=30)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._fail('poweroff', timeout)
        self._close_agent()
        return time.monotonic() - start

    def _close_agent(self):
        if self._agent is not None:
            self._agent.close()
            self._agent = None
            self._agent_buffer = b''

    def stop(self):
        """Kill QEMU if it still runs (the overlay stays in workdir)."""
        self._close_agent()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def tools_missing():
    """The host commands these helpers need that are not on PATH."""
    return [tool for tool in ('qemu-system-x86_64', 'qemu-img', 'ssh', 'ssh-keygen', 'xorriso')
            if shutil.which(tool) is None]
