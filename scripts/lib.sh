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
