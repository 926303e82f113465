#!/usr/bin/env bash
# Build the collection tarball from the checkout and install it under .build/collections,
# the only copy that playbooks, molecule and tests use.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
readonly BIN="${top}/.venv/bin"
dist="${top}/.build/dist"
mkdir -p "${dist}"
tarball=$("${BIN}/ansible-galaxy" collection build --force --output-path "${dist}" "${top}" | sed -n 's/^Created collection for .* at //p')
[[ -f ${tarball} ]] || { echo "install-collection: build produced no tarball" >&2; exit 1; }
# Only meta/, plugins/, roles/, playbooks/ and the top-level files may ship.
if tar -tzf "${tarball}" | grep -E '^(docs|molecule|tests|bench|scripts|\.venv|\.build)/' >&2; then
    echo "install-collection: the tarball ships development files (see galaxy.yml build_ignore)" >&2
    exit 1
fi
"${BIN}/ansible-galaxy" collection install --force --offline -p "${top}/.build/collections" "${tarball}" >/dev/null
echo "collection: installed $(basename "${tarball}") into .build/collections"
# ansible-lint also looks in the user's default path: an older copy of this collection there would
# shadow the one just built ("couldn't resolve module ...").
stale="${HOME}/.ansible/collections/ansible_collections/virtops/hypervisor"
if [[ -d ${stale} ]]; then
    rm -rf "${stale}"
    echo "collection: removed an older copy from ${stale}"
fi
