#!/usr/bin/env bash
# Separate hosts on one machine: one network namespace per node, each with its own address on a bridge in the
# root namespace. Lets a test or an operator partition a node for real (its link goes down).
#
#   cluster/netns.sh up N          create hosts 1..N (namespaces ${prefix}-h1.., addresses ${subnet}.1..)
#   cluster/netns.sh down          remove them and the bridge
#   cluster/netns.sh exec I CMD…   run CMD inside host I (e.g. an orchestrator node)
#   cluster/netns.sh addr I        print host I's address
#   cluster/netns.sh partition I   cut host I off from every other host
#   cluster/netns.sh heal I        connect it again
#
# ORC_NETNS_PREFIX (default orc) and ORC_NETNS_SUBNET (default 10.231.0, a /24) keep parallel setups apart.
# Needs root and iproute2.
set -euo pipefail
prefix="${ORC_NETNS_PREFIX:-orc}"
subnet="${ORC_NETNS_SUBNET:-10.231.0}"
bridge="${prefix}-br0"

ns() { echo "${prefix}-h$1"; }
veth() { echo "${prefix}-v$1"; }

up() {
  local n="$1"
  ip link show "$bridge" >/dev/null 2>&1 || {
    ip link add "$bridge" type bridge
    ip addr add "${subnet}.254/24" dev "$bridge"
    ip link set "$bridge" up
  }
  for i in $(seq 1 "$n"); do
    ip netns list | grep -qw "$(ns "$i")" && continue
    ip netns add "$(ns "$i")"
    # A namespace deleted a moment ago takes its veth's root end with it only when the kernel's cleanup runs.
    ip link delete "$(veth "$i")" 2>/dev/null || true
    ip link add "$(veth "$i")" type veth peer name "$(veth "$i")p"
    ip link set "$(veth "$i")p" netns "$(ns "$i")"
    ip link set "$(veth "$i")" master "$bridge"
    ip link set "$(veth "$i")" up
    ip -n "$(ns "$i")" link set lo up
    ip -n "$(ns "$i")" link set "$(veth "$i")p" name eth0
    ip -n "$(ns "$i")" addr add "${subnet}.${i}/24" dev eth0
    ip -n "$(ns "$i")" link set eth0 up
  done
}

down() {
  # Delete the root ends of the veths first: that removes both ends at once, where deleting a namespace leaves its
  # veth to the kernel's asynchronous cleanup (and a quick "up" after it would meet "File exists").
  for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^${prefix}-v[0-9]*$" || true); do
    ip link delete "$link" 2>/dev/null || true
  done
  for name in $(ip netns list | awk '{print $1}' | grep "^${prefix}-h[0-9]*$" || true); do
    ip netns pids "$name" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns delete "$name"
  done
  ip link show "$bridge" >/dev/null 2>&1 && ip link delete "$bridge"
  return 0
}

case "${1:-}" in
  up) up "${2:?usage: netns.sh up N}" ;;
  down) down ;;
  exec) i="${2:?usage: netns.sh exec I CMD...}"; shift 2; exec ip netns exec "$(ns "$i")" "$@" ;;
  addr) echo "${subnet}.${2:?usage: netns.sh addr I}" ;;
  partition) ip link set "$(veth "${2:?usage: netns.sh partition I}")" down ;;
  heal) ip link set "$(veth "${2:?usage: netns.sh heal I}")" up ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
