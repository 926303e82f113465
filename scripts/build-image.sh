#!/usr/bin/env bash
# Build a Debian podman image for molecule/testinfra without any container
# registry: debootstrap --variant=minbase into a temp dir, then podman import.
#
# Usage: scripts/build-image.sh <bookworm|trixie|sid|12|13>
#   Progress goes to stderr (one line per step); the image tag is printed on
#   stdout as the last line, e.g.  tag=$(scripts/build-image.sh bookworm)
#   Tags: localhost/virtops-debian:<release>-<hash> and localhost/virtops-debian:<release>
#   where <hash> = sha256(this script + release + include list), first 12 hex.
#   An existing hashed tag is reused ("cached").
# Environment (optional):
#   DEBIAN_MIRROR  mirror URI for debootstrap (default: debootstrap's built-in)
#   KEEP_BUILD_DIR=1  keep the temp dir for debugging
# Run scripts/podman-setup.sh first.
#
# Running (rootful podman, no extra capabilities needed):
#   podman run -d --name c <tag>            (CMD /sbin/init -> systemd mode)
#   podman exec c systemctl is-system-running --wait   -> running
#   (retry while it says "Failed to connect to bus": right after `podman run`
#   systemd may not have its socket yet)
# sid: its systemd (>= 258) refuses the host's cgroup v1 layout ("Detected
#   unsupported legacy cgroup hierarchy, refusing execution"); give it the
#   host's cgroup2 tree:  -v /sys/fs/cgroup/unified:/sys/fs/cgroup:rw
set -euo pipefail

readonly REPO=localhost/virtops-debian
# What Ansible (apt module needs python3-apt), molecule (podman driver, systemd
# as PID 1) and testinfra need. Everything else is installed by the roles.
readonly INCLUDE=(systemd systemd-sysv dbus python3 python3-apt sudo procps iproute2 ca-certificates gnupg)
# bookworm and trixie reach "running" with nothing masked (units that cannot
# work in a container are skipped by their Condition*=). Masked anyway:
#  - apt-daily timers: background apt/dpkg would race the role under test for
#    the dpkg lock ("Could not get lock /var/lib/dpkg/lock-frontend")
#  - gettys: no consoles in a container (console-getty would grab the tty when
#    run with -t)
#  - e2scrub: no ext4 on LVM to scrub
readonly MASK_UNITS=(
    apt-daily.timer
    apt-daily-upgrade.timer
    console-getty.service
    getty@tty1.service
    e2scrub_all.timer
    e2scrub_reap.service
)

step() { printf '%s\n' "build-image: $*" >&2; }
die() { printf '%s\n' "build-image: ERROR: $*" >&2; exit 1; }
# shellcheck source=scripts/lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

usage() { die "usage: $0 <bookworm|trixie|sid|12|13>"; }

(($# == 1)) || usage
case "$1" in
    bookworm | 12) release=bookworm ;;
    trixie | 13) release=trixie ;;
    sid | unstable) release=sid ;;
    *) usage ;;
esac
[[ ${EUID} -eq 0 ]] || die "must run as root (debootstrap, rootful podman)"
for tool in debootstrap podman sha256sum flock; do
    command -v "${tool}" >/dev/null || die "${tool} not found (run scripts/podman-setup.sh)"
done

self=$(readlink -f "${BASH_SOURCE[0]}")
hash=$({ cat "${self}"; printf '\n%s\n%s\n' "${release}" "${INCLUDE[*]}"; } | sha256sum | cut -c1-12)
tag="${REPO}:${release}-${hash}"
latest="${REPO}:${release}"

# One build per release at a time (parallel molecule scenarios).
exec 9>"/var/tmp/virtops-debian-${release}.lock"
flock 9

if podman image exists "${tag}"; then
    podman tag "${tag}" "${latest}"
    step "cached ${tag}"
    printf '%s\n' "${tag}"
    exit 0
fi

# debootstrap script: bookworm's debootstrap knows trixie (-> sid); fall back to sid.
script=${release}
[[ -e /usr/share/debootstrap/scripts/${release} ]] || script=sid

workdir=$(mktemp -d /var/tmp/virtops-debian-build.XXXXXX)
rootfs=${workdir}/rootfs
trap 'remove_build_dir "${workdir}"' EXIT
trap 'exit 130' INT TERM

# The first URI in the host's apt sources (deb822 *.sources, then one-line *.list) whose suite is
# a -security suite (host_uri security) or not (host_uri main).
host_uri() {
    local want_security=0 f
    [[ $1 == security ]] && want_security=1
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f ${f} ]] || continue
        awk -v want="${want_security}" 'BEGIN { RS = ""; FS = "\n" }
            {
                uri = ""; sec = 0; suites = 0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { split($i, w, /[ \t]+/); uri = w[2] }
                    if ($i ~ /^Suites:/) { suites = 1; if ($i ~ /-security/) sec = 1 }
                }
                if (suites && sec == want && uri != "") { print uri; exit }
            }' "${f}"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f ${f} ]] || continue
        awk -v want="${want_security}" '$1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if (($(i + 1) ~ /-security$/) == want) { print $i; exit }
            }' "${f}"
    done
}

