#!/usr/bin/env bash
# Build the collection tarball from the checkout and install it under .build/collections,
# the copy molecule and the demo run (lint and the tests run the checkout itself).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
readonly BIN="${top}/.venv/bin"
# shellcheck source=scripts/lib.sh
source "${top}/scripts/lib.sh"
dist="${top}/.build/dist"
mkdir -p "${dist}"
"${top}/scripts/docs.sh" extra-docs  # docs/docsite/rst from the user guides
tarball=$("${BIN}/ansible-galaxy" collection build --force --output-path "${dist}" "${top}" | sed -n 's/^Created collection for .* at //p')
[[ -f ${tarball} ]] || { echo "install-collection: build produced no tarball" >&2; exit 1; }
# Only meta/, plugins/, roles/, playbooks/ (not the demo's), changelogs/, docs/ (the guides the README
# links to, the docsite's extra docs) and the top-level files may ship.
if tar -tzf "${tarball}" | grep -E '^(molecule|tests|bench|scripts|\.venv[^/]*|\.build|playbooks/inventory)/|^playbooks/demo' >&2; then
    echo "install-collection: the tarball ships development files (see galaxy.yml build_ignore)" >&2
    exit 1
fi
ANSIBLE_COLLECTIONS_PATH="${top}/.build/collections" "${BIN}/ansible-galaxy" collection install --force --offline -p "${top}/.build/collections" "${tarball}" >/dev/null
echo "collection: installed $(basename "${tarball}") into .build/collections"
warn_shadowing_copy collection
