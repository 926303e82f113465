#!/usr/bin/env bash
# Many libvirt domains: virtops.hypervisor.libvirt_domain with `domains:` (one task, one module
# call) versus community.libvirt.virt in a loop (`command: define` with XML rendered from the same
# settings, then `state: running`), side by side, both through ansible-playbook on localhost
# (local connection, qemu:///system). Measured, for each variant:
#   1. first run: define 100 shut-off domains bench-001..bench-100 (128 MiB, 1 vCPU, TCG,
#      direct kernel boot of the tiny guest, one disk that does not exist: never started)
#   2. no-op rerun of the same 100 (must be changed=0 for libvirt_domain)
#   3. 10 running domains bench-run-01..bench-run-10 (the tiny guest, no disk): first run
#      (define and start), then, once the guests are idle, a no-op rerun
# Each variant starts from no bench domains and removes them afterwards (also on failure);
# the variants alternate which goes first. Medians of BENCH_RUNS runs (default 3), as a
# markdown table; Ratio = loop time / libvirt_domain time.
# Usage: BENCH_RUNS=3 bench/domains/run.sh   (root, from the repo root, after `make collection`;
#   the guest comes from scripts/build-guest.sh; about 10 minutes for 3 runs on 2 cores)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
readonly top
readonly runs=${BENCH_RUNS:-3}
readonly DEFINED=100 RUNNING=10
readonly VARIANTS=(module loop)
export ANSIBLE_CONFIG=${top}/ansible.cfg ANSIBLE_COLLECTIONS_PATH=${top}/.build/collections PATH=${top}/.venv/bin:${PATH}
helper=("${top}/.venv/bin/python" "${top}/bench/domains/domains.py")

die() { printf 'bench/domains: %s\n' "$*" >&2; exit 1; }
[[ ${runs} =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '${runs}'"
[[ -f ${ANSIBLE_COLLECTIONS_PATH}/ansible_collections/virtops/hypervisor/plugins/modules/libvirt_domain.py ]] ||
    die "libvirt_domain is not installed in .build/collections: run make collection"
guest_dir=$("${top}/scripts/build-guest.sh" | tail -n 1)
[[ -f ${guest_dir}/vmlinuz && -f ${guest_dir}/initrd.img ]] || die "no guest kernel and initrd in '${guest_dir}'"
playbook=(ansible-playbook -i "localhost," -e ansible_connection=local
    -e "ansible_python_interpreter=${top}/.venv/bin/python"
    -e "{\"bench_guest_dir\": \"${guest_dir}\", \"bench_defined_count\": ${DEFINED}, \"bench_running_count\": ${RUNNING}}")

logs=$(mktemp -d /tmp/virtops-bench-domains.XXXXXX)
readonly logs
on_exit() {
    local status=$?
    "${helper[@]}" clean || echo "bench/domains: cleanup failed; remove the bench-* domains by hand" >&2
    if ((status == 0)); then rm -rf "${logs}"; else echo "bench/domains: logs in ${logs}" >&2; fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# timed VARIANT SET: run one playbook; prints "seconds changed" (changed from the play recap).
timed() {
    local log start end recap
    log=$(mktemp "${logs}/$1-$2.XXXX.log")
    start=$(date +%s.%N)
    "${playbook[@]}" "${top}/bench/domains/$1.yml" -e "bench_set=$2" >"${log}" 2>&1 ||
        { tail -n 30 "${log}" >&2; die "$1.yml ($2) failed, see ${log}"; }
    end=$(date +%s.%N)
    recap=$(grep -E '^localhost +:' "${log}")
    [[ ${recap} =~ \ changed=([0-9]+)\  ]] || die "no play recap in ${log}"
    awk -v start="${start}" -v end="${end}" -v changed="${BASH_REMATCH[1]}" \
        'BEGIN { printf "%.3f %d\n", end - start, changed }'
}

expect_domains() {
    local status
    status=$("${helper[@]}" status)
    [[ ${status} == "$1 $2" ]] || die "$3: expected $1 bench domains, $2 running; found ${status% *}, ${status#* } running"
}

declare -A times=() rerun_changed=()
# record VARIANT MEASUREMENT SET [must-be-no-op]
record() {
    local out seconds changed
    out=$(timed "$1" "$3")
    read -r seconds changed <<<"${out}"
    times[$1,$2]+=" ${seconds}"
    if [[ $2 == *rerun ]]; then
        rerun_changed[$1,$3]+=" ${changed}"
        [[ $1 != module || ${changed} == 0 ]] || die "libvirt_domain rerun ($3) was not a no-op: changed=${changed}"
    fi
}

bench_variant() {
    "${helper[@]}" clean
    expect_domains 0 0 "$1 before the runs"
    record "$1" define defined
    expect_domains "${DEFINED}" 0 "$1 after defining"
    record "$1" define_rerun defined
    record "$1" running running
    expect_domains $((DEFINED + RUNNING)) "${RUNNING}" "$1 after starting"
    "${helper[@]}" settle
    record "$1" running_rerun running
    "${helper[@]}" clean
}

began=$(date +%s.%N)
for ((i = 0; i < runs; i++)); do
    if ((i % 2 == 0)); then order=("${VARIANTS[@]}"); else order=(loop module); fi
    for variant in "${order[@]}"; do
        bench_variant "${variant}"
    done
    echo "bench/domains: run $((i + 1))/${runs} done" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
row() {
    local module loop
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    module=$(median ${times[module,$2]})
    # shellcheck disable=SC2086
    loop=$(median ${times[loop,$2]})
    awk -v label="$1" -v m="${module}" -v l="${loop}" \
        'BEGIN { printf "| %s | %.2f s | %.2f s | %.1f |\n", label, m, l, l / m }'
}
printf '\nlibvirt domains, %s, median of %d runs (%s)\n\n' "$(date -u +%F)" "${runs}" "$(uname -n)"
echo '| Measurement | libvirt_domain (one task) | community.libvirt.virt loop | Ratio |'
echo '| --- | --- | --- | --- |'
row "Define ${DEFINED} domains, first run" define
row "${DEFINED} domains, no-op rerun" define_rerun
row "Define and start ${RUNNING} TCG domains, first run" running
row "${RUNNING} running domains, no-op rerun" running_rerun
printf '\ncommunity.libvirt.virt reruns, changed per run: %s domains:%s; %s running:%s\n' \
    "${DEFINED}" "${rerun_changed[loop,defined]}" "${RUNNING}" "${rerun_changed[loop,running]}"
awk -v start="${began}" -v end="$(date +%s.%N)" 'BEGIN { printf "total time %.0f s\n", end - start }'
