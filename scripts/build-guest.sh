#!/usr/bin/env bash
# Build a tiny bootable Linux guest for libvirt tests: Debian 12's cloud kernel plus an
# initramfs holding only busybox (static), the kernel modules the guest needs and an /init.
# No disk, no root filesystem: the guest lives in its initramfs. A virtio NIC works; the guest
# configures it only when asked (virtops.dhcp, below).
#
# Usage: scripts/build-guest.sh [OUTDIR]      (root; default OUTDIR /var/lib/libvirt/images/virtops-guest)
#   Writes OUTDIR/vmlinuz and OUTDIR/initrd.img (0644, OUTDIR 0755) and OUTDIR/.hash.
#   Progress goes to stderr; OUTDIR is printed on stdout as the last line, e.g.
#     dir=$(scripts/build-guest.sh | tail -n 1)
#   OUTDIR must be readable by the qemu user (not under /root).
# Cache: <hash> = sha256(this script + exact kernel and busybox package versions), first 16 hex.
#   If OUTDIR/.hash holds it, nothing is done (no network). The versions apt would install are
#   looked up again only when apt's state (sources, lists, preferences, dpkg status) changed.
#   The .debs are kept in <repo>/.build/guest-debs. A rebuild happens in a temp dir next to
#   OUTDIR; the files are then renamed into place (.hash last, so an interrupted run rebuilds).
#
# The guest (domain type='qemu' (TCG) works; nothing needs KVM):
#   <os><type arch='x86_64' machine='pc'>hvm</type>
#       <kernel>OUTDIR/vmlinuz</kernel><initrd>OUTDIR/initrd.img</initrd>
#       <cmdline>console=ttyS0 no_timer_check</cmdline></os>
#   <features><acpi/><apic/></features>, a serial console (ttyS0), 128 MiB of memory (boots
#   from 72 MiB; 68 MiB: initramfs unpacking fails, then OOM; 64 MiB: resets before the kernel
#   prints anything).
#   no_timer_check: under TCG on a busy host the kernel's early IO-APIC timer check can fail
#   ("Kernel panic - not syncing: IO-APIC + timer doesn't work!"); this skips it.
#   - prints the line "virtops-guest: ready" on the console once the ACPI power button is
#     handled (a serial log line ends in CR LF; match the text, not the whole line)
#   - `virsh shutdown` (ACPI power button): prints "virtops-guest: powering off" and powers
#     off at once (busybox acpid -> poweroff -f)
#   - kernel command line virtops.ignore_acpi=1: the power button is ignored (only
#     `virsh destroy` stops the guest), for tests of shutdown timeouts
#   A power button press before "ready" is lost.
#   - kernel command line virtops.dhcp: busybox udhcpc asks for an address on eth0 (a virtio NIC)
#     in the background, after "ready", and prints "virtops-guest: ip 10.77.0.10/24" once it has one
#     ("virtops-guest: dhcp failed" after ~30 s without an answer). Without it eth0 stays down.
set -euo pipefail
umask 022

readonly KERNEL_META=linux-image-cloud-amd64
readonly BUSYBOX_PKG=busybox-static
# Kernel options the guest cannot do without (must be built in; PACKET: udhcpc's raw socket).
readonly NEED_BUILTIN=(BLK_DEV_INITRD RD_GZIP DEVTMPFS PROC_FS SYSFS TMPFS BINFMT_SCRIPT
    SERIAL_8250 SERIAL_8250_CONSOLE ACPI INPUT PACKET INET)
# OPTION:module for what may be a module: built in (y) -> nothing to do, m -> the module (and
# what it depends on) goes into the initramfs and is loaded by /init.
# ACPI_BUTTON turns the ACPI power button into an input device, INPUT_EVDEV gives it a
# /dev/input/event* node for acpid. VIRTIO_PCI is the transport virtio_net's NIC sits on (not a
# module dependency of virtio_net, so named here); virtio_net brings failover and net_failover.
readonly NEED_MODULE=(ACPI_BUTTON:button INPUT_EVDEV:evdev VIRTIO_PCI:virtio_pci VIRTIO_NET:virtio_net)

step() { printf '%s\n' "build-guest: $*" >&2; }
die() { printf '%s\n' "build-guest: ERROR: $*" >&2; exit 1; }

