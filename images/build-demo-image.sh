#!/usr/bin/env bash
# Builds the demo/test guest: the Debian cloud kernel and a busybox initramfs whose /init prints
# "ORCHESTRATOR-GUEST-READY <name>[ boot=N]" on the serial console. Usage: build-demo-image.sh [OUTDIR]
# (default images/out/demo). Runs as root on Debian 12; downloads .debs, installs nothing.
set -euo pipefail

script="$(readlink -f "${BASH_SOURCE[0]}")"
here="$(dirname "$script")"
out="${1:-$here/out/demo}"

# Idempotent: an image newer than this script is up to date.
if [[ -f "$out/vmlinuz" && -f "$out/initrd.img" && "$out/vmlinuz" -nt "$script" && "$out/initrd.img" -nt "$script" ]]; then
    echo "demo image up to date in $out"
    exit 0
fi

for tool in apt-get apt-cache dpkg cpio gzip; do
    command -v "$tool" >/dev/null || { echo "build-demo-image: '$tool' is required" >&2; exit 1; }
done

mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/tmp}/demo-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# download PKG: fetch PKG's .deb into $work. Package lists can be missing (fresh container) or stale (the
# mirror dropped that version): refresh them once and retry before giving up.
download() {
    if (cd "$work" && apt-get download -qq "$1" 2>"$work/apt.err"); then
        return 0
    fi
    apt-get update -qq
    (cd "$work" && apt-get download -qq "$1" 2>"$work/apt.err") || {
        echo "build-demo-image: apt-get download $1 failed:" >&2
        cat "$work/apt.err" >&2
        exit 1
    }
}

# The metapackage only depends on the versioned kernel package, which holds the bzImage.
kernel_package() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}'
}
kpkg="$(kernel_package)"
if [[ -z "$kpkg" ]]; then
    apt-get update -qq
    kpkg="$(kernel_package)"
fi
[[ -n "$kpkg" ]] || { echo "build-demo-image: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
download "$kpkg"
kdeb="$(ls "$work"/linux-image-*.deb | head -n1)"
dpkg -x "$kdeb" "$work/kernel"
vmlinuz="$(ls "$work"/kernel/boot/vmlinuz-* | head -n1)"

# busybox: the installed static one when busybox-static is installed, else its .deb unpacked here.
if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' && [[ -x /bin/busybox ]]; then
    busybox=/bin/busybox
else
    download busybox-static
    bdeb="$(ls "$work"/busybox-static_*.deb | head -n1)"
    dpkg -x "$bdeb" "$work/busybox"
    busybox="$work/busybox/bin/busybox"
fi

root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,var/log,var/run,etc/orchestrator,etc/acpi/PWRF,lib/modules,mnt/seed}
# The ACPI power button (QMP system_powerdown) needs button.ko and evdev.ko: modules in the cloud kernel. The NoCloud
# seed disk needs virtio-blk and isofs, with what they depend on (the .ko's depends= lines, in load order).
seed_modules=(drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko drivers/virtio/virtio_pci_modern_dev.ko
    drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci.ko drivers/block/virtio_blk.ko drivers/cdrom/cdrom.ko
    fs/isofs/isofs.ko)
for module in drivers/acpi/button.ko drivers/input/evdev.ko "${seed_modules[@]}"; do
    found="$(find "$work/kernel/lib/modules" -path "*/kernel/$module*" | head -n1)"
    [[ -n "$found" ]] || { echo "build-demo-image: $module not in $kpkg" >&2; exit 1; }
    case "$found" in
        *.ko) cp "$found" "$root/lib/modules/" ;;
        *.ko.xz) xz -dc "$found" >"$root/lib/modules/$(basename "$module")" ;;
        *) echo "build-demo-image: cannot unpack $found" >&2; exit 1 ;;
    esac
done
# --- Networks (issue 19): virtio-net and what it depends on, when the kernel has them as modules (else built in).
for module in net/core/failover.ko drivers/net/net_failover.ko drivers/net/virtio_net.ko; do
    found="$(find "$work/kernel/lib/modules" -path "*/kernel/$module*" | head -n1)"
    case "$found" in
        "") ;;
        *.ko) cp "$found" "$root/lib/modules/" ;;
        *.ko.xz) xz -dc "$found" >"$root/lib/modules/$(basename "$module")" ;;
        *) echo "build-demo-image: cannot unpack $found" >&2; exit 1 ;;
    esac
