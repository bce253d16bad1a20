#!/usr/bin/env bash
# An N-node cluster on this one machine, for trying failures by hand. Every node has both roles, its own data dir
# under $ORC_CLUSTER_DIR (default /tmp/orchestrator-cluster), and they share one SQLite journal and one secrets key
# (webhooks' secrets are sealed with it; the scheduler singleton may run on any of them) there.
#
#   cluster/local.sh start N [--netns]   start nodes 1..N: on loopback ports 4101.., or each in its own network
#                                        namespace (cluster/netns.sh) so that each is a separate host with its own address
#   cluster/local.sh status              nodes, pids, API addresses; then `host list` from node 1
#   cluster/local.sh kill I              kill -9 node I (its guard fences its VMs after fence-after)
#   cluster/local.sh crash I             kill -9 node I and its guard: the whole host dies, its VMs with it
#   cluster/local.sh freeze I | thaw I   SIGSTOP / SIGCONT node I
#   cluster/local.sh partition I | heal I  cut node I off the network / connect it again (--netns clusters only)
#   cluster/local.sh restart I           start node I again on its data dir (it rejoins through the others)
#   cluster/local.sh stop                stop every node, its guard and VMs; remove namespaces
#
# Talk to node I with: ./orchestrator vm list --data $ORC_CLUSTER_DIR/hI
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${ORC_CLUSTER_DIR:-/tmp/orchestrator-cluster}"
base_port=4100

node_host() { if [[ -f "$dir/netns" ]]; then "$root/cluster/netns.sh" addr "$1"; else echo 127.0.0.1; fi; }
node_port() { if [[ -f "$dir/netns" ]]; then echo 4053; else echo $((base_port + $1)); fi; }
node_pid() { cat "$dir/h$1/node.pid" 2>/dev/null || true; }
guard_pid() { pgrep -f "$dir/h$1/run/guard.sock" || true; }

start_node() {
  local i="$1" n bootstrap=()
  n="$(cat "$dir/size")"
  local seeds=()
  for s in $(seq 1 "$n"); do seeds+=(--seed "akka.tcp://orchestrator@$(node_host "$s"):$(node_port "$s")"); done
  [[ "$i" == 1 && ! -f "$dir/formed" ]] && bootstrap=(--bootstrap) && touch "$dir/formed"
  local launcher=()
  [[ -f "$dir/netns" ]] && launcher=("$root/cluster/netns.sh" exec "$i")
  mkdir -p "$dir/h$i"
  "${launcher[@]}" "$root/orchestrator" node --data "$dir/h$i" --listen "$(node_host "$i"):0" \
    --config "$root/cluster/cluster.conf" \
    --set "orchestrator.host-id=h$i" \
    --set "orchestrator.cluster.hostname=\"$(node_host "$i")\"" \
    --set "orchestrator.cluster.port=$(node_port "$i")" \
    --set "orchestrator.persistence.sqlite-file=\"$dir/journal.db\"" \
    --set "orchestrator.secrets.key-file=\"$dir/secrets.key\"" \
    --set "orchestrator.storage.pools.shared.path=\"$dir/pool\"" --set "orchestrator.storage.pools.shared.shared=on" \
    "${seeds[@]}" "${bootstrap[@]}" >>"$dir/h$i/node.log" 2>&1 &
  echo $! >"$dir/h$i/node.pid"
  echo "node $i: pid $!, log $dir/h$i/node.log"
}

case "${1:-}" in
  start)
    n="${2:?usage: local.sh start N [--netns]}"
    mkdir -p "$dir"
    echo "$n" >"$dir/size"
    if [[ "${3:-}" == "--netns" ]]; then
      touch "$dir/netns"
      "$root/cluster/netns.sh" up "$n"
    fi
    "$root/orchestrator" --help >/dev/null # build once, before N nodes race to
    for i in $(seq 1 "$n"); do start_node "$i"; sleep 1; done ;;
  restart) start_node "${2:?usage: local.sh restart I}" ;;
  status)
    for d in "$dir"/h*; do
      i="${d##*/h}"
      pid="$(node_pid "$i")"
      state=down; [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && state="$(awk '{print $3}' /proc/"$pid"/stat)"
      echo "node $i: pid ${pid:--} ($state) $(cat "$d/node.json" 2>/dev/null || true)"
    done
    "$root/orchestrator" host list --data "$dir/h1" || true ;;
  kill) kill -9 "$(node_pid "${2:?}")" ;;
  crash) kill -9 "$(node_pid "${2:?}")" $(guard_pid "$2") ;;
  freeze) kill -STOP "$(node_pid "${2:?}")" ;;
  thaw) kill -CONT "$(node_pid "${2:?}")" ;;
  partition|heal)
    [[ -f "$dir/netns" ]] || { echo "partition needs a cluster started with --netns" >&2; exit 2; }
    "$root/cluster/netns.sh" "$1" "${2:?}" ;;
  stop)
    for d in "$dir"/h*; do
      i="${d##*/h}"
      pid="$(node_pid "$i")"
      [[ -n "$pid" ]] && kill -CONT "$pid" 2>/dev/null; [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null || true
      for g in $(guard_pid "$i"); do kill -9 "$g" 2>/dev/null || true; done
    done
    [[ -f "$dir/netns" ]] && "$root/cluster/netns.sh" down
    rm -rf "$dir" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
