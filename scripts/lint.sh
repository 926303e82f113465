#!/usr/bin/env bash
# ansible-lint --profile production, nothing downgraded in .ansible-lint, with ansible-core and the
# collections the project declares only: ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false hides the
# collections bundled in .venv's `ansible` package, so a module of an undeclared collection fails
# lint ("couldn't resolve module"). The collection is linted with the checkout and the collections
# galaxy.yml `dependencies` declares (copied from the ansible package into .build/lint-collections); bench/ declares its own collections (bench/requirements.yml) and is linted
# separately with them (copied from the ansible package into .build/bench-collections).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
readonly BIN="${top}/.venv/bin"
# shellcheck source=scripts/lib.sh
source "${top}/scripts/lib.sh"

export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
checkout="${top}/.build/checkout"
[[ -L ${checkout}/ansible_collections/virtops/hypervisor ]] || { echo "lint: run make venv first" >&2; exit 1; }
warn_shadowing_copy lint
cd "${top}"

echo "== ansible-lint --profile production (the collection: ansible-core and galaxy.yml's dependencies)"
declared=$(declared_collections "${top}")
ANSIBLE_COLLECTIONS_PATH=${checkout}:${declared} "${BIN}/ansible-lint" --offline --profile production

echo "== ansible-lint --profile production bench/ (with bench/requirements.yml)"
bench="${top}/.build/bench-collections"
"${BIN}/python" "${top}/scripts/bundled-collections.py" "${top}/bench/requirements.yml" "${bench}" >/dev/null
# bench/cloud compares with community.libvirt 2.3.1's virt_cloud_instance (the ansible package bundles
# 2.0.0): installed from ../shared/anchors, first on the path.
# shellcheck source=bench/lib.sh
source "${top}/bench/lib.sh"
anchors=$(bench_anchors "${top}")
ANSIBLE_COLLECTIONS_PATH=${checkout}:${anchors}:${bench} "${BIN}/ansible-lint" --offline --profile production -c bench/.ansible-lint bench
