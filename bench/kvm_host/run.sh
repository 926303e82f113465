#!/usr/bin/env bash
# No-op rerun of the kvm_host role versus a minimal hand-written playbook (apt + template +
# service), side by side on the same fresh Debian 12 container, alternating runs.
# Usage: bench/kvm_host/run.sh [runs]   (from the repo root, after `make collection`)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
readonly top
readonly runs=${1:-5}
readonly NAME=virtops-bench-kvm
export ANSIBLE_CONFIG=${top}/ansible.cfg ANSIBLE_COLLECTIONS_PATH=${top}/.build/collections
playbook=("${top}/.venv/bin/ansible-playbook" -i "${NAME}," -e ansible_connection=containers.podman.podman
    -e ansible_python_interpreter=/usr/bin/python3)

image=$("${top}/scripts/build-image.sh" bookworm | tail -n 1)
podman rm --force "${NAME}" >/dev/null 2>&1 || true
podman run --detach --name "${NAME}" --systemd=always "${image}" /sbin/init >/dev/null
trap 'podman rm --force "${NAME}" >/dev/null 2>&1 || true' EXIT
for ((i = 0; i < 120; i++)); do
    [[ $(podman exec "${NAME}" systemctl is-system-running --wait 2>/dev/null) =~ running|degraded ]] && break
    sleep 0.5
done

# First runs install the packages and converge; they are not measured.
"${playbook[@]}" "${top}/bench/kvm_host/role.yml" >/dev/null
"${playbook[@]}" "${top}/bench/kvm_host/minimal.yml" >/dev/null

seconds() {
    local start end recap
    start=$(date +%s.%N)
    recap=$("${playbook[@]}" "$1" | grep -E "^${NAME} +:")
    end=$(date +%s.%N)
    [[ ${recap} == *" changed=0 "* ]] || { echo "not a no-op rerun: ${recap}" >&2; exit 1; }
    awk -v start="${start}" -v end="${end}" 'BEGIN { printf "%.3f\n", end - start }'
}

role_times=() minimal_times=()
for ((i = 0; i < runs; i++)); do
    role_times+=("$(seconds "${top}/bench/kvm_host/role.yml")")
    minimal_times+=("$(seconds "${top}/bench/kvm_host/minimal.yml")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
role=$(median "${role_times[@]}")
minimal=$(median "${minimal_times[@]}")
printf 'kvm_host no-op rerun (median of %d): role %.2f s, minimal playbook %.2f s, ratio %.2f\n' \
    "${runs}" "${role}" "${minimal}" "$(awk -v a="${role}" -v b="${minimal}" 'BEGIN { print a / b }')"
