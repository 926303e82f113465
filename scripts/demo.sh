#!/usr/bin/env bash
# make demo [TARGET=container|localhost]: run playbooks/demo.yml: the kvm_host role and vms.yml (a
# KVM host, then a tiny emulated VM on it), then a snapshot and a revert of the VM (once), printing
# the summaries. scripts/demo.sh [TARGET [ansible-playbook options]] passes the options on, e.g.
# `scripts/demo.sh container --check --diff`.
# The container target is a Debian 12 container with systemd as PID 1, built without a registry; there
# the demo also runs playbooks/lab.yml for one VM from the cloud image of scripts/build-cloud-image.sh
# (served over HTTP on the container's loopback, downloaded by libvirt_volume) and reaches it over SSH
# through the virtops.hypervisor.libvirt inventory plugin.
#
# Ansible reaches the container through community.docker.nsenter (nsenter into its PID), not podman
# exec: a podman exec costs 0.3-0.5 s and a task needs two or three of them. demo.sh writes the PID
# into .build/demo/*.yml on each run (a recreated container has a new one);
# playbooks/inventory/demo_container.yml alone still works, over the podman connection.
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
readonly demo_dir=${top}/.build/demo
# The cloud image, served inside the container to lab.yml's libvirt_volume (url + checksum file).
readonly SERVED=/srv/virtops/cloud HTTP_PORT=8081 HTTP_UNIT=virtops-demo-http
# The lab: its network, pool, tag and VM names (virtops-demo-lab-1), on its own subnet.
readonly LAB=virtops-demo-lab LAB_SUBNET=10.81.0
# Builds of the cloud image and boots of cloud VMs take this lock, shared with the tests on this
# machine: on two cores, several TCG guests at once make every boot slow.
readonly HEAVY_LOCK=/var/tmp/virtops-heavy.lock

# Copies the image's .xz and SHA512SUMS into the container when its SHA512SUMS differs (the checksum
# file last, so an interrupted copy is done again), and starts the HTTP server unless it runs.
serve_cloud_image() {
    local image=$1
    local sums=${image%/*}/SHA512SUMS
    if [[ $(podman exec "${NAME}" cat "${SERVED}/SHA512SUMS" 2>/dev/null) != "$(cat "${sums}")" ]]; then
        echo "demo: copying the cloud image into ${NAME}:${SERVED}"
        podman exec "${NAME}" mkdir -p "${SERVED}"
        podman cp "${image}.xz" "${NAME}:${SERVED}/"
        podman cp "${sums}" "${NAME}:${SERVED}/SHA512SUMS"
    fi
    if ! podman exec "${NAME}" systemctl is-active --quiet "${HTTP_UNIT}"; then
        podman exec "${NAME}" systemd-run --quiet --collect --unit="${HTTP_UNIT}" \
            python3 -m http.server "${HTTP_PORT}" --bind 127.0.0.1 --directory "${SERVED}"
    fi
}

# Inventory sources for the container with PID $1: the container over nsenter, and its VMs through
# the inventory plugin (libvirtd's socket under /proc/<pid>/root; SSH through the container's network
# namespace, where the lab network is).
write_inventories() {
    local pid=$1
    local proxy="nsenter --net=/proc/${pid}/ns/net nc %h %p"
    cat >"${demo_dir}/container.yml" <<EOF
# Written by scripts/demo.sh on each run: ${NAME} is PID ${pid} now.
kvm_hosts:
  hosts:
    ${NAME}:
      ansible_connection: community.docker.nsenter
      ansible_nsenter_pid: ${pid}
EOF
    cat >"${demo_dir}/lab.libvirt.yml" <<EOF
# Written by scripts/demo.sh on each run: the VMs of ${NAME} (PID ${pid}) named ${LAB}-*.
plugin: virtops.hypervisor.libvirt
uris: ['qemu+unix:///system?socket=/proc/${pid}/root/run/libvirt/libvirt-sock']
address_sources: [lease]
filters: ["libvirt_name.startswith('${LAB}-')"]
compose:
  ansible_user: "'debian'"
  ansible_python_interpreter: "'/usr/bin/python3'"
  ansible_ssh_private_key_file: "'${demo_dir}/id_ed25519'"
  ansible_ssh_common_args: >-
    "-o 'ProxyCommand=${proxy}' -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
EOF
}

# lab.yml's variables for one VM from the image at $1 (served by serve_cloud_image), JSON.
lab_variables() {
    local url=http://127.0.0.1:${HTTP_PORT}
    printf '{"lab_name": "%s", "lab_subnet": "%s", "lab_vm_count": 1, "lab_domain_type": "qemu",
        "lab_disk_size": "4G", "lab_image_url": "%s/%s.xz", "lab_image_checksum": "%s/SHA512SUMS",
        "lab_ssh_public_key": "%s"}' "${LAB}" "${LAB_SUBNET}" "${url}" "${1##*/}" "${url}" \
        "$(cat "${demo_dir}/id_ed25519.pub")"
}

case ${target} in
    container)
        mkdir -p "${demo_dir}"
        # The cloud image builds (about 3 minutes; cached 0.1 s) while the container image does.
        flock "${HEAVY_LOCK}" "${top}/scripts/build-cloud-image.sh" >"${demo_dir}/cloud-image.out" \
            2>"${demo_dir}/cloud-image.log" &
        cloud_build=$!
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
        if ! wait "${cloud_build}"; then
            echo "demo: scripts/build-cloud-image.sh failed (${demo_dir}/cloud-image.log):" >&2
            tail -n 20 "${demo_dir}/cloud-image.log" >&2
            exit 1
        fi
        cloud_image=$(tail -n 1 "${demo_dir}/cloud-image.out")
        serve_cloud_image "${cloud_image}"
        # The key cloud-init gives the lab VM's user: made once, kept.
        if [[ ! -f ${demo_dir}/id_ed25519 ]]; then
            ssh-keygen -q -t ed25519 -N '' -C virtops-demo -f "${demo_dir}/id_ed25519"
        fi
        write_inventories "$(podman container inspect --format '{{.State.Pid}}' "${NAME}")"
        inventory=(-i "${top}/playbooks/inventory/demo_container.yml" -i "${demo_dir}/container.yml"
            -i "${demo_dir}/lab.libvirt.yml")
        lab_vars=$(lab_variables "${cloud_image}")
        # lab.yml boots a cloud VM on the first run.
        lock=(flock "${HEAVY_LOCK}")
        ;;
    localhost)
        inventory=(-i "${top}/playbooks/inventory/demo_localhost.yml")
        # No lab here (it would make a network on this machine, and the image is not served): lab.yml's
        # first play gets no host, its second and the report find no lab VM.
        lab_vars='{"lab_hosts": "kvm_hosts:!kvm_hosts"}'
        lock=()
        ;;
    *)
        echo "demo: TARGET must be container or localhost, not '${target}'" >&2
        exit 2
        ;;
esac

guest_dir=$("${top}/scripts/build-guest.sh" | tail -n 1)

cd "${top}"
"${lock[@]}" "${top}/.venv/bin/ansible-playbook" "${inventory[@]}" -e "virtops_guest_dir=${guest_dir}" \
    -e "${lab_vars}" playbooks/demo.yml "${@:2}"