(($# <= 1)) || die "usage: $0 [OUTDIR]"
[[ ${EUID} -eq 0 ]] || die "must run as root (apt-get, mknod)"
outdir=$(realpath -m -- "${1:-/var/lib/libvirt/images/virtops-guest}")
[[ ${outdir} != / ]] || die "OUTDIR must not be /"
readonly outdir

self=$(readlink -f "${BASH_SOURCE[0]}")
top=$(cd "$(dirname "${self}")/.." && pwd)
readonly self top
readonly cache=${top}/.build/guest-debs
# Plain `shellcheck` does not follow it (SC1091); `shellcheck -x` does.
# shellcheck source=scripts/lib.sh disable=SC1091
source "${top}/scripts/lib.sh"

# --- 1. the exact package versions (cached while apt's state is unchanged) ---------------
resolve_versions() {
    local records
    records=$(candidate "${KERNEL_META}" "${BUSYBOX_PKG}")
    if [[ -z $(field "${KERNEL_META}" Version <<<"${records}") ]]; then
        step "apt knows no ${KERNEL_META}: apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
        records=$(candidate "${KERNEL_META}" "${BUSYBOX_PKG}")
    fi
    kpkg=$(kernel_package "${KERNEL_META}" <<<"${records}")
    [[ -n ${kpkg} ]] || die "cannot resolve the kernel package ${KERNEL_META} depends on"
    kver=$(candidate "${kpkg}" | field "${kpkg}" Version)
    bbver=$(field "${BUSYBOX_PKG}" Version <<<"${records}")
    [[ -n ${kver} ]] || die "no installable version of ${kpkg}"
    [[ -n ${bbver} ]] || die "no installable version of ${BUSYBOX_PKG}"
}

mkdir -p "${cache}"
stamp=$(apt_stamp)
kpkg='' kver='' bbver=''
if [[ -f ${cache}/versions ]]; then
    read -r cached_stamp kpkg kver bbver _ <"${cache}/versions" || true
    [[ ${cached_stamp:-} == "${stamp}" && -n ${bbver} ]] || kpkg=''
fi
if [[ -z ${kpkg} ]]; then
    resolve_versions
    tmp=$(mktemp "${cache}/.versions.XXXXXX")
    printf '%s %s %s %s\n' "${stamp}" "${kpkg}" "${kver}" "${bbver}" >"${tmp}"
    chmod 0644 "${tmp}"
    mv -f "${tmp}" "${cache}/versions"
fi
hash=$({ cat "${self}"; printf '\n%s=%s\n%s=%s\n' "${kpkg}" "${kver}" "${BUSYBOX_PKG}" "${bbver}"; } |
    sha256sum | cut -c1-16)

is_current() {
    [[ -f ${outdir}/vmlinuz && -f ${outdir}/initrd.img && -f ${outdir}/.hash &&
        $(<"${outdir}/.hash") == "${hash}" ]]
}
reuse_or_lock "${outdir}.lock" is_current "${outdir}" "${hash}: ${kpkg} ${kver}, ${BUSYBOX_PKG} ${bbver}"

# --- 2. build ----------------------------------------------------------------------------
step "building ${outdir} (${hash}: ${kpkg} ${kver}, ${BUSYBOX_PKG} ${bbver})"
ensure_packages build-guest cpio >&2

# A temp dir next to OUTDIR: the results are renamed into place on the same filesystem.
workdir=$(mktemp -d "${outdir}.build.XXXXXX")
trap 'remove_build_dir "${workdir}"' EXIT
trap 'exit 130' INT TERM

# fetch PACKAGE VERSION: print the cached .deb of exactly that version, downloading it if needed.
fetch() {
    local pkg=$1 ver=$2 f dltmp
    for f in "${cache}/${pkg}_"*.deb; do
        if [[ -f ${f} && $(dpkg-deb -f "${f}" Version 2>/dev/null) == "${ver}" ]]; then
            printf '%s\n' "${f}"
            return 0
        fi
    done
    # Into a temp dir first: the cache never holds a partial download. apt would drop to the
    # _apt user, which cannot write here; say so instead of letting it warn.
    dltmp=$(mktemp -d "${cache}/.download.XXXXXX")
    if ! (cd "${dltmp}" && apt-get download -q -o APT::Sandbox::User=root "${pkg}=${ver}") >&2; then
        rm -rf "${dltmp}"
        die "apt-get download ${pkg}=${ver} failed"
    fi
    f=$(find "${dltmp}" -maxdepth 1 -name '*.deb' -print -quit)
    [[ -n ${f} ]] && mv -f "${f}" "${cache}/"
    rm -rf "${dltmp}"
    [[ -n ${f} ]] || die "apt-get download ${pkg}=${ver}: no .deb"
    printf '%s\n' "${cache}/${f##*/}"
}

start=${SECONDS}
kdeb=$(fetch "${kpkg}" "${kver}")
bbdeb=$(fetch "${BUSYBOX_PKG}" "${bbver}")
# Drop .debs of other versions.
find "${cache}" -maxdepth 1 -name '*.deb' ! -name "${kdeb##*/}" ! -name "${bbdeb##*/}" -delete
step "debs: ${kdeb##*/}, ${bbdeb##*/} ($((SECONDS - start)) s)"

kroot=${workdir}/kernel
bbroot=${workdir}/busybox
root=${workdir}/initramfs
dpkg-deb -x "${kdeb}" "${kroot}"
dpkg-deb -x "${bbdeb}" "${bbroot}"

vmlinuz=$(find "${kroot}/boot" -maxdepth 1 -type f -name 'vmlinuz-*' -print -quit)
[[ -n ${vmlinuz} ]] || die "no /boot/vmlinuz-* in ${kdeb##*/}"
krel=${vmlinuz##*/vmlinuz-}
config=${kroot}/boot/config-${krel}
[[ -f ${config} ]] || die "no /boot/config-${krel} in ${kdeb##*/}"
moddir=$(find "${kroot}" -maxdepth 4 -type d -path "*/modules/${krel}" -print -quit)
[[ -n ${moddir} ]] || die "no modules/${krel} in ${kdeb##*/}"
busybox=$(find "${bbroot}" -type f -name busybox -perm -u+x -print -quit)
[[ -n ${busybox} ]] || die "no busybox binary in ${bbdeb##*/}"

kconfig() { sed -n "s/^CONFIG_$1=//p" "${config}"; }
for opt in "${NEED_BUILTIN[@]}"; do
    [[ $(kconfig "${opt}") == y ]] || die "kernel ${krel}: CONFIG_${opt} is not built in"
done

# initramfs skeleton; /dev/console is needed before /init mounts devtmpfs.
mkdir -p "${root}"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,root,etc/acpi/PWRF} \
    "${root}/lib/modules/${krel}"
install -d -m 1777 "${root}/tmp"
mknod -m 600 "${root}/dev/console" c 5 1
mknod -m 666 "${root}/dev/null" c 1 3
install -m 0755 "${busybox}" "${root}/bin/busybox"
applets=0
while read -r applet; do
    [[ -n ${applet} && ${applet} != bin/busybox && ! -e ${root}/${applet} ]] || continue
    mkdir -p "$(dirname "${root}/${applet}")"
    ln -s /bin/busybox "${root}/${applet}"
    applets=$((applets + 1))
done < <("${root}/bin/busybox" --list-full)
step "busybox ${bbver}: ${applets} applets"

# Modules: decompressed here (busybox insmod and the kernel then need no xz/zstd support;
# the signature stays valid, it is appended to the uncompressed module).
need_tool() { command -v "$1" >/dev/null || ensure_packages build-guest "$2" >&2; }
modules=()
add_module() {
    local name=$1 src dest dep
    [[ " ${modules[*]} " != *" ${name} "* ]] || return 0
    src=$(find "${moddir}" -type f \( -name "${name}.ko" -o -name "${name}.ko.*" \
        -o -name "${name//_/-}.ko" -o -name "${name//_/-}.ko.*" \) -print -quit)
    [[ -n ${src} ]] || die "kernel ${krel}: module ${name} not found"
    dest=${root}/lib/modules/${krel}/${name}.ko
    case ${src} in
        *.ko) cp "${src}" "${dest}" ;;
        *.ko.xz)
            need_tool xz xz-utils
            xz -dc "${src}" >"${dest}"
            ;;
        *.ko.zst)
            need_tool zstd zstd
            zstd -dcq "${src}" >"${dest}"
            ;;
        *.ko.gz) gzip -dc "${src}" >"${dest}" ;;
        *) die "kernel ${krel}: unknown module format ${src##*/}" ;;
    esac
    # Dependencies first (load order).
    for dep in $(tr '\0' '\n' <"${dest}" | sed -n 's/^depends=//p' | tr ',' ' '); do
        add_module "${dep}"
    done
    modules+=("${name}")
}
for spec in "${NEED_MODULE[@]}"; do
    case $(kconfig "${spec%%:*}") in
        y) ;;
        m) add_module "${spec#*:}" ;;
        *) die "kernel ${krel}: CONFIG_${spec%%:*} is neither built in nor a module" ;;
    esac
