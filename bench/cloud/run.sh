#!/usr/bin/env bash
# From a cloud image to 4 SSH-reachable VMs: virtops.hypervisor's libvirt_volume (the image by URL,
# a thin overlay per VM) and ONE libvirt_domain task (cloud_init, wait_for: ssh) versus
# community.libvirt 2.3.1's virt_cloud_instance in a loop followed by ansible.builtin.wait_for on
# port 22 of each VM, side by side; then the no-op rerun of both.
# Both run with ansible-playbook and a local connection INSIDE a privileged container of
# scripts/build-libvirt-image.sh (virtinst, xorriso and python3-yaml installed at bench time for
# virt_cloud_instance), so the NAT network, its dnsmasq and the TCG guests exist only there. The
# image of scripts/build-cloud-image.sh is served as .xz with SHA512SUMS by an HTTP server on the
# container's loopback: both variants start from no downloaded image (pool, image_cache_dir of
# virt_cloud_instance and download_cache of libvirt_volume emptied) and download it from there.
# Same settings for both (vars.yml): 4 VMs of 1 GiB and 1 vCPU, 4 GiB disks, one NAT network with a
# DHCP reservation per VM (same MACs), the same cloud-config (the default user with a new SSH key).
# The variants run one after the other, the other's VMs, disks and image removed; they alternate
# which goes first. Measured: the first run (until all 4 VMs answer on SSH) and the no-op rerun
# (must be changed=0 for this collection). Medians (bench_median) of BENCH_RUNS runs (default 1),
# as a markdown table; Ratio = loop time / module time (task durations from the JSON report). The
# measurement holds /var/tmp/virtops-heavy.lock (other TCG fleets on this machine wait for it).
# Usage: BENCH_RUNS=1 bench/cloud/run.sh   (root, from the repo root, after `make collection`;
#   about 7-8 minutes per run on 2 cores). VIRTOPS_COLLECTIONS: another collections directory
#   with virtops.hypervisor installed (default .build/collections).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
readonly top
readonly here=${top}/bench/cloud
readonly runs=${BENCH_RUNS:-1}
# shellcheck source=bench/lib.sh
source "${top}/bench/lib.sh"
readonly name=virtops-bench-cloud-$$
readonly served=/srv/bench-cloud-image
# The installed collection (make collection); another installed copy can be given, e.g. of a commit.
collections=$(realpath "${VIRTOPS_COLLECTIONS:-${top}/.build/collections}")
readonly collections

