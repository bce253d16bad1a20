#!/usr/bin/env bash
# An N-node cluster on this one machine, for trying failures by hand. Every node has both roles and its own data dir
# under $ORC_CLUSTER_DIR (default /tmp/orchestrator-cluster). Plain and --netns clusters share one SQLite journal and
# one secrets key file there; a --postgres cluster shares nothing through files but the storage pool (see below).
#
#   cluster/local.sh start N [--netns] [--postgres]
#                                        start nodes 1..N: on loopback ports 4101.., or each in its own network
#                                        namespace (cluster/netns.sh) so that each is a separate host with its own
#                                        address; --postgres (needs --netns): the nodes journal to one PostgreSQL that
#                                        listens only on the bridge's address (${ORC_NETNS_SUBNET:-10.231.0}.254), as
#                                        hosts on separate machines would
#   cluster/local.sh status              nodes, pids, API addresses; then `host list` from node 1
#   cluster/local.sh kill I              kill -9 node I (its guard fences its VMs after fence-after)
#   cluster/local.sh crash I             kill -9 node I and its guard: the whole host dies, its VMs with it
#   cluster/local.sh freeze I | thaw I   SIGSTOP / SIGCONT node I
#   cluster/local.sh freeze-host I | thaw-host I
#                                        freeze / thaw host I whole (node, guard and guests) with the cgroup v1 freezer
#   cluster/local.sh partition I | heal I  cut node I off the network / connect it again (--netns clusters only)
#   cluster/local.sh restart I           start node I again on its data dir (it rejoins through the others)
#   cluster/local.sh slow-disk I | fast-disk I
#                                        throttle host I's disk I/O (node, guard, guests) to 1 MiB/s and 50 IO/s with
#                                        the cgroup v1 blkio controller / lift the throttle
#   cluster/local.sh postgres-stop | postgres-start
#                                        stop PostgreSQL at once (as a crash would) / start it again (--postgres clusters)
#   cluster/local.sh stop                stop every node, its guard and VMs, PostgreSQL; remove namespaces
#
# The storage pool `shared` ($ORC_CLUSTER_DIR/pool) stands for the NFS export every host mounts: VMs' disks live
# there, so a lost host's VMs restart elsewhere on their own disks. Imported images are not shared: each node keeps its
# own store ($ORC_CLUSTER_DIR/hI/images), and a host fetches an image it lacks from a node that has it, checking its hash.
# Talk to node I with: ./orchestrator vm list --data $ORC_CLUSTER_DIR/hI
# ORC_NODE_DLL (an orchestrator.dll) runs that build instead of ./orchestrator's, which builds when a source changed:
# what `bench chaos` uses, so the nodes it starts are the build it was started from.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${ORC_CLUSTER_DIR:-/tmp/orchestrator-cluster}"
base_port=4100
pg_port="${ORC_POSTGRES_PORT:-5432}"
freezer_root=/sys/fs/cgroup/freezer
blkio_root=/sys/fs/cgroup/blkio
node_cmd=("$root/orchestrator")
[[ -n "${ORC_NODE_DLL:-}" ]] && node_cmd=(dotnet "$ORC_NODE_DLL")

node_host() { if [[ -f "$dir/netns" ]]; then "$root/cluster/netns.sh" addr "$1"; else echo 127.0.0.1; fi; }
node_port() { if [[ -f "$dir/netns" ]]; then echo 4053; else echo $((base_port + $1)); fi; }
node_pid() { cat "$dir/h$1/node.pid" 2>/dev/null || true; }
guard_pid() { pgrep -f "$dir/h$1/run/guard.sock" || true; }
postgres_host() { echo "${ORC_NETNS_SUBNET:-10.231.0}.254"; }
postgres_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
as_postgres() { runuser -u postgres -- "$@"; }
# Each host's processes (node, guard, guests: all its descendants) in one freezer cgroup, named after the cluster dir.
freezer() { echo "$freezer_root/orc-$(basename "$dir")-h$1"; }
blkio() { echo "$blkio_root/orc-$(basename "$dir")-h$1"; }
# The whole disk under the cluster dir (blkio throttles whole disks, not partitions).
disk_of_dir() {
  local source parent
  source="$(findmnt -n -o SOURCE -T "$dir")"
  parent="$(lsblk -no PKNAME "$source" 2>/dev/null | head -1)"
  lsblk -dno MAJ:MIN "${parent:+/dev/$parent}${parent:-$source}" | tr -d ' '
}

