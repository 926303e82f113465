#!/usr/bin/env bash
# Build the libvirt host test image: the Debian 12 image of scripts/build-image.sh with libvirtd,
# QEMU (TCG guests), dnsmasq, qemu-utils, LVM and file system tools and the Python bindings the
# modules need, for the integration tests that make networks, pools on loop devices and guests
# with addresses: they run in a privileged container of this image, so every bridge, dnsmasq and
# loop-device pool lives in the container's namespaces, never on the machine running the tests.
#
# Usage: scripts/build-libvirt-image.sh
#   Progress goes to stderr; the image tag is printed on stdout as the last line.
#   Tag: localhost/virtops-debian:bookworm-libvirt-<hash>, <hash> = sha256(this script + the
#   bookworm image's ID), first 12 hex; an existing tag is reused ("cached").
# Running (tests/integration/host/conftest.py does this):
#   podman run -d --privileged <tag>        (systemd as PID 1; libvirtd by socket activation)
# Set in the image for a container:
#   - qemu.conf remember_owner = 0, cgroup_controllers = [ ] (no xattrs, the host's cgroups);
#   - libvirtd removes the container's /dev/kvm node before it starts: this machine's KVM cannot
#     run guests (DESIGN.md), and a /dev/kvm libvirtd cannot open makes it re-probe QEMU on every
#     call; guests run under TCG;
#   - LVM without udev (udev_sync = 0, udev_rules = 0): no udev runs in the container.
set -euo pipefail

readonly PACKAGES=(
    libvirt-daemon-system libvirt-clients qemu-system-x86 ipxe-qemu qemu-utils dnsmasq-base iptables
    python3-libvirt python3-lxml lvm2 xfsprogs e2fsprogs util-linux mount
)
top=$(cd "$(dirname "$0")/.." && pwd)
readonly top

step() { printf '%s\n' "build-libvirt-image: $*" >&2; }
die() { printf '%s\n' "build-libvirt-image: ERROR: $*" >&2; exit 1; }

[[ ${EUID} -eq 0 ]] || die "must run as root (rootful podman)"
# shellcheck source=scripts/lib.sh
source "${top}/scripts/lib.sh"
derived_image bookworm libvirt "$(readlink -f "${BASH_SOURCE[0]}")"
image_exists() { podman image exists "${tag}"; }
reuse_or_lock "/var/tmp/virtops-debian-bookworm-libvirt.lock" image_exists "${tag}" "its base: ${base}"

container=virtops-build-libvirt-$$
start=${SECONDS}
start_build_container "${container}" "${base}"
if ! out=$(podman exec -e PACKAGES="${PACKAGES[*]}" "${container}" bash -euc '
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${PACKAGES}
    printf "%s\n" "remember_owner = 0" "cgroup_controllers = [ ]" >>/etc/libvirt/qemu.conf
    mkdir -p /etc/systemd/system/libvirtd.service.d
    printf "%s\n" "[Service]" "ExecStartPre=/bin/rm -f /dev/kvm" \
        >/etc/systemd/system/libvirtd.service.d/virtops-no-kvm.conf
    printf "%s\n" "activation {" "    udev_sync = 0" "    udev_rules = 0" "}" \
        "devices {" "    obtain_device_list_from_udev = 0" "}" >/etc/lvm/lvmlocal.conf
    [[ $(lvmconfig --typeconfig full activation/udev_sync) == udev_sync=0 ]]
    # The distribution default network would take 192.168.122.0/24 in every test container.
    rm -f /etc/libvirt/qemu/networks/autostart/default.xml
    apt-get clean
    find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name partial -exec rm -rf {} +
    libvirtd --version' 2>&1); then
    printf '%s\n' "${out}" | tail -n 30 >&2
    die "installing libvirt in ${base} failed"
fi
step "$(printf '%s\n' "${out}" | tail -n 1) installed ($((SECONDS - start)) s)"
commit_build_container "${container}" "${tag}"

printf '%s\n' "${tag}"
