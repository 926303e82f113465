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