slow_disk() {
  local i="$1" device
  [[ -d "$blkio_root" && -d "$(freezer "$i")" ]] || { echo "slow-disk needs $blkio_root and host $i's freezer cgroup" >&2; exit 2; }
  device="$(disk_of_dir)"
  [[ -n "$device" ]] || { echo "slow-disk: no block device under $dir" >&2; exit 2; }
  mkdir -p "$(blkio "$i")"
  for file in read_bps_device write_bps_device; do echo "$device 1048576" >"$(blkio "$i")/blkio.throttle.$file"; done
  for file in read_iops_device write_iops_device; do echo "$device 50" >"$(blkio "$i")/blkio.throttle.$file"; done
  # Every process of the host (its freezer group holds them all); what they start later inherits the group.
  while read -r pid; do echo "$pid" >"$(blkio "$i")/cgroup.procs" 2>/dev/null || true; done <"$(freezer "$i")/cgroup.procs"
}

fast_disk() {
  local i="$1"
  [[ -d "$(blkio "$i")" ]] || return 0
  while read -r pid; do echo "$pid" >"$blkio_root/cgroup.procs" 2>/dev/null || true; done <"$(blkio "$i")/cgroup.procs"
  rmdir "$(blkio "$i")" 2>/dev/null || true
}

start_postgres() {
  local bin data="$dir/postgres"
  bin="$(postgres_bin)"
  [[ -n "$bin" ]] || { echo "PostgreSQL is not installed (Debian package postgresql): run scripts/prerequisites.sh --tests" >&2; exit 2; }
  mkdir -p "$data" && chown postgres:postgres "$data"
  as_postgres "$bin/initdb" -D "$data/db" -A trust -U postgres --no-sync >/dev/null
  echo "host all all ${ORC_NETNS_SUBNET:-10.231.0}.0/24 trust" >>"$data/db/pg_hba.conf"
  run_postgres
  as_postgres "$bin/createdb" -h "$(postgres_host)" -p "$pg_port" orchestrator
  head -c 32 /dev/urandom | base64 >"$dir/secrets.key" # handed to every node in its environment, as an operator would
  echo "postgres: $(postgres_host):$pg_port, log $data/server.log"
}

run_postgres() {
  local data="$dir/postgres"
  as_postgres "$(postgres_bin)/pg_ctl" -D "$data/db" -w -l "$data/server.log" \
    -o "-p $pg_port -k $data -c listen_addresses=$(postgres_host)" start >/dev/null
}

stop_postgres() {
  [[ -d "$dir/postgres/db" ]] || return 0
  as_postgres "$(postgres_bin)/pg_ctl" -D "$dir/postgres/db" -w -m immediate stop >/dev/null 2>&1 || true
}

start_node() {
  local i="$1" n bootstrap=()
  n="$(cat "$dir/size")"
  local seeds=()
  for s in $(seq 1 "$n"); do seeds+=(--seed "akka.tcp://orchestrator@$(node_host "$s"):$(node_port "$s")"); done
  [[ "$i" == 1 && ! -f "$dir/formed" ]] && bootstrap=(--bootstrap) && touch "$dir/formed"
  local launcher=() store=()
  [[ -f "$dir/netns" ]] && launcher=("$root/cluster/netns.sh" exec "$i")
  if [[ -d "$freezer_root" ]]; then
    mkdir -p "$(freezer "$i")"
    launcher=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$(freezer "$i")" "${launcher[@]}")
  fi
  if [[ -f "$dir/postgres.on" ]]; then
    store=(--config "$root/config/persistence-postgres.conf")
    export ORCHESTRATOR_POSTGRES="Host=$(postgres_host);Port=$pg_port;Database=orchestrator;Username=postgres;Timeout=5"
    ORCHESTRATOR_SECRETS_KEY="$(cat "$dir/secrets.key")"
    export ORCHESTRATOR_SECRETS_KEY
  else
    store=(--set "orchestrator.persistence.sqlite-file=\"$dir/journal.db\"" --set "orchestrator.secrets.key-file=\"$dir/secrets.key\"")
  fi
  mkdir -p "$dir/h$i"
  "${launcher[@]}" "${node_cmd[@]}" node --data "$dir/h$i" --listen "$(node_host "$i"):0" \
    --config "$root/cluster/cluster.conf" "${store[@]}" \
    --set "orchestrator.host-id=h$i" \
    --set "orchestrator.cluster.hostname=\"$(node_host "$i")\"" \
    --set "orchestrator.cluster.port=$(node_port "$i")" \
    --set "orchestrator.storage.pools.shared.path=\"$dir/pool\"" --set "orchestrator.storage.pools.shared.shared=on" \
    "${seeds[@]}" "${bootstrap[@]}" >>"$dir/h$i/node.log" 2>&1 &
  echo $! >"$dir/h$i/node.pid"
  echo "node $i: pid $!, log $dir/h$i/node.log"
}

