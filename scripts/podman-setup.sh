#!/usr/bin/env bash
# Make rootful podman usable on this machine kind (Debian 12, hybrid cgroup v1,
# no systemd as PID 1, no container registry):
#   - crun rejects the host's hybrid cgroups -> use runc
#   - no systemd on the host -> cgroupfs cgroup manager, file events logger
#   - bounded default ulimits for containers
# Idempotent: rerunning changes nothing once the host is set up.
# Usage: scripts/podman-setup.sh
set -euo pipefail

readonly PACKAGES=(podman runc uidmap slirp4netns fuse-overlayfs debootstrap)
readonly CONF=/etc/containers/containers.conf

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

step() { printf '%s\n' "podman-setup: $*"; }
die() { printf '%s\n' "podman-setup: ERROR: $*" >&2; exit 1; }

[[ ${EUID} -eq 0 ]] || die "must run as root"

# 1. apt packages (apt-get only when something is missing)
ensure_packages podman-setup "${PACKAGES[@]}"

# 2. /etc/containers/containers.conf (rewritten only when the content differs)
desired=$(
    cat <<'EOF'
# Managed by virtops.hypervisor scripts/podman-setup.sh - local changes are overwritten.
[containers]
default_ulimits = ["nofile=1024:1024","nproc=1024:1024"]

[engine]
# crun rejects this host's hybrid (v1 + unified) cgroup layout.
runtime = "runc"
# No systemd as PID 1 on the host: no systemd cgroup manager, no journald.
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
)
if [[ -f ${CONF} ]] && [[ "$(cat "${CONF}")" == "${desired}" ]]; then
    step "containers.conf: ok"
else
    install -d -m 0755 "$(dirname "${CONF}")"
    tmp=$(mktemp "${CONF}.XXXXXX")
    printf '%s\n' "${desired}" >"${tmp}"
    chmod 0644 "${tmp}"
    mv -f "${tmp}" "${CONF}"
    step "containers.conf: written"
fi

# 3. sanity check: podman answers with the settings above
info=$(podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Host.EventLogger}}' 2>&1) ||
    die "podman info failed: ${info}"
[[ ${info} == "runc cgroupfs file" ]] || die "podman info reports '${info}', expected 'runc cgroupfs file'"
step "podman: ok (runtime/cgroup manager/events logger: ${info})"