# 1. debootstrap
start=${SECONDS}
include=$(IFS=,; printf '%s' "${INCLUDE[*]}")
# debootstrap SUITE TARGET [MIRROR [SCRIPT]]: a script argument needs a mirror
# argument; without DEBIAN_MIRROR it is then read from the host's apt sources.
extra=()
if [[ ${script} != "${release}" ]]; then
    mapfile -t uris < <(host_uri main)
    extra=("${DEBIAN_MIRROR:-${uris[0]:-}}" "/usr/share/debootstrap/scripts/${script}")
    [[ -n ${extra[0]} ]] || die "no mirror found in the host's apt sources; set DEBIAN_MIRROR"
elif [[ -n ${DEBIAN_MIRROR:-} ]]; then
    extra=("${DEBIAN_MIRROR}")
fi
if ! debootstrap --variant=minbase --include="${include}" --components=main \
    "${release}" "${rootfs}" "${extra[@]}" >"${workdir}/debootstrap.out" 2>&1; then
    step "debootstrap ${release} failed; last lines:"
    if [[ -f ${rootfs}/debootstrap/debootstrap.log ]]; then
        tail -n 40 "${rootfs}/debootstrap/debootstrap.log" >&2
    fi
    tail -n 15 "${workdir}/debootstrap.out" >&2
    exit 1
fi
step "debootstrap ${release}: ok ($((SECONDS - start)) s)"

# 2. apt sources: the release from debootstrap's mirror, plus -updates and
#    -security for stable releases (security URI read from the host's sources).
mirror=$(awk '$1 == "deb" { print $2; exit }' "${rootfs}/etc/apt/sources.list")
[[ -n ${mirror} ]] || die "no deb line in the debootstrapped sources.list"
{
    printf 'deb %s %s main\n' "${mirror}" "${release}"
    if [[ ${release} != sid ]]; then
        printf 'deb %s %s-updates main\n' "${mirror}" "${release}"
        mapfile -t uris < <(host_uri security)
        if [[ -n ${uris[0]:-} ]]; then
            printf 'deb %s %s-security main\n' "${uris[0]}" "${release}"
        else
            step "no -security source on this host; image has none"
        fi
    fi
} >"${rootfs}/etc/apt/sources.list"
step "apt sources: $(awk '{ print $3 }' "${rootfs}/etc/apt/sources.list" | paste -sd' ')"
# A host whose apt is told to accept expired Release files (a mirror that lags
# behind the clock, e.g. a frozen snapshot: sid's InRelease carries
# Valid-Until) passes that on, or apt-get update fails inside the container.
cvu=''
eval "$(apt-config shell cvu Acquire::Check-Valid-Until/b)"
if [[ ${cvu} == false ]]; then
    printf 'Acquire::Check-Valid-Until "false";\n' >"${rootfs}/etc/apt/apt.conf.d/99virtops-check-valid-until"
    step "apt: Check-Valid-Until false (as on this host)"
fi

# 3. container tweaks: fresh machine-id per container, no host identity,
#    units that cannot work in a container masked.
: >"${rootfs}/etc/machine-id"
rm -f "${rootfs}/var/lib/dbus/machine-id"
ln -s /etc/machine-id "${rootfs}/var/lib/dbus/machine-id"
printf 'localhost\n' >"${rootfs}/etc/hostname"
: >"${rootfs}/etc/resolv.conf"
masked=0
for unit in "${MASK_UNITS[@]}"; do
    ln -sfn /dev/null "${rootfs}/etc/systemd/system/${unit}"
    masked=$((masked + 1))
done
step "container tweaks: machine-id emptied, ${masked} units masked"

# 4. shrink: apt lists and caches, logs (apt-get update works again inside)
find "${rootfs}/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial -exec rm -rf {} +
find "${rootfs}/var/cache/apt" -maxdepth 1 -name '*.bin' -delete
find "${rootfs}/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -delete
find "${rootfs}/var/log" -type f -delete
rm -rf "${rootfs}/var/cache/debconf/"*-old "${rootfs}/var/lib/dpkg/"*-old
# Documentation and translations of the base packages (~70 MB); copyright
# files stay. Packages installed later in the container keep theirs.
rm -rf "${rootfs}/usr/share/man/"* "${rootfs}/usr/share/info/"*
find "${rootfs}/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
find "${rootfs}/usr/share/doc" -type f ! -name copyright -delete
find "${rootfs}/usr/share/doc" -mindepth 1 -type d -empty -delete
step "cleanup: apt lists/caches, logs, docs removed ($(du -sh "${rootfs}" | cut -f1))"

# 5. import
start=${SECONDS}
if ! out=$(tar -C "${rootfs}" --numeric-owner --xattrs --acls -c . |
    podman import \
        --change 'CMD ["/sbin/init"]' \
        --change 'ENV container=podman' \
        --change 'STOPSIGNAL SIGRTMIN+3' \
        --change "LABEL org.virtops.release=${release} org.virtops.hash=${hash}" \
        --message "virtops-debian ${release} (debootstrap minbase)" \
        - "${tag}" 2>&1); then
    printf '%s\n' "${out}" >&2
    die "podman import failed"
fi
podman tag "${tag}" "${latest}"
step "podman import: ${tag} ($((SECONDS - start)) s)"

# 6. drop older hashed builds of this release (kept if a container uses them)
while read -r old; do
    [[ ${old} == "${REPO}:${release}-"* && ${old} != "${tag}" ]] || continue
    if podman rmi "${old}" >/dev/null 2>&1; then
        step "removed stale ${old}"
    fi
done < <(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=${REPO}:${release}-*")

printf '%s\n' "${tag}"
