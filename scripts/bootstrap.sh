#!/usr/bin/env bash
# Bring a fresh Debian 12 machine (root) to where `make demo` and `make test` run: the apt packages
# every clone builds on (system-wide), podman set up (scripts/podman-setup.sh), then this checkout's
# virtualenvs (scripts/venv.sh, which any user runs in their own clone). Every step is skipped when
# already done. The second line of packages serves tests/integration/test_virt_manager.py: a virtual
# screen, the accessibility bus that reads virt-manager's window, and `import` for its screenshot.
# The third line builds the cloud test image (scripts/build-cloud-image.sh) and reaches its guests: SSH,
# and nc to carry it into the network namespace of the container they run in (an ssh ProxyCommand).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
readonly PACKAGES=(python3 python3-venv python3-dev gcc make rsync git shellcheck pkg-config libvirt-dev pandoc
    xvfb at-spi2-core python3-pyatspi dbus imagemagick
    debootstrap fdisk e2fsprogs qemu-utils xz-utils openssh-client netcat-openbsd)

# shellcheck source=scripts/lib.sh
source "${top}/scripts/lib.sh"

die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

[[ ${EUID} -eq 0 ]] || die "run as root (apt-get and podman need it)"

ensure_packages bootstrap "${PACKAGES[@]}"

"${top}/scripts/podman-setup.sh"

# The checkout's virtualenvs (scripts/venv.sh needs no root: other users run `make venv` in their clones).
"${top}/scripts/venv.sh"
