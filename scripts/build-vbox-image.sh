#!/usr/bin/env bash
# Build the VirtualBox test image: the Debian sid image of scripts/build-image.sh with `contrib`
# enabled and virtualbox (7.2.x) installed, for the vbox_* integration tests; qemu-utils too, for
# the playbook that converts a KVM disk for VirtualBox. VirtualBox's kernel
# driver cannot be built or loaded in a container, so VMs cannot start there; VBoxManage manages
# them (create, modify, snapshot, clone, export, import) all the same.
#
# Usage: scripts/build-vbox-image.sh
#   Progress goes to stderr; the image tag is printed on stdout as the last line.
#   Tag: localhost/virtops-debian:sid-virtualbox-<hash>, <hash> = sha256(this script + the sid
#   image's ID), first 12 hex; an existing tag is reused ("cached").
# Running: like the sid image (systemd >= 258 needs the host's cgroup2 tree):
#   podman run -d -v /sys/fs/cgroup/unified:/sys/fs/cgroup:rw <tag>
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top

step() { printf '%s\n' "build-vbox-image: $*" >&2; }
die() { printf '%s\n' "build-vbox-image: ERROR: $*" >&2; exit 1; }

[[ ${EUID} -eq 0 ]] || die "must run as root (rootful podman)"
# shellcheck source=scripts/lib.sh
source "${top}/scripts/lib.sh"
derived_image sid virtualbox "$(readlink -f "${BASH_SOURCE[0]}")"
image_exists() { podman image exists "${tag}"; }
reuse_or_lock "/var/tmp/virtops-debian-sid-virtualbox.lock" image_exists "${tag}" "its base: ${base}"

container=virtops-build-vbox-$$
start=${SECONDS}
start_build_container "${container}" "${base}" -v /sys/fs/cgroup/unified:/sys/fs/cgroup:rw
# virtualbox's postinst tries to start virtualbox.service, which fails without the kernel driver:
# the package still installs (exit 0). The unit is disabled so containers boot "running".
if ! out=$(podman exec "${container}" bash -euc '
    sed -i "s/^\(deb .* sid main\)$/\1 contrib/" /etc/apt/sources.list
    grep -q " contrib" /etc/apt/sources.list
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends virtualbox qemu-utils
    systemctl disable virtualbox.service
    systemctl reset-failed
    apt-get clean
    find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name partial -exec rm -rf {} +
    VBoxManage --version' 2>&1); then
    printf '%s\n' "${out}" | tail -n 30 >&2
    die "installing virtualbox in ${base} failed"
fi
step "virtualbox $(printf '%s\n' "${out}" | tail -n 1) installed ($((SECONDS - start)) s)"
commit_build_container "${container}" "${tag}"

printf '%s\n' "${tag}"
