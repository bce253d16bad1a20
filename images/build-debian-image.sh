#!/usr/bin/env bash
# Builds a real Debian 12 guest the way a user's image looks: debootstrap'd from Debian's packages with the cloud
# kernel, cloud-init, openssh-server and qemu-guest-agent, as a qcow2 root disk plus that kernel and its initrd so the
# driver boots it directly (-kernel/-initrd, root=/dev/vda), no bootloader. Usage: build-debian-image.sh [OUTDIR]
# (default images/out/debian). Runs as root on Debian 12 with debootstrap, e2fsprogs and qemu-utils; makes no loop
# device and mounts nothing on the host (debootstrap mounts /proc inside its own target only).
set -euo pipefail

script="$(readlink -f "${BASH_SOURCE[0]}")"
here="$(dirname "$script")"
out="${1:-$here/out/debian}"
files=(rootfs.qcow2 vmlinuz initrd.img)

# Idempotent: an image whose every file is newer than this script is up to date.
up_to_date() {
    local file
    for file in "${files[@]}"; do
        [[ -f "$out/$file" && "$out/$file" -nt "$script" ]] || return 1
    done
}
if up_to_date; then
    echo "debian image up to date in $out"
    exit 0
fi

[[ $EUID -eq 0 ]] || { echo "build-debian-image: must run as root (debootstrap chroots)" >&2; exit 1; }
for tool in debootstrap mkfs.ext4 qemu-img; do
    command -v "$tool" >/dev/null || {
        echo "build-debian-image: '$tool' is required (apt-get install debootstrap e2fsprogs qemu-utils, or scripts/prerequisites.sh --tests)" >&2
        exit 1
    }
done

# The host's own mirror (its sources.list.d), else Debian's.
mirror="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
[[ "$mirror" == http* && "$mirror" != *security* ]] || mirror=http://deb.debian.org/debian

started=$SECONDS
mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/debian-image.XXXXXX")"
target="$work/root"
cleanup() {
    # debootstrap leaves /proc and /sys mounted inside the target when it fails half-way.
    local mounted
    for mounted in "$target/proc" "$target/sys"; do
        mountpoint -q "$mounted" 2>/dev/null && umount -l "$mounted"
    done
    rm -rf "$work"
}
trap cleanup EXIT

# debootstrap's resolver ignores virtual packages: python3-cffi-backend provides the api-min/api-max that
# python3-cryptography (cloud-init's) asks for, so it is named here. dbus lets systemd-logind run, which both ways of
# a clean stop need: the agent's guest-shutdown (`shutdown +0` goes through logind) and the ACPI power button.
packages=(systemd-sysv udev dbus linux-image-cloud-amd64 cloud-init python3-cffi-backend openssh-server qemu-guest-agent)
# Downloaded .debs are kept for the next build (cache next to the image, git-ignored with it).
cache="$(dirname "$out")/.debootstrap-cache"
mkdir -p "$cache"
echo "build-debian-image: debootstrap bookworm from $mirror (a few minutes)..."
if ! debootstrap --variant=minbase --cache-dir="$cache" --include="$(IFS=,; echo "${packages[*]}")" bookworm "$target" "$mirror" \
        >"$work/debootstrap.log" 2>&1; then
    echo "build-debian-image: debootstrap failed; its log ends:" >&2
    tail -n 25 "$work/debootstrap.log" >&2
    [[ -f "$target/debootstrap/debootstrap.log" ]] && tail -n 25 "$target/debootstrap/debootstrap.log" >&2
    exit 1
fi

# The guest's identity and its boot: root found by its label (other disks, such as a cloud-init seed, may come first),
# a console on the serial port.
echo debian >"$target/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$target/etc/hosts"
echo 'LABEL=debian-root / ext4 defaults,errors=remount-ro 0 1' >"$target/etc/fstab"
# Empty, so each boot of each VM makes its own (systemd's first-boot rule).
: >"$target/etc/machine-id"
rm -f "$target/var/lib/dbus/machine-id"
# cloud-init runs even without a datasource (it then finishes with DataSourceNone); a NoCloud `cidata` disk, when a
# VM has one, is found first.
# No DSA host key (deprecated, and slow to make under TCG); no locale change (the image has no `locales`).
cat >"$target/etc/cloud/cloud.cfg.d/90-orchestrator.cfg" <<'EOF'
datasource_list: [NoCloud, None]
ssh_genkeytypes: [rsa, ecdsa, ed25519]
locale: false
EOF
cat >"$target/etc/cloud/ds-identify.cfg" <<'EOF'
policy: search,found=all,maybe=all,notfound=enabled
EOF
# cloud-init makes fresh host keys on first boot; none ship in the image.
rm -f "$target"/etc/ssh/ssh_host_*
chroot "$target" apt-get clean
rm -rf "$target"/var/lib/apt/lists/* "$target"/var/log/*.log "$target/debootstrap"

kernel="$(ls "$target"/boot/vmlinuz-* | head -n1)"
initrd="$(ls "$target"/boot/initrd.img-* | head -n1)"
[[ -f "$kernel" && -f "$initrd" ]] || { echo "build-debian-image: no kernel or initrd in the target's /boot" >&2; exit 1; }
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
chmod 0644 "$work/vmlinuz" "$work/initrd.img"

# The file system straight from the directory: no loop device, no mount. 2 GiB, sparse; the qcow2 holds only data.
truncate -s 2G "$work/rootfs.raw"
mkfs.ext4 -q -L debian-root -d "$target" "$work/rootfs.raw"
qemu-img convert -f raw -O qcow2 "$work/rootfs.raw" "$work/rootfs.qcow2"

# Move into place atomically: a reader sees the old image or the new one, never half of one.
for file in "${files[@]}"; do
    cp "$work/$file" "$out/.$file.tmp.$$"
    mv -f "$out/.$file.tmp.$$" "$out/$file"
done
echo "debian image: $out/rootfs.qcow2 ($(stat -c %s "$out/rootfs.qcow2") bytes), $(basename "$kernel"), built in $((SECONDS - started)) s"
