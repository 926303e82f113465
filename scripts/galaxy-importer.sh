#!/usr/bin/env bash
# galaxy-importer (the code Galaxy and Automation Hub run on an upload) on the tarball that
# scripts/install-collection.sh built: fails on any error and on any warning it prints.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
readonly BIN="${top}/.venv/bin"
export PATH="${BIN}:${PATH}"  # the importer runs ansible-doc and ansible-lint
version=$(sed -n 's/^version: *//p' "${top}/galaxy.yml")
tarball="${top}/.build/dist/virtops-hypervisor-${version}.tar.gz"
[[ -f ${tarball} ]] || { echo "galaxy-importer: no ${tarball}: run make collection" >&2; exit 1; }

out="${top}/.build/importer"
rm -rf "${out}"
mkdir -p "${out}"
echo "== galaxy-importer $(basename "${tarball}")"
# The importer lints with the collections of its environment: only ansible-core's, as Galaxy does.
if ! (cd "${out}" && GALAXY_IMPORTER_CONFIG=${top}/scripts/galaxy-importer.cfg ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
    "${BIN}/python" -m galaxy_importer.main --output-path "${out}" "${tarball}" >"${out}/log.txt" 2>&1); then
    cat "${out}/log.txt" >&2
    echo "galaxy-importer: the import failed" >&2
    exit 1
fi
if grep -E 'WARNING|ERROR' "${out}/log.txt" >&2; then
    echo "galaxy-importer: the import printed warnings or errors (above; full log ${out}/log.txt)" >&2
    exit 1
fi
echo "galaxy-importer: imported with no warning ($(grep -c . "${out}/log.txt") log lines, ${out}/log.txt)"