die() { printf 'bench/cloud: %s\n' "$*" >&2; exit 1; }
[[ ${runs} =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not '${runs}'"
grep -q wait_for "${collections}/ansible_collections/virtops/hypervisor/plugins/modules/libvirt_domain.py" ||
    die "no libvirt_domain with wait_for in ${collections}: run make collection"
anchors=$(bench_anchors "${top}") || die "community.libvirt 2.3.1 is not installed"
readonly anchors
image=$("${top}/scripts/build-libvirt-image.sh" | tail -n 1)
cloud_image=$("${top}/scripts/build-cloud-image.sh" | tail -n 1)

logs=$(mktemp -d /tmp/virtops-bench-cloud.XXXXXX)
readonly logs
bench_cleanup_on_exit bench/cloud "${name}" "${logs}"

ssh-keygen -q -t ed25519 -N '' -C virtops-bench -f "${logs}/id_ed25519"
public_key=$(cat "${logs}/id_ed25519.pub")

bench_container "${name}" "${image}" -v "${top}:${top}:ro" -v "${collections}:${collections}:ro" \
    -v "$(dirname "${cloud_image}"):${served}:ro" || die "no container"
inside() { podman exec -w "${here}" "$@"; }
inside "${name}" bash -euc '
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends virtinst xorriso osinfo-db python3-yaml >/dev/null
    systemd-run --unit=bench-cloud-http python3 -m http.server 8084 --bind 127.0.0.1 --directory '"${served}"' >/dev/null 2>&1' ||
    die "preparing the container failed"

# play PLAYBOOK REPORT: run one playbook inside the container, its JSON report into REPORT.
play() {
    inside -e ANSIBLE_CONFIG="${top}/ansible.cfg" -e ANSIBLE_STDOUT_CALLBACK=ansible.posix.json \
        -e ANSIBLE_LOCALHOST_WARNING=false -e ANSIBLE_COLLECTIONS_PATH="${anchors}:${collections}" \
        "${name}" "${top}/.venv/bin/ansible-playbook" -i localhost, -c local \
        -e ansible_python_interpreter=/usr/bin/python3 -e "bench_ssh_public_key='${public_key}'" \
        "$1" >"$2" 2>"$2.err" || { tail -n 30 "$2.err" >&2; die "$1 failed, see $2"; }
}
report=$(mktemp "${logs}/setup.XXXX.json")
play setup.yml "${report}"

# Every bench VM goes with its disks and seeds, and both variants' copies of the image.
clean() {
    # shellcheck disable=SC2016 # expanded by the bash inside the container
    inside "${name}" bash -euc '
        for vm in $(virsh list --all --name | grep "^bench-cloud-" || true); do
            virsh destroy "$vm" >/dev/null 2>&1 || true
            virsh undefine "$vm" >/dev/null
        done
        virsh pool-refresh bench-cloud >/dev/null
        for vol in $(virsh vol-list bench-cloud | awk "NR > 2 && NF {print \$1}"); do virsh vol-delete "$vol" bench-cloud >/dev/null; done
        rm -rf /var/lib/libvirt/images/bench-cloud-cache /var/cache/virtops/images
        [[ -z $(virsh list --all --name | grep "^bench-cloud-" || true) ]]'
}

# disks: MiB allocated by the pool and the download caches, and the disks' inodes and birth times (a running
# guest changes a disk's modification time; a disk made again is a new file).
disks() {
    # shellcheck disable=SC2016 # expanded by the bash inside the container
    inside "${name}" bash -euc 'du -sm /var/lib/libvirt/images/bench-cloud* /var/cache/virtops/images 2>/dev/null | awk "{s += \$1} END {print s}"
        stat -c "%n %i %W" /var/lib/libvirt/images/bench-cloud/bench-cloud-*.qcow2'
}

declare -A times=() rerun_changed=() notes=()
record() {
    local out seconds changed task report
    report=$(mktemp "${logs}/$1.$2.XXXX.json")
    play "$1.yml" "${report}"
    out=$("${top}/.venv/bin/python" "${here}/tasks.py" <"${report}") || die "$1.yml: no report, see ${report}"
    printf '%s %s:\n%s\n' "$1" "$2" "${out}" >&2
    while read -r seconds changed task; do
        [[ ${task} == total ]] || continue
        times[$1,$2]+=" ${seconds}"
        if [[ $2 == rerun ]]; then
            rerun_changed[$1]+=" ${changed}"
            [[ $1 != module || ${changed} == 0 ]] || die "the rerun of this collection was not a no-op: changed=${changed}"
        fi
    done <<<"${out}"
}

# measure VARIANT: from no bench VMs and no image, the first run and the rerun, and what they left on disk.
measure() {
    local before after
    clean
    record "$1" first
    before=$(disks)
    record "$1" rerun
    after=$(disks)
    notes[$1]="$(head -n 1 <<<"${before}") MiB on disk after the first run; the VMs' disks"
    if [[ $(tail -n +2 <<<"${before}") == $(tail -n +2 <<<"${after}") ]]; then notes[$1]+=" kept by the rerun"; else notes[$1]+=" made again by the rerun"; fi
}

exec 8>/var/tmp/virtops-heavy.lock
flock 8
began=$(date +%s.%N)
for ((i = 0; i < runs; i++)); do
    order=(loop module)
    ((i % 2 == 0)) || order=(module loop)
    for variant in "${order[@]}"; do measure "${variant}"; done
    echo "bench/cloud: run $((i + 1))/${runs} done" >&2
done
clean
flock -u 8

row() {
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    bench_row "$1" "$(bench_median ${times[module,$2]})" "$(bench_median ${times[loop,$2]})"
}
printf '\n4 cloud VMs to SSH, %s, median of %d runs (%s)\n\n' "$(date -u +%F)" "${runs}" "$(uname -n)"
echo '| Measurement | virtops.hypervisor (volumes + one domain task) | virt_cloud_instance loop + wait_for | Ratio |'
echo '| --- | --- | --- | --- |'
row "4 VMs, first run to SSH" first
row "4 VMs, no-op rerun" rerun
printf '\nvirt_cloud_instance reruns, changed items per run:%s\n' "${rerun_changed[loop]}"
printf 'module: %s\nloop: %s\n' "${notes[module]}" "${notes[loop]}"
awk -v start="${began}" -v end="$(date +%s.%N)" 'BEGIN { printf "total time %.0f s\n", end - start }'
