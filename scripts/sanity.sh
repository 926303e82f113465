#!/usr/bin/env bash
# ansible-test sanity needs the collection at ansible_collections/<namespace>/<name>: copy the
# checkout there (without the venv and build output) and run every sanity test in a virtualenv.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
tree="${SANITY_ROOT:-${top}/.build/sanity}/ansible_collections/virtops/hypervisor"
mkdir -p "${tree}"
rsync -a --delete --exclude=/.venv --exclude=/.build --exclude=/.git/ --exclude=/tests/output \
    --exclude=__pycache__ --exclude=.pytest_cache "${top}/" "${tree}/"
cd "${tree}"
# The copy lies inside this checkout's git-ignored .build/: make it a repository of its own, or
# ansible-test asks the outer one for its files and finds none.
[[ -d .git ]] || git init --quiet
git add --all
echo "== ansible-test sanity"
"${top}/.venv/bin/ansible-test" sanity --venv --python 3.11 --color no "$@"
