# shellcheck shell=bash
# Functions the benchmarks share (sourced; bench/cloud/run.sh and scripts/lint.sh use them).

# bench_anchors TOP: community.libvirt 2.3.1 from ../shared/anchors installed into TOP/.build/bench-anchors
# (once); prints that collections directory.
bench_anchors() {
    local anchors=$1/.build/bench-anchors
    local tarball=$1/../shared/anchors/community-libvirt-2.3.1.tar.gz
    if [[ ! -f ${anchors}/ansible_collections/community/libvirt/plugins/modules/virt_cloud_instance.py ]]; then
        [[ -f ${tarball} ]] || { echo "bench: no ${tarball}" >&2; return 1; }
        "$1/.venv/bin/ansible-galaxy" collection install --offline --force -p "${anchors}" "${tarball}" >/dev/null
    fi
    printf '%s\n' "${anchors}"
}

# bench_container NAME IMAGE [PODMAN_RUN_OPTION...]: a privileged container of IMAGE with systemd up.
bench_container() {
    local container=$1 container_image=$2
    shift 2
    podman run -d --name "${container}" --privileged "$@" "${container_image}" >/dev/null
    for _ in $(seq 90); do
        [[ $(podman exec "${container}" systemctl is-system-running --wait 2>/dev/null) =~ running|degraded ]] && return 0
        sleep 1
    done
    echo "bench: systemd in ${container} did not come up" >&2
    return 1
}

# bench_median NUMBER...: the median (the lower one of an even count).
bench_median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# bench_row LABEL MODULE_SECONDS LOOP_SECONDS: a markdown table row, Ratio = loop / module.
bench_row() {
    awk -v label="$1" -v m="$2" -v l="$3" 'BEGIN { printf "| %s | %.2f s | %.2f s | %.2f |\n", label, m, l, l / m }'
}

# bench_cleanup_on_exit LABEL CONTAINER LOGS: on exit the container goes; LOGS too when all went well, else
# LABEL says where they are.
bench_cleanup_on_exit() {
    # shellcheck disable=SC2064 # the arguments are fixed now
    trap "bench_exit '$1' '$2' '$3'" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
bench_exit() {
    local status=$?
    podman rm -f -t 0 "$2" >/dev/null 2>&1 || true
    if ((status == 0)); then rm -rf "$3"; else echo "$1: logs in $3" >&2; fi
}
