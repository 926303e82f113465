#!/usr/bin/env bash
# `make test` after `make bootstrap`: everything CI runs, in two lanes at once.
#   lane 1: sanity, lint, unit, changelog-lint, docs-lint, importer (CPU, this checkout only), then
#           the integration tests of tests/integration/host (a libvirt host container of their own,
#           with the three cloud VMs of test_cloud_lab);
#   lane 2: molecule (its localhost scenario sets up this machine's libvirtd), then the other
#           integration tests (this machine's libvirtd, the VirtualBox container) and the kvm_host
#           migration set-up tests of tests/integration/host.
# The lanes share nothing but the collection tarball and the base images, built once before either
# starts. Lane 2 prints as it goes; lane 1 writes .build/test/lane1.log, printed when it ends. The
# first lane to fail stops the other, so a lint error does not wait for the guests to boot.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
cd "${top}"
log_dir="${top}/.build/test"
mkdir -p "${log_dir}"
lane1_log="${log_dir}/lane1.log"
host_tests=tests/integration/host
# The kvm_host role on three containers of its own (about 9 minutes, no guests): in lane 2, which is shorter.
role_tests=${host_tests}/test_kvm_host_migration.py
# Made by `make test`'s own prerequisite (bootstrap) or by the step below: not again in each lane.
make_done=(make --no-print-directory -o bootstrap -o venv -o collection -o images)

make --no-print-directory -o bootstrap collection images

lane1() {
    "${make_done[@]}" sanity lint unit changelog-lint docs-lint importer &&
        "${make_done[@]}" integration INTEGRATION_TESTS="${host_tests} --ignore=${role_tests}"
}
lane2() {
    "${make_done[@]}" molecule integration INTEGRATION_TESTS="tests/integration --ignore=${host_tests}" &&
        "${make_done[@]}" integration INTEGRATION_TESTS="${role_tests}"
}

# Job control: each lane runs in a process group of its own, which stop_lane ends as a whole.
set -m
started=${SECONDS}
lane1 >"${lane1_log}" 2>&1 &
pid1=$!
lane2 &
pid2=$!
echo "test: lane 1 (checks, then ${host_tests}) writes ${lane1_log}; lane 2 (molecule, then the other integration tests) below"

stop_lane() { kill -TERM -- "-$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
trap 'stop_lane ${pid1}; stop_lane ${pid2}' INT TERM

minutes() { echo "$(( (SECONDS - started) / 60 )) min"; }
show_lane1() {
    echo "== lane 1 ($1 after $(minutes); ${lane1_log})"
    cat "${lane1_log}"
}

finished=
if wait -n -p finished "${pid1}" "${pid2}"; then rc=0; else rc=$?; fi
if [[ ${finished} == "${pid1}" ]]; then
    show_lane1 "$( ((rc == 0)) && echo passed || echo failed)"
    if ((rc != 0)); then
        stop_lane "${pid2}"
        echo "test: FAILED in lane 1 (lane 2 was stopped)" >&2
        exit 1
    fi
    wait "${pid2}" || { echo "test: FAILED in lane 2 after $(minutes)" >&2; exit 1; }
else
    if ((rc != 0)); then
        stop_lane "${pid1}"
        show_lane1 stopped
        echo "test: FAILED in lane 2 (lane 1 was stopped)" >&2
        exit 1
    fi
    echo "== lane 2 passed after $(minutes); waiting for lane 1"
    if wait "${pid1}"; then rc=0; else rc=$?; fi
    show_lane1 "$( ((rc == 0)) && echo passed || echo failed)"
    ((rc == 0)) || { echo "test: FAILED in lane 1" >&2; exit 1; }
fi
echo "test: both lanes passed in $(minutes)"