done
# udhcpc's hook: sets the address, prefix and (when offered) the default route it was given.
cat >"$root/etc/orchestrator/udhcpc.sh" <<'EOF_DHCP'
#!/bin/sh
case "$1" in
    deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        if [ -n "$router" ]; then ip route replace default via "${router%% *}" dev "$interface"; fi
        # A lease that came after the boot's window is announced as the boot's would have been.
        if [ "$1" = bound ] && [ -n "$ORCHESTRATOR_LATE_DHCP" ]; then
            echo "orchestrator: $interface $(ip -4 -o addr show dev "$interface" | awk '{print $4}')" >/dev/console
        fi
        ;;
esac
exit 0
EOF_DHCP
chmod 0755 "$root/etc/orchestrator/udhcpc.sh"
# --- end of networks

# busybox acpid runs CONFDIR/PWRF/00000080 when the power button is pressed.
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF_ACPI'
#!/bin/sh
echo "orchestrator: power button, powering off" >/dev/console
poweroff -f
EOF_ACPI
chmod 0755 "$root/etc/acpi/PWRF/00000080"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
# One link per applet, made now so /init needs no `busybox --install` at boot.
for applet in $("$root/bin/busybox" --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
# The kernel opens /dev/console before running /init; without the node init would start with no stdio.
if [[ $EUID -eq 0 ]]; then
    mknod -m 600 "$root/dev/console" c 5 1
    mknod -m 666 "$root/dev/null" c 1 3
fi

cat >"$root/init" <<'EOF'
#!/bin/sh
# Demo guest init. The VM name comes from /etc/orchestrator/name, which the host's driver appends to the
# initramfs as a second cpio archive (never from the kernel command line).
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1

name=unknown
if [ -r /etc/orchestrator/name ]; then
    read -r name </etc/orchestrator/name || true
    [ -n "$name" ] || name=unknown
fi

# Graceful shutdown on the ACPI power button (QMP system_powerdown).
insmod /lib/modules/evdev.ko 2>/dev/null
insmod /lib/modules/button.ko 2>/dev/null
i=0
while [ ! -e /dev/input/event0 ] && [ "$i" -lt 20 ]; do
    sleep 0.05
    i=$((i + 1))
done
acpid -c /etc/acpi -l /dev/null

# The NoCloud seed (volume "cidata", cloud-init's meta-data and user-data) on a virtio disk, when the host attached
# one: only then are the virtio modules loaded, so a guest without one boots as fast as before.
if grep -qx 0x1af4 /sys/bus/pci/devices/*/vendor 2>/dev/null; then
    for module in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk cdrom isofs; do
        insmod "/lib/modules/$module.ko" 2>/dev/null
    done
    i=0
    while [ ! -e /dev/vda ] && [ "$i" -lt 40 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    for disk in /dev/vd?; do
        if mount -t iso9660 -o ro "$disk" /mnt/seed 2>/dev/null; then
            [ -r /mnt/seed/meta-data ] && break
            umount /mnt/seed
        fi
    done
fi
# --- Networks (issue 19): a virtio NIC gets its address by DHCP (the host's dnsmasq has a static entry for its MAC),
# printed before user-data runs (so a script can use the network) and before the ready banner.
if grep -qx 0x1041 /sys/bus/pci/devices/*/device 2>/dev/null || grep -qx 0x1000 /sys/bus/pci/devices/*/device 2>/dev/null; then
    for module in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
        insmod "/lib/modules/$module.ko" 2>/dev/null
    done
    i=0
    while [ ! -e /sys/class/net/eth0 ] && [ "$i" -lt 40 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    ip link set lo up
    for nic in /sys/class/net/eth*; do
        [ -e "$nic" ] || continue
        dev=${nic##*/}
        ip link set "$dev" up
        if udhcpc -i "$dev" -n -q -t 20 -T 1 -s /etc/orchestrator/udhcpc.sh >/dev/null 2>&1; then
            echo "orchestrator: $dev $(ip -4 -o addr show dev "$dev" | awk '{print $4}')"
        else
            # A DHCP server that answers late (its host busy starting several guests) still gets its chance: udhcpc
            # goes on asking in the background, every few seconds, and the hook prints the lease when it comes.
            echo "orchestrator: $dev no DHCP answer yet, still asking"
            ORCHESTRATOR_LATE_DHCP=1 udhcpc -i "$dev" -b -t 1 -T 2 -A 3 -s /etc/orchestrator/udhcpc.sh >/dev/null 2>&1
        fi
    done
