# Shared by the scripts in this directory: source it, then call its functions.
# shellcheck shell=bash

# ensure_packages PREFIX PACKAGE...: apt-get install the packages that are not installed yet
# (apt-get update first, and only then); prints one line, or the tail of apt's log on failure.
ensure_packages() {
    local prefix=$1 pkg status log
    shift
    local missing=()
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "${pkg}" 2>/dev/null || true)
        [[ ${status} == ii* ]] || missing+=("${pkg}")
    done
    if ((${#missing[@]} == 0)); then
        printf '%s: packages: ok (%s)\n' "${prefix}" "$*"
        return 0
    fi
    log=$(mktemp)
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"${log}" 2>&1; then
        tail -n 30 "${log}" >&2
        rm -f "${log}"
        printf '%s: ERROR: apt-get install %s failed\n' "${prefix}" "${missing[*]}" >&2
        return 1
    fi
    rm -f "${log}"
    printf '%s: packages: installed %s\n' "${prefix}" "${missing[*]}"
}

# warn_shadowing_copy PREFIX: warn (and change nothing) when the user's default collections path holds
# a copy of this collection: tools that search that path (ansible-lint did) may load it instead of
# this checkout ("couldn't resolve module ..." or old behaviour).
warn_shadowing_copy() {
    local copy="${HOME}/.ansible/collections/ansible_collections/virtops/hypervisor"
    if [[ -e ${copy} ]]; then
        printf '%s: WARNING: %s holds another copy of virtops.hypervisor that may shadow this checkout; remove it if nothing of yours needs it\n' \
            "$1" "${copy}" >&2
    fi
}

# apt_stamp: a hash of the state that decides which versions apt picks (sources, lists,
# preferences, dpkg status); stat only (apt-cache takes ~1 s per call when apt's binary caches are
# disabled, as in container-style apt configurations). Scripts cache versions while it is unchanged.
apt_stamp() {
    find /etc/apt /var/lib/apt/lists /var/lib/dpkg/status -maxdepth 2 \( -type f -o -type l \) \
        -printf '%p %s %T@\n' 2>/dev/null | LC_ALL=C sort | sha256sum | cut -c1-16
}

# candidate PACKAGE...: apt's records of the versions it would install (empty if none).
candidate() { LC_ALL=C apt-cache show --no-all-versions "$@" 2>/dev/null || true; }

# field PACKAGE FIELD <records: that field of that package's record.
field() { awk -v p="$1" -v f="$2: " '/^Package: / { ours = ($2 == p) } ours && index($0, f) == 1 { print substr($0, length(f) + 1); exit }'; }

# kernel_package META <records: the versioned kernel package the metapackage META depends on,
# "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)" -> linux-image-6.1.0-56-cloud-amd64.
kernel_package() {
    field "$1" Depends | sed 's/[,|]/\n/g' | sed -n 's/^ *\(linux-image-[^ ]*\).*/\1/p' | head -n 1
}

# --- The build scripts' shared steps (build-image, build-guest, build-cloud-image, build-libvirt-image,
# build-vbox-image). They decide nothing about what a build puts out, so the content hashes that name
# the images cover the scripts, not this file. They call the calling script's step and die.

# reuse_or_lock LOCKFILE CHECK RESULT SAYING: one build at a time per LOCKFILE (held on fd 9 until the
# script ends). When the command CHECK succeeds, before the lock or once a build that held it has
# ended, say "cached RESULT (SAYING)", print RESULT on stdout and end the script.
reuse_or_lock() {
    local lock=$1 check=$2 result=$3 saying=$4
    if "${check}"; then
        step "cached ${result} (${saying})"
        printf '%s\n' "${result}"
        exit 0
    fi
    mkdir -p "$(dirname "${lock}")"
    exec 9>"${lock}"
    flock 9
    if "${check}"; then
        step "cached ${result} (built meanwhile)"
        printf '%s\n' "${result}"
        exit 0
    fi
}

# remove_build_dir DIR: for an EXIT trap. Unmounts what is still mounted below DIR, deepest first (never
# rm -rf through a mount that debootstrap or a chroot left), then removes DIR, or keeps it and says
# so with KEEP_BUILD_DIR=1.
remove_build_dir() {
    local dir=$1 mnt
    [[ -d ${dir} ]] || return 0
    while read -r mnt; do
        umount -l "${mnt}" 2>/dev/null || true
    done < <(awk -v p="${dir}/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r)
    if [[ ${KEEP_BUILD_DIR:-0} == 1 ]]; then
        step "kept ${dir}"
    else
        rm -rf --one-file-system "${dir}"
    fi
}

# derived_image RELEASE FLAVOUR SCRIPT: for a SCRIPT that derives an image from build-image.sh's RELEASE
# image (built first if need be), sets base (that image's tag) and tag (the derived image's,
# localhost/virtops-debian:RELEASE-FLAVOUR-<first 12 hex of sha256(SCRIPT + the base image's ID)>).
derived_image() {
    local release=$1 flavour=$2 script=$3 base_id hash
    base=$("$(dirname "${BASH_SOURCE[0]}")/build-image.sh" "${release}" | tail -n 1)
    base_id=$(podman image inspect --format '{{.Id}}' "${base}")
    hash=$({ cat "${script}"; printf '\n%s\n' "${base_id}"; } | sha256sum | cut -c1-12)
    tag="localhost/virtops-debian:${release}-${flavour}-${hash}"
}

# start_build_container NAME IMAGE [podman run option...]: a container of IMAGE with systemd up (or
# degraded), removed when the script ends.
start_build_container() {
    local name=$1 image=$2 state
    shift 2
    build_container=${name}
    trap 'podman rm -f -t 0 "${build_container}" >/dev/null 2>&1 || true' EXIT
    trap 'exit 130' INT TERM
    podman run -d --name "${name}" "$@" "${image}" >/dev/null
    for _ in $(seq 60); do
        state=$(podman exec "${name}" systemctl is-system-running --wait 2>/dev/null) && break
        [[ ${state} == degraded ]] && break
        sleep 1
    done
}

# commit_build_container NAME TAG: stop the container, commit it as TAG, and remove the older images of
# TAG's flavour (the same tag up to its hash).
commit_build_container() {
    local name=$1 tag=$2 old
    podman stop -t 10 "${name}" >/dev/null
    podman commit --quiet "${name}" "${tag}" >/dev/null
    step "podman commit: ${tag}"
    while read -r old; do
        [[ ${old} != "${tag}" ]] || continue
        if podman rmi "${old}" >/dev/null 2>&1; then
            step "removed stale ${old}"
        fi
    done < <(podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=${tag%-*}-*")
}

# The collections galaxy.yml `dependencies` declares, copied from .venv's `ansible` package (Galaxy is not
# reachable) into .build/lint-collections; prints that directory, for ANSIBLE_COLLECTIONS_PATH beside the
# checkout (lint and docs run with ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false: nothing undeclared).
declared_collections() {
    local root=$1 dest="$1/.build/lint-collections"
    "${root}/.venv/bin/python" "${root}/scripts/bundled-collections.py" "${root}/galaxy.yml" "${dest}" >/dev/null
    printf '%s\n' "${dest}"
}
