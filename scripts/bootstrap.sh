#!/usr/bin/env bash
# Bring a fresh Debian 12 machine (root) to where `make demo` and `make test` run:
# apt packages, podman set up (scripts/podman-setup.sh), .venv with the pinned dev tools, and
# ansible-test's pip bootstrap. Every step is skipped when already done.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
readonly VENV="${top}/.venv"
readonly PACKAGES=(python3 python3-venv python3-dev gcc make rsync git shellcheck pkg-config libvirt-dev)

# shellcheck source=scripts/lib.sh
source "${top}/scripts/lib.sh"

step() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

[[ ${EUID} -eq 0 ]] || die "run as root (apt-get and podman need it)"

ensure_packages bootstrap "${PACKAGES[@]}"

"${top}/scripts/podman-setup.sh"

# The venv is rebuilt only when requirements-dev.txt changes.
wanted=$(sha256sum "${top}/requirements-dev.txt" | cut -d' ' -f1)
if [[ ! -x ${VENV}/bin/python || $(cat "${VENV}/.requirements.sha256" 2>/dev/null) != "${wanted}" ]]; then
    step "creating ${VENV}"
    /usr/bin/python3 -m venv "${VENV}"
    "${VENV}/bin/pip" install -q --disable-pip-version-check --upgrade pip
    "${VENV}/bin/pip" install -q --disable-pip-version-check -r "${top}/requirements-dev.txt"
    echo "${wanted}" >"${VENV}/.requirements.sha256"
fi
step ".venv: $("${VENV}/bin/ansible" --version | sed -n 1p)"

# ansible-test bootstraps pip in its sanity virtualenvs with get-pip.py from a host this machine
# cannot reach; it takes a cached copy first. This stand-in gives it the same effect with
# ensurepip and the package index that pip already reaches.
pip_version=$("${VENV}/bin/python" - <<'PY'
import re, pathlib, ansible_test
source = pathlib.Path(ansible_test.__file__).parent.joinpath('_internal', 'python_requirements.py').read_text()
print(re.search(r"pip='([0-9.]+)'", source).group(1))
PY
)
get_pip="${HOME}/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [[ ! -f ${get_pip} ]]; then
    mkdir -p "$(dirname "${get_pip}")"
    cat >"${get_pip}" <<'PY'
"""Stand-in for get-pip.py: ensurepip, then pip install with the arguments given."""
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)
PY
    step "ansible-test pip bootstrap: ${get_pip}"
fi
