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
