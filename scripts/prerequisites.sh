#!/usr/bin/env bash
# Installs what the node needs on a bare Debian 12 (QEMU and qemu-img, busybox, cpio) and builds the demo guest image;
# with --tests also what the tests need (PostgreSQL, iproute2 for network namespaces, debootstrap for the Debian
# guest) and builds the Debian guest image (minutes the first time, cached under images/out after). Does nothing that
# is already done; needs root for apt-get.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

missing=()
packages=(qemu-system-x86 qemu-utils busybox-static cpio util-linux)
[[ "${1:-}" == "--tests" ]] && packages+=(iproute2 postgresql debootstrap e2fsprogs)
# bench chaos drives cluster/local.sh, which finds a host's guard with pgrep (procps).
[[ "${1:-}" == "--tests" ]] && packages+=(procps)
# Networks (issue 19): bridges, taps and namespaces (iproute2), port security (nftables), per-network DHCP (dnsmasq).
packages+=(iproute2 nftables dnsmasq-base)
# NAT and forwards (issue 19): the test's "internet" is a Python web server in a namespace of its own.
[[ "${1:-}" == "--tests" ]] && packages+=(python3)
# The dashboard's browser tests drive Debian's chromium (Playwright, no browser download); the scrape test runs Prometheus.
[[ "${1:-}" == "--tests" ]] && packages+=(chromium prometheus)
# rbd storage pools (issue 18): QEMU's rbd driver (qemu-block-extra) and the rbd tool (ceph-common) on a node that has
# one; the tests also run a one-node Ceph cluster (a monitor and an OSD on a file).
[[ "${1:-}" == "--tests" ]] && packages+=(qemu-block-extra ceph-common ceph-mon ceph-osd)
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}..." >&2
  if [[ $(id -u) != 0 ]]; then
    echo "error: need root to apt-get install ${missing[*]} (or install them yourself)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$root/images/build-demo-image.sh"
if [[ "${1:-}" == "--tests" ]]; then
  "$root/images/build-debian-image.sh"
fi