case "${1:-}" in
  start)
    n="${2:?usage: local.sh start N [--netns] [--postgres]}"
    netns=false postgres=false
    for flag in "${@:3}"; do
      case "$flag" in
        --netns) netns=true ;;
        --postgres) postgres=true ;;
        *) echo "start: unknown option '$flag' (known: --netns, --postgres)" >&2; exit 2 ;;
      esac
    done
    [[ "$postgres" == true && "$netns" == false ]] && { echo "start: --postgres needs --netns (PostgreSQL listens on the namespaces' bridge)" >&2; exit 2; }
    mkdir -p "$dir"
    echo "$n" >"$dir/size"
    if [[ "$netns" == true ]]; then
      touch "$dir/netns"
      "$root/cluster/netns.sh" up "$n"
    fi
    if [[ "$postgres" == true ]]; then
      touch "$dir/postgres.on"
      start_postgres
    fi
    "${node_cmd[@]}" --help >/dev/null # build once, before N nodes race to
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
  freeze-host|thaw-host)
    [[ -d "$(freezer "${2:?}")" ]] || { echo "no freezer cgroup for host $2 (needs $freezer_root)" >&2; exit 2; }
    state=FROZEN; [[ "$1" == thaw-host ]] && state=THAWED
    echo "$state" >"$(freezer "$2")/freezer.state" ;;
  slow-disk) slow_disk "${2:?usage: local.sh slow-disk I}" ;;
  fast-disk) fast_disk "${2:?usage: local.sh fast-disk I}" ;;
  postgres-stop) stop_postgres ;;
  postgres-start)
    [[ -d "$dir/postgres/db" ]] || { echo "postgres-start needs a cluster started with --postgres" >&2; exit 2; }
    run_postgres ;;
  partition|heal)
    [[ -f "$dir/netns" ]] || { echo "partition needs a cluster started with --netns" >&2; exit 2; }
    "$root/cluster/netns.sh" "$1" "${2:?}" ;;
  stop)
    for d in "$dir"/h*; do
      i="${d##*/h}"
      [[ -d "$(freezer "$i")" ]] && echo THAWED >"$(freezer "$i")/freezer.state"
      pid="$(node_pid "$i")"
      # A node that is already gone is no error: stop goes on to the rest.
      [[ -n "$pid" ]] && { kill -CONT "$pid" 2>/dev/null; kill -9 "$pid" 2>/dev/null; } || true
      for g in $(guard_pid "$i"); do kill -9 "$g" 2>/dev/null || true; done
      fast_disk "$i"
    done
    stop_postgres
    [[ -f "$dir/netns" ]] && "$root/cluster/netns.sh" down
    for d in "$dir"/h*; do
      i="${d##*/h}"
      # Its guests die with the guard (pdeathsig); the cgroup goes once they have.
      for _ in $(seq 50); do [[ -d "$(freezer "$i")" ]] && ! rmdir "$(freezer "$i")" 2>/dev/null || break; sleep 0.1; done
    done
    rm -rf "$dir" ;;
  *) sed -n '2,31p' "$0"; exit 2 ;;
esac
