#!/usr/bin/env bash
# make demo [TARGET=container|localhost]: run playbooks/demo.yml: site.yml (a KVM host, then a tiny
# emulated VM on it), then a snapshot and a revert of the VM (once), printing the summaries.
# The container target is a Debian 12 container with systemd as PID 1, built without a registry.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
readonly top
readonly target=${1:-container}
readonly NAME=virtops-demo
# The demo VM's NAT network needs these: libvirt sets bridge sysctls under /proc/sys (read-only in a
# plain container) and dnsmasq opens raw sockets; without them the network does not start.
readonly RUN_OPTIONS=(--cap-add NET_ADMIN --cap-add NET_RAW --device /dev/net/tun --security-opt systempaths=unconfined)
# A container made with other options (an older demo.sh) is recreated: the label records them.
options_hash=$(printf '%s\n' "${RUN_OPTIONS[@]}" | sha256sum | cut -c 1-12)
readonly options_hash

case ${target} in
    container)
        image=$("${top}/scripts/build-image.sh" bookworm | tail -n 1)
        # The image and the run options the container was made with, one string.
        wanted="${image} ${options_hash}"
        current=$(podman container inspect --format '{{.ImageName}} {{index .Config.Labels "org.virtops.demo.options"}}' \
            "${NAME}" 2>/dev/null || true)
        if [[ ${current} == "${wanted}" && $(podman container inspect --format '{{.State.Running}}' "${NAME}") != true ]]; then
            podman start "${NAME}" >/dev/null || current=''
        fi
        # podman can list a container as running whose processes are gone (exec then fails): recreate it.
        if [[ ${current} == "${wanted}" ]] && ! podman exec "${NAME}" true >/dev/null 2>&1; then
            echo "demo: container ${NAME} does not answer; recreating it"
            current=''
        fi
        if [[ ${current} != "${wanted}" ]]; then
            podman rm --force "${NAME}" >/dev/null 2>&1 || true
            echo "demo: starting container ${NAME} from ${image}"
            podman run --detach --name "${NAME}" --hostname "${NAME}" --systemd=always "${RUN_OPTIONS[@]}" \
                --label "org.virtops.demo.options=${options_hash}" "${image}" /sbin/init >/dev/null
        fi
        # apt fails while systemd is still mounting /tmp: wait for the boot to finish (right after
        # the start systemd may not even have its bus socket yet, hence the loop).
        for ((i = 0; i < 120; i++)); do
            [[ $(podman exec "${NAME}" systemctl is-system-running --wait 2>/dev/null) =~ running|degraded ]] && break
            sleep 0.5
        done
        inventory=${top}/playbooks/inventory/demo_container.yml
        ;;
    localhost)
        inventory=${top}/playbooks/inventory/demo_localhost.yml
        ;;
    *)
        echo "demo: TARGET must be container or localhost, not '${target}'" >&2
        exit 2
        ;;
esac

guest_dir=$("${top}/scripts/build-guest.sh" | tail -n 1)

cd "${top}"
"${top}/.venv/bin/ansible-playbook" -i "${inventory}" -e "virtops_guest_dir=${guest_dir}" playbooks/demo.yml