done
printf '%s\n' "${modules[@]}" >"${root}/etc/virtops-modules"
step "kernel ${krel}: modules ${modules[*]:-(none needed)}"

# busybox acpid maps the power button's KEY_POWER press to the action PWRF/00000080 and runs
# /etc/acpi/PWRF/00000080 (it reads /dev/input/event0, 1, ... up to the first missing one).
cat >"${root}/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "virtops-guest: powering off" >/dev/console
sync
exec poweroff -f
EOF
chmod 0755 "${root}/etc/acpi/PWRF/00000080"

# udhcpc runs this with $1 = deconfig | bound | renew | leasefail | nak and the lease in the
# environment ($ip, $mask as a prefix length, $router).
cat >"${root}/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case $1 in
    deconfig) ip addr flush dev "${interface}" ;;
    bound | renew)
        ip addr flush dev "${interface}"
        ip addr add "${ip}/${mask}" dev "${interface}"
        [ -z "${router}" ] || ip route add default via "${router%% *}" dev "${interface}"
        echo "virtops-guest: ip ${ip}/${mask}" >/dev/console
        ;;
esac
exit 0
EOF
chmod 0755 "${root}/etc/udhcpc.script"

cat >"${root}/init" <<'EOF'
#!/bin/sh
# virtops-guest /init (PID 1), written by scripts/build-guest.sh
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
exec </dev/console >/dev/console 2>&1
say() { echo "virtops-guest: $*"; }