fi
# --- end of networks

if [ -r /mnt/seed/meta-data ]; then
    host=$(sed -n 's/^local-hostname: *"\{0,1\}\([A-Za-z0-9.-]*\)"\{0,1\} *$/\1/p' /mnt/seed/meta-data)
    if [ -n "$host" ]; then
        hostname "$host"
        echo "orchestrator: hostname $host"
    fi
    if [ -s /mnt/seed/user-data ]; then
        echo "orchestrator: user-data $(wc -c </mnt/seed/user-data) bytes, sha256 $(sha256sum </mnt/seed/user-data | cut -d' ' -f1)"
        # A script runs (cloud-init runs a "#!" user-data once per instance; this guest has no state, so at every boot).
        if [ "$(head -c 2 /mnt/seed/user-data)" = '#!' ]; then
            cp /mnt/seed/user-data /tmp/user-data
            chmod 0700 /tmp/user-data
            /tmp/user-data
            echo "orchestrator: user-data exited $?"
        fi
    fi
fi

# ---- Storage (issue 18): the VM's persistent disk keeps a boot counter -------------------------------------------
# The host attaches the disk with serial "orchestrator-disk". Its first sector holds "ORCHESTRATOR-BOOTS <n>"; a new
# disk reads as zeros, so its first boot counts 1. No filesystem: a sector is all this needs, and the initramfs carries
# no filesystem module. The count goes into the ready banner ("... boot=N").
boot=
i=0
while [ -z "$boot" ] && [ -e /sys/block/vda ] && [ "$i" -lt 10 ]; do
    for serial in /sys/block/vd*/serial; do
        [ -r "$serial" ] && [ "$(cat "$serial")" = orchestrator-disk ] || continue
        dev=/dev/${serial#/sys/block/}
        dev=${dev%/serial}
        count=$(dd if="$dev" bs=512 count=1 2>/dev/null | tr -d '\000' | sed -n 's/^ORCHESTRATOR-BOOTS \([0-9][0-9]*\)$/\1/p')
        boot=$((${count:-0} + 1))
        printf 'ORCHESTRATOR-BOOTS %d\n' "$boot" | dd of="$dev" bs=512 count=1 conv=sync,notrunc,fsync 2>/dev/null
        echo "orchestrator: disk $dev, boot $boot"
        break
    done
    [ -n "$boot" ] || sleep 0.05
    i=$((i + 1))
done
# ---- end of storage ---------------------------------------------------------------------------------------------

burn=0
off=0
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        orchestrator.burn=1) burn=1 ;;
        orchestrator.poweroff=1) off=1 ;;
    esac
done

printf 'ORCHESTRATOR-GUEST-READY %s%s\n' "$name" "${boot:+ boot=$boot}"

if [ "$off" = 1 ]; then
    poweroff -f
fi

if [ "$burn" = 1 ]; then
    cpus=$(nproc 2>/dev/null || echo 1)
    i=0
    while [ "$i" -lt "$cpus" ]; do
        (while :; do :; done) &
        i=$((i + 1))
    done
    echo "orchestrator: burning $cpus cpu(s)"
    wait
fi

# A shell on the serial console for `orchestrator vm console`, started again whenever it exits. PID 1 stays here and
# never exits (the kernel would panic). cttyhack gives the shell the console as its controlling tty (job control, ^C).
while :; do
    setsid cttyhack sh -l
    sleep 1
done
EOF
chmod 0755 "$root/init"

cp "$vmlinuz" "$work/vmlinuz"
chmod 0644 "$work/vmlinuz"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 >"$work/initrd.img"
chmod 0644 "$work/initrd.img"

# Move into place atomically: a reader sees the old image or the new one, never half of one.
cp "$work/vmlinuz" "$out/.vmlinuz.tmp.$$"
cp "$work/initrd.img" "$out/.initrd.img.tmp.$$"
mv -f "$out/.vmlinuz.tmp.$$" "$out/vmlinuz"
mv -f "$out/.initrd.img.tmp.$$" "$out/initrd.img"
echo "demo image: $out/vmlinuz ($(basename "$vmlinuz")), $out/initrd.img ($(stat -c %s "$out/initrd.img") bytes)"
