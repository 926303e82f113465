#!/usr/bin/env bash
# Disk image conversions: virtops.hypervisor.qemu_image versus plain `qemu-img convert`, side by
# side in one run, on a raw image of BENCH_SIZE_MIB (default 2048) with real data: stripes of
# random data (half of it) and of written zeros, holes in between; and the same image as qcow2.
# Pairs: qcow2 -> raw, vdi, vmdk, vpc, and raw -> qcow2.
#   plain:  `qemu-img convert -f <src> -O <fmt> src dest`, timed by this script (no Ansible).
#   module: the module process as Ansible starts it on a target (`python -m ...qemu_image args.json`,
#           the way tests/integration runs modules): Python start-up, the module's reads (qemu-img
#           info, stat, xattr), the conversion into a temporary file, the rename. Timed by this script.
#   task:   the same module as a task of bench/images/convert.yml through ansible-playbook, timed by
#           the task's duration in the ansible.posix.json report: adds Ansible's per-task cost
#           (AnsiballZ, a fork; the same for any module). ansible-playbook's start-up is left out.
# Each measurement starts from no destination, with dirty pages flushed (`sync`, untimed) and, with
# BENCH_CACHE=warm (default), the source in the page cache; BENCH_CACHE=cold drops the page cache
# before every measurement (root), so the source is read from disk, as for an image not read lately.
# The variants rotate which goes first. Then the no-op rerun on an
# up-to-date destination of the full-size image (module process, task, whole ansible-playbook).
# Medians of BENCH_RUNS runs (default 3), as a markdown table; Ratio = throughput / plain throughput
# (= plain time / time).
# Usage: BENCH_RUNS=3 bench/images/run.sh   (from the repo root, after `make collection`; needs
#   ~4x BENCH_SIZE_MIB free in BENCH_DIR (default /var/tmp); about 5 minutes for 3 runs on 2 cores)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
readonly top
readonly runs=${BENCH_RUNS:-3} size_mib=${BENCH_SIZE_MIB:-2048} bench_dir=${BENCH_DIR:-/var/tmp}
readonly cache=${BENCH_CACHE:-warm}
readonly PAIRS=(qcow2:raw qcow2:vdi qcow2:vmdk qcow2:vpc raw:qcow2)
export ANSIBLE_CONFIG=${top}/ansible.cfg PATH=${top}/.venv/bin:${PATH}
export ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-${top}/.build/collections}
export ANSIBLE_STDOUT_CALLBACK=ansible.posix.json ANSIBLE_LOCALHOST_WARNING=false
export ANSIBLE_INVENTORY_UNPARSED_WARNING=false

