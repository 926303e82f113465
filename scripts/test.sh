#!/usr/bin/env bash
# `make test` after `make bootstrap`: everything CI runs, in two lanes at once.
#   checks: sanity, lint, unit, changelog-lint, docs-lint, importer (CPU, this checkout only);
#   hosts:  molecule, then integration (containers and guests; mostly waiting on apt and QEMU).
# The lanes share nothing but the collection tarball, built once before either starts. The hosts lane
# prints as it goes; the checks lane writes .build/test/checks.log, printed when it ends. The first
# lane to fail stops the other, so a lint error does not wait for the guests to boot.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
cd "${top}"
log_dir="${top}/.build/test"
mkdir -p "${log_dir}"
checks_log="${log_dir}/checks.log"
# Already made by `make test`'s own prerequisite (bootstrap) or by the step above: not again per lane.
make_done=(make --no-print-directory -o bootstrap -o venv -o collection -o images)

make --no-print-directory -o bootstrap collection images

started=${SECONDS}
setsid "${make_done[@]}" sanity lint unit changelog-lint docs-lint importer >"${checks_log}" 2>&1 &
checks=$!
setsid "${make_done[@]}" molecule integration &
hosts=$!
echo "test: checks lane (pid ${checks}) writes ${checks_log}; hosts lane (pid ${hosts}) below"

stop_lane() { kill -TERM -- "-$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
trap 'stop_lane ${checks}; stop_lane ${hosts}' INT TERM

report_checks() {
    echo "== checks lane ($1 after $(( (SECONDS - started) / 60 )) min; ${checks_log})"
    cat "${checks_log}"
}

rc=0
finished=
if wait -n -p finished "${checks}" "${hosts}"; then first=0; else first=$?; fi
if [[ ${finished} == "${checks}" ]]; then
    if (( first != 0 )); then
        stop_lane "${hosts}"
        report_checks failed
        echo "test: FAILED in the checks lane (the hosts lane was stopped)" >&2
        exit 1
    fi
    report_checks passed
    wait "${hosts}" || rc=$?
    (( rc == 0 )) || { echo "test: FAILED in the hosts lane" >&2; exit 1; }
else
    if (( first != 0 )); then
        stop_lane "${checks}"
        report_checks stopped
        echo "test: FAILED in the hosts lane (the checks lane was stopped)" >&2
        exit 1
    fi
    wait "${checks}" || rc=$?
    report_checks "$( (( rc == 0 )) && echo passed || echo failed)"
    (( rc == 0 )) || { echo "test: FAILED in the checks lane" >&2; exit 1; }
fi
echo "test: both lanes passed in $(( (SECONDS - started) / 60 )) min"
