#!/usr/bin/env bash
# ansible-test sanity with each supported ansible-core: the newest (.venv) and the oldest that
# meta/runtime.yml accepts (.venv-core217). ansible-test needs the collection at
# ansible_collections/<namespace>/<name>: the checkout is copied there (without venvs and build
# output), one tree per core version, under SANITY_ROOT (default .build/sanity).
# Usage: scripts/sanity.sh [--core 2.19|2.17] [ansible-test sanity options, e.g. --test pep8]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
cores=(2.19 2.17)
if [[ ${1:-} == --core ]]; then
    cores=("$2")
    shift 2
fi
root=${SANITY_ROOT:-${top}/.build/sanity}

for core in "${cores[@]}"; do
    case ${core} in
        2.19) venv=${top}/.venv ;;
        2.17) venv=${top}/.venv-core217 ;;
        *) echo "sanity: unknown core '${core}' (2.19 or 2.17)" >&2; exit 2 ;;
    esac
    tree="${root}/core${core}/ansible_collections/virtops/hypervisor"
    mkdir -p "${tree}"
    rsync -a --delete --exclude='/.venv*' --exclude=/.build --exclude=/.git/ --exclude=/tests/output \
        --exclude=__pycache__ --exclude=.pytest_cache --exclude=/.ansible "${top}/" "${tree}/"
    # The copy lies inside this checkout's git-ignored .build/: make it a repository of its own, or
    # ansible-test asks the outer one for its files and finds none.
    [[ -d ${tree}/.git ]] || git -C "${tree}" init --quiet
    git -C "${tree}" add --all

    # ansible-test bootstraps pip in its virtualenvs with get-pip.py from a host this machine cannot
    # reach; it takes a cached copy from ~/.ansible/test/cache first. It runs with HOME set to a
    # directory of the sanity tree, holding this stand-in (ensurepip, then pip install from the index
    # pip already reaches), so nothing is written to the user's home.
    home="${root}/core${core}/home"
    pip_version=$("${venv}/bin/python" - <<'PY'
import re, pathlib, ansible_test
source = pathlib.Path(ansible_test.__file__).parent.joinpath('_internal', 'python_requirements.py').read_text()
print(re.search(r"pip='([0-9.]+)'", source).group(1))
PY
)
    get_pip="${home}/.ansible/test/cache/get_pip_${pip_version//./_}.py"
    mkdir -p "$(dirname "${get_pip}")"
    cat >"${get_pip}" <<'PY'
"""Stand-in for get-pip.py: ensurepip, then pip install with the arguments given."""
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + args)
PY
    echo "== ansible-test sanity ($("${venv}/bin/ansible" --version | sed -n 1p))"
    (cd "${tree}" && HOME=${home} PIP_CACHE_DIR=${home}/.cache/pip \
        "${venv}/bin/ansible-test" sanity --venv --python 3.11 --color no "$@")
done