ignore_acpi=0
dhcp=0
for arg in $(cat /proc/cmdline); do
    case ${arg} in
        virtops.ignore_acpi=1) ignore_acpi=1 ;;
        virtops.dhcp) dhcp=1 ;;
    esac
done

while read -r mod; do
    [ -n "${mod}" ] || continue
    insmod "/lib/modules/$(uname -r)/${mod}.ko" || say "insmod ${mod} failed"
done </etc/virtops-modules

if [ "${ignore_acpi}" = 1 ]; then
    say "ignoring the ACPI power button (virtops.ignore_acpi=1)"
else
    # Wait for the power button's input device and its /dev node (devtmpfs creates it
    # asynchronously), and for every event node: acpid stops at the first gap.
    i=0
    while [ "${i}" -lt 100 ]; do
        if grep -q '^N: Name="Power Button"' /proc/bus/input/devices; then
            missing=0
            for ev in /sys/class/input/event*; do
                [ -c "/dev/input/${ev##*/}" ] || missing=1
            done
            [ "${missing}" = 1 ] || break
        fi
        usleep 50000
        i=$((i + 1))
    done
    [ "${i}" -lt 100 ] || say "no ACPI power button input device"
    # acpid writes its pid file once it has opened the event devices.
    acpid -l /run/acpid.log -p /run/acpid.pid
    i=0
    while [ ! -s /run/acpid.pid ] && [ "${i}" -lt 100 ]; do
        usleep 50000
        i=$((i + 1))
    done
    [ -s /run/acpid.pid ] || say "acpid did not start"
fi

say ready
if [ "${dhcp}" = 1 ]; then
    # The NIC appears once virtio_net has probed it; then ask for an address in the background.
    (
        i=0
        while [ ! -e /sys/class/net/eth0 ] && [ "${i}" -lt 100 ]; do
            usleep 50000
            i=$((i + 1))
        done
        ip link set eth0 up &&
            udhcpc -i eth0 -s /etc/udhcpc.script -q -n -t 15 -T 2 >/dev/null 2>&1 ||
            say "dhcp failed"
    ) &
fi
# PID 1 must not exit (kernel panic); the shell also reaps orphans while waiting.
while :; do
    sleep 3600
done
EOF
chmod 0755 "${root}/init"

# Reproducible archive: fixed owner, mtimes and order.
find "${root}" -exec touch -h -d @0 {} +
initrd=${workdir}/initrd.img
(cd "${root}" && find . -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) | gzip -9 -n >"${initrd}"
cp "${vmlinuz}" "${workdir}/vmlinuz"
chmod 0644 "${workdir}/vmlinuz" "${initrd}"
step "vmlinuz $(du -h "${workdir}/vmlinuz" | cut -f1), initrd.img $(du -h "${initrd}" | cut -f1)"

# --- 3. into place -----------------------------------------------------------------------
mkdir -p "${outdir}"
chmod 0755 "${outdir}"
rm -f "${outdir}/.hash"
mv -f "${workdir}/vmlinuz" "${outdir}/vmlinuz"
mv -f "${initrd}" "${outdir}/initrd.img"
printf '%s\n' "${hash}" >"${workdir}/.hash"
chmod 0644 "${workdir}/.hash"
mv -f "${workdir}/.hash" "${outdir}/.hash"
step "built ${outdir} ($((SECONDS - start)) s)"
printf '%s\n' "${outdir}"
