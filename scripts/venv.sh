#!/usr/bin/env bash
# Make this checkout's virtualenvs, as any user and without root (scripts/bootstrap.sh, run once on the
# machine as root, installs the Debian packages they build on):
#   .venv          the newest ansible-core and the dev tools of requirements-dev.txt (pinned)
#   .venv-core217  the oldest ansible-core that meta/runtime.yml accepts (requirements-core217.txt),
#                  plus the collections of tests/requirements.yml copied from .venv's ansible package
# and .build/checkout/ansible_collections/virtops/hypervisor, a link to this checkout (what
# ansible.cfg, lint and the tests load the collection from). Writes nothing outside the checkout:
# pip's cache is .build/pip-cache. Each venv is rebuilt only when its requirements file changes.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
readonly PYTHON=/usr/bin/python3
export PIP_CACHE_DIR="${top}/.build/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf 'venv: %s\n' "$*"; }
die() { printf 'venv: ERROR: %s\n' "$*" >&2; exit 1; }

# What the venvs build on (libvirt-python compiles against libvirt-dev): bootstrap's job, not ours.
missing=()
"${PYTHON}" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
pkg-config --exists libvirt 2>/dev/null || missing+=("libvirt-dev and pkg-config")
command -v gcc >/dev/null || missing+=(gcc)
[[ -f $("${PYTHON}" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h ]] || missing+=(python3-dev)
((${#missing[@]} == 0)) || die "missing ${missing[*]}: run \`make bootstrap\` as root once on this machine"

# make_venv DIR REQUIREMENTS...: (re)create DIR when the requirements files changed.
make_venv() {
    local dir=$1 wanted
    shift
    wanted=$(cat "$@" | sha256sum | cut -d' ' -f1)
    if [[ -x ${dir}/bin/python && $(cat "${dir}/.requirements.sha256" 2>/dev/null) == "${wanted}" ]]; then
        return 0
    fi
    step "creating ${dir}"
    "${PYTHON}" -m venv "${dir}"
    "${dir}/bin/pip" install -q --upgrade pip
    local args=()
    for file in "$@"; do args+=(-r "${file}"); done
    "${dir}/bin/pip" install -q "${args[@]}"
    echo "${wanted}" >"${dir}/.requirements.sha256"
}

make_venv "${top}/.venv" "${top}/requirements-dev.txt"
make_venv "${top}/.venv-core217" "${top}/requirements-core217.txt"
site=$("${top}/.venv-core217/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"${top}/.venv/bin/python" "${top}/scripts/bundled-collections.py" "${top}/tests/requirements.yml" "${site}"

link="${top}/.build/checkout/ansible_collections/virtops/hypervisor"
if [[ $(readlink "${link}" 2>/dev/null) != "${top}" ]]; then
    mkdir -p "$(dirname "${link}")"
    ln -sfn "${top}" "${link}"
fi
step "$("${top}/.venv/bin/ansible" --version | sed -n 1p); $("${top}/.venv-core217/bin/ansible" --version | sed -n 1p)"