die() { printf 'bench/images: %s\n' "$*" >&2; exit 1; }
[[ ${runs} =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '${runs}'"
[[ ${cache} == warm || ${cache} == cold ]] || die "BENCH_CACHE must be warm or cold, not '${cache}'"
if ! [[ ${size_mib} =~ ^[1-9][0-9]*$ ]] || ((size_mib < 256)); then die "BENCH_SIZE_MIB must be 256 or more"; fi
[[ -f ${ANSIBLE_COLLECTIONS_PATH}/ansible_collections/virtops/hypervisor/plugins/modules/qemu_image.py ]] ||
    die "qemu_image is not installed in ${ANSIBLE_COLLECTIONS_PATH}: run make collection"
command -v qemu-img >/dev/null || die "qemu-img is not installed"

work=$(mktemp -d "${bench_dir}/virtops-bench-images.XXXXXX")
readonly work
on_exit() { rm -rf "${work}"; }
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

playbook=(ansible-playbook -i "localhost," -e ansible_connection=local
    -e "ansible_python_interpreter=${top}/.venv/bin/python" "${top}/bench/images/convert.yml")
task_seconds=("${top}/.venv/bin/python" "${top}/bench/images/task_seconds.py")

# The source: 64 MiB stripes, alternately random data and half written zeros/half hole.
make_source() {
    local stripe=64 i
    truncate -s "${size_mib}M" "${work}/src.raw"
    for ((i = 0; i < size_mib / stripe; i += 2)); do
        dd if=/dev/urandom of="${work}/src.raw" bs=1M count="${stripe}" seek=$((i * stripe)) conv=notrunc status=none
        dd if=/dev/zero of="${work}/src.raw" bs=1M count=$((stripe / 2)) seek=$(((i + 1) * stripe)) conv=notrunc \
            status=none
    done
    qemu-img convert -f raw -O qcow2 "${work}/src.raw" "${work}/src.qcow2"
    sync
}

now() { date +%s.%N; }

# Before each measurement (untimed): dirty pages written back; with BENCH_CACHE=cold, caches dropped.
settle() {
    sync
    if [[ ${cache} == cold ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
}
elapsed() { awk -v start="$1" -v end="$2" 'BEGIN { printf "%.3f", end - start }'; }

# plain SRCFMT FMT: prints seconds
plain() {
    local start end
    rm -f "${work}/dest.$2"
    settle
    start=$(now)
    qemu-img convert -f "$1" -O "$2" "${work}/src.$1" "${work}/dest.$2"
    end=$(now)
    rm -f "${work}/dest.$2"
    elapsed "${start}" "${end}"
}

# module SRCFMT FMT [keep]: the module process; prints "seconds changed"
module() {
    local start end out
    [[ ${3:-} == keep ]] || rm -f "${work}/dest.$2"
    printf '{"ANSIBLE_MODULE_ARGS": {"src": "%s", "src_format": "%s", "path": "%s", "format": "%s"}}\n' \
        "${work}/src.$1" "$1" "${work}/dest.$2" "$2" >"${work}/args.json"
    settle
    start=$(now)
    out=$(cd "${work}" && PYTHONPATH=${ANSIBLE_COLLECTIONS_PATH} "${top}/.venv/bin/python" \
        -m ansible_collections.virtops.hypervisor.plugins.modules.qemu_image "${work}/args.json") ||
        die "qemu_image failed converting $1 to $2: ${out}"
    end=$(now)
    if [[ ${out} == *'"changed": true'* ]]; then changed=1; else changed=0; fi
    printf '%s %s\n' "$(elapsed "${start}" "${end}")" "${changed}"
}

# task SRCFMT FMT [keep]: the module through ansible-playbook; prints "task-seconds changed wall-seconds"
task() {
    local start end out
    [[ ${3:-} == keep ]] || rm -f "${work}/dest.$2"
    settle
    start=$(now)
    out=$("${playbook[@]}" -e "{\"bench_src\": \"${work}/src.$1\", \"bench_src_format\": \"$1\",
        \"bench_dest\": \"${work}/dest.$2\", \"bench_format\": \"$2\"}" | "${task_seconds[@]}") ||
        die "qemu_image failed converting $1 to $2"
    end=$(now)
    printf '%s %s\n' "${out}" "$(elapsed "${start}" "${end}")"
}

echo "bench/images: writing a ${size_mib} MiB source image in ${work}" >&2
make_source
data_mib=$(($(du -m "${work}/src.raw" | cut -f1)))

declare -A times=()
began=$(now)
for ((i = 0; i < runs; i++)); do
    for pair in "${PAIRS[@]}"; do
        from=${pair%%:*} to=${pair##*:}
        case $((i % 3)) in
            0) order=(plain module task) ;;
            1) order=(module task plain) ;;
            *) order=(task plain module) ;;
        esac
        for variant in "${order[@]}"; do
            case ${variant} in
                plain) times[plain,${pair}]+=" $(plain "${from}" "${to}")" ;;
                module)
                    read -r seconds changed < <(module "${from}" "${to}")
                    [[ ${changed} == 1 ]] || die "qemu_image did not convert ${from} to ${to}"
                    times[module,${pair}]+=" ${seconds}"
                    ;;
                task)
                    read -r seconds changed _wall < <(task "${from}" "${to}")
                    [[ ${changed} == 1 ]] || die "the qemu_image task did not convert ${from} to ${to}"
                    times[task,${pair}]+=" ${seconds}"
                    ;;
            esac
        done
    done
    # No-op reruns: convert once more, then rerun the module process and the task on it.
    module "${from}" "${to}" >/dev/null
    read -r seconds changed < <(module "${from}" "${to}" keep)
    [[ ${changed} == 0 ]] || die "the rerun of qemu_image (${from} to ${to}) was not a no-op"
    times[noop,module]+=" ${seconds}"
    read -r seconds changed wall < <(task "${from}" "${to}" keep)
    [[ ${changed} == 0 ]] || die "the rerun of the qemu_image task (${from} to ${to}) was not a no-op"
    times[noop,task]+=" ${seconds}"
    times[noop,wall]+=" ${wall}"
    rm -f "${work}/dest.${to}"
    echo "bench/images: run $((i + 1))/${runs} done" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '\nqemu-img convert vs qemu_image, %s, %d MiB image (%d MiB allocated), median of %d runs, %s cache (%s, %s)\n\n' \
    "$(date -u +%F)" "${size_mib}" "${data_mib}" "${runs}" "${cache}" "$(uname -n)" "$(qemu-img --version | head -n 1)"
echo '| Conversion | plain qemu-img convert | qemu_image (module process) | Ratio | qemu_image (ansible task) | Ratio |'
echo '| --- | --- | --- | --- | --- | --- |'
sum_plain=0 sum_module=0 sum_task=0
for pair in "${PAIRS[@]}"; do
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    plain_s=$(median ${times[plain,${pair}]})
    # shellcheck disable=SC2086
    module_s=$(median ${times[module,${pair}]})
    # shellcheck disable=SC2086
    task_s=$(median ${times[task,${pair}]})
    awk -v label="${pair/:/ -> }" -v p="${plain_s}" -v m="${module_s}" -v t="${task_s}" -v mib="${size_mib}" \
        'BEGIN { r = mib * 1.048576
                 printf "| %s | %.2f s (%.0f MB/s) | %.2f s (%.0f MB/s) | %.2f | %.2f s (%.0f MB/s) | %.2f |\n",
                        label, p, r / p, m, r / m, p / m, t, r / t, p / t }'
    read -r sum_plain sum_module sum_task < <(awk -v a="${sum_plain}" -v b="${sum_module}" -v c="${sum_task}" \
        -v p="${plain_s}" -v m="${module_s}" -v t="${task_s}" 'BEGIN { print a + p, b + m, c + t }')
done
awk -v p="${sum_plain}" -v m="${sum_module}" -v t="${sum_task}" \
    'BEGIN { printf "| all pairs (sum of medians) | %.2f s | %.2f s | %.2f | %.2f s | %.2f |\n", p, m, p / m, t, p / t }'
# shellcheck disable=SC2086
printf '\nNo-op rerun on the %d MiB image: module process %.2f s, ansible task %.2f s, whole ansible-playbook %.2f s (medians)\n' \
    "${size_mib}" "$(median ${times[noop,module]})" "$(median ${times[noop,task]})" "$(median ${times[noop,wall]})"
awk -v start="${began}" -v end="$(now)" 'BEGIN { printf "total time %.0f s\n", end - start }'
