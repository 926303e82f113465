#!/usr/bin/env bash
# Networks, pools and volumes: virtops.hypervisor's libvirt_network, libvirt_pool and libvirt_volume
# (one task each, the whole list in one module call) versus community.libvirt 2.3.1's virt_net,
# virt_pool and virt_volume in loops (XML rendered from the same settings), side by side.
# Both run with ansible-playbook and a local connection INSIDE a privileged container of
# scripts/build-libvirt-image.sh (its own network namespace: the benchmark's 10 NAT networks, their
# bridges and dnsmasq never exist on this machine); the checkout (its venv, the built collection,
# community.libvirt 2.3.1 from ../shared/anchors) is mounted read-only at the same path.
# Measured per object kind, for each variant: the first run (create 10 networks, 5 pools, 100
# volumes) and the no-op rerun (must be changed=0 for this collection). Each variant starts from no
# bench objects; the variants alternate which goes first. Medians of BENCH_RUNS runs (default 3),
# as a markdown table; Ratio = loop time / module time (task durations from the JSON report).
# Usage: BENCH_RUNS=3 bench/libvirt_objects/run.sh   (root, from the repo root, after
#   `make collection`; about 5 minutes for 3 runs on 2 cores)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
readonly top
readonly here=${top}/bench/libvirt_objects
readonly runs=${BENCH_RUNS:-3}
readonly anchor=${top}/../shared/anchors/community-libvirt-2.3.1.tar.gz
readonly anchors=${top}/.build/bench-anchors
readonly name=virtops-bench-objects-$$

die() { printf 'bench/libvirt_objects: %s\n' "$*" >&2; exit 1; }
[[ ${runs} =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '${runs}'"
[[ -f ${top}/.build/collections/ansible_collections/virtops/hypervisor/plugins/modules/libvirt_network.py ]] ||
    die "libvirt_network is not installed in .build/collections: run make collection"
if [[ ! -f ${anchors}/ansible_collections/community/libvirt/plugins/modules/virt_volume.py ]]; then
    [[ -f ${anchor} ]] || die "no ${anchor}"
    "${top}/.venv/bin/ansible-galaxy" collection install --force -p "${anchors}" "${anchor}" >/dev/null
fi
image=$("${top}/scripts/build-libvirt-image.sh" | tail -n 1)

logs=$(mktemp -d /tmp/virtops-bench-objects.XXXXXX)
readonly logs
on_exit() {
    local status=$?
    podman rm -f -t 0 "${name}" >/dev/null 2>&1 || true
    if ((status == 0)); then rm -rf "${logs}"; else echo "bench/libvirt_objects: logs in ${logs}" >&2; fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

podman run -d --name "${name}" --privileged -v "${top}:${top}:ro" "${image}" >/dev/null
for _ in $(seq 90); do
    [[ $(podman exec "${name}" systemctl is-system-running --wait 2>/dev/null) =~ running|degraded ]] && break
    sleep 1
done
inside() { podman exec -w "${here}" "$@"; }

clean() {
    # shellcheck disable=SC2016 # expanded by the bash inside the container
    inside "${name}" bash -euc '
        for net in $(virsh net-list --all --name | grep "^bench-net-" || true); do
            virsh net-destroy "$net" >/dev/null 2>&1 || true
            virsh net-undefine "$net" >/dev/null
        done
        for pool in $(virsh pool-list --all --name | grep "^bench-pool-" || true); do
            virsh pool-start "$pool" >/dev/null 2>&1 || true
            # virsh 9.0 has no vol-list --name: the names are the first column after the two header lines.
            for vol in $(virsh vol-list "$pool" 2>/dev/null | awk "NR > 2 && NF { print \$1 }" || true); do
                virsh vol-delete "$vol" "$pool" >/dev/null
            done
            virsh pool-destroy "$pool" >/dev/null 2>&1 || true
            virsh pool-delete "$pool" >/dev/null 2>&1 || true
            virsh pool-undefine "$pool" >/dev/null
        done
        [[ -z $(virsh net-list --all --name | grep "^bench-" || true) ]]
        [[ -z $(virsh pool-list --all --name | grep "^bench-" || true) ]]'
}

# timed VARIANT: run one playbook; prints "<kind> <seconds> <changed>" lines.
timed() {
    local report
    report=$(mktemp "${logs}/$1.XXXX.json")
    inside -e ANSIBLE_CONFIG="${top}/ansible.cfg" -e ANSIBLE_STDOUT_CALLBACK=ansible.posix.json \
        -e ANSIBLE_LOCALHOST_WARNING=false -e ANSIBLE_COLLECTIONS_PATH="${anchors}:${top}/.build/collections" \
        "${name}" "${top}/.venv/bin/ansible-playbook" -i localhost, -c local \
        -e ansible_python_interpreter=/usr/bin/python3 "$1.yml" >"${report}" 2>"${report}.err" ||
        { tail -n 30 "${report}.err" >&2; die "$1.yml failed, see ${report}"; }
    "${top}/.venv/bin/python" "${here}/report.py" <"${report}" || die "$1.yml: no report, see ${report}"
}

declare -A times=() rerun_changed=()
record() {
    local out kind seconds changed
    out=$(timed "$1")
    while read -r kind seconds changed; do
        times[$1,$2,${kind}]+=" ${seconds}"
        if [[ $2 == rerun ]]; then
            rerun_changed[$1,${kind}]+=" ${changed}"
            [[ $1 != module || ${changed} == 0 ]] || die "the ${kind} rerun of this collection was not a no-op: changed=${changed}"
        fi
    done <<<"${out}"
}

began=$(date +%s.%N)
for ((i = 0; i < runs; i++)); do
    if ((i % 2 == 0)); then order=(module loop); else order=(loop module); fi
    for variant in "${order[@]}"; do
        clean
        record "${variant}" first
        record "${variant}" rerun
    done
    echo "bench/libvirt_objects: run $((i + 1))/${runs} done" >&2
done
clean

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
row() {
    local module loop
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    module=$(median ${times[module,$2,$3]})
    # shellcheck disable=SC2086
    loop=$(median ${times[loop,$2,$3]})
    awk -v label="$1" -v m="${module}" -v l="${loop}" \
        'BEGIN { printf "| %s | %.2f s | %.2f s | %.1f |\n", label, m, l, l / m }'
}
printf '\nlibvirt networks, pools and volumes, %s, median of %d runs (%s)\n\n' "$(date -u +%F)" "${runs}" "$(uname -n)"
echo '| Measurement | virtops.hypervisor (one task each) | community.libvirt loops | Ratio |'
echo '| --- | --- | --- | --- |'
row "10 networks, no-op rerun" rerun network
row "5 pools, no-op rerun" rerun pool
row "100 volumes, no-op rerun" rerun volume
row "10 networks, first run" first network
row "5 pools, first run" first pool
row "100 volumes, first run" first volume
printf '\ncommunity.libvirt reruns, changed items per run: networks:%s; pools:%s; volumes:%s\n' \
    "${rerun_changed[loop,network]}" "${rerun_changed[loop,pool]}" "${rerun_changed[loop,volume]}"
awk -v start="${began}" -v end="$(date +%s.%N)" 'BEGIN { printf "total time %.0f s\n", end - start }'
