#!/usr/bin/env bash
# Runs on the device machine (x86-64 with /dev/kvm, no .NET), from the bundle tools/device-node/publish.sh wrote:
# unpacks the node into $TMPDIR, starts it with its host on the native KVM engine (DRIVER=qemu to try the bundle on
# a machine without /dev/kvm), then runs the issue's command,
#   orchestrator vm create k1 --image demo --driver kvm --wait
# shows the VM and its host, creates VMS more (default 4) the same way for their boot times, deletes them all, and
# stops the node. Exit status: the first command that failed (2: the node did not come up; its log is printed).
set -uo pipefail

bundle="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
driver="${DRIVER:-kvm}"
more="${VMS:-4}"
work="${TMPDIR:-/tmp}/orchestrator-device-node"
rm -rf "$work"
mkdir -p "$work"

# xz may be missing on a bare machine; Python's lzma reads the same file.
if command -v xz >/dev/null; then
    xz -dc "$bundle/orchestrator-node.tar.xz" | tar -C "$work" -xf -
else
    python3 -c 'import lzma, sys, tarfile; tarfile.open(fileobj=lzma.open(sys.argv[1]), mode="r|").extractall(sys.argv[2])' \
        "$bundle/orchestrator-node.tar.xz" "$work"
fi || { echo "run.sh: cannot unpack the node" >&2; exit 2; }

export ORCHESTRATOR_DATA="$work/data"
export ORCHESTRATOR_IMAGE_DIR="$bundle/images"
orchestrator="$work/orchestrator-node/orchestrator"
log="$work/node.log"

"$orchestrator" node --listen 127.0.0.1:0 --set "orchestrator.host.driver=$driver" >"$log" 2>&1 &
node=$!
stop_node() {
    kill -TERM "$node" 2>/dev/null && wait "$node" 2>/dev/null
}
trap stop_node EXIT

echo "== node: driver $driver, data $ORCHESTRATOR_DATA"
up=0
for _ in $(seq 1 120); do
    if ! kill -0 "$node" 2>/dev/null; then
        break
    fi
    if "$orchestrator" host list 2>/dev/null | grep -q " Up "; then
        up=1
        break
    fi
    sleep 0.5
done
if (( up == 0 )); then
    echo "run.sh: the node did not come up with a host; its log:" >&2
    tail -n 40 "$log" >&2
    exit 2
fi
"$orchestrator" host list

status=0
step() {
    echo "== $*"
    "$orchestrator" "$@" || { local rc=$?; (( status == 0 )) && status=$rc; echo "run.sh: exit $rc" >&2; }
}

step vm create k1 --image demo --driver "$driver" --wait --timeout 60
step vm show k1
for i in $(seq 2 $((more + 1))); do
    step vm create "k$i" --image demo --driver "$driver" --wait --timeout 60
done
step vm list
for i in $(seq 1 $((more + 1))); do
    step vm delete "k$i" --wait --timeout 30
done

if (( status != 0 )); then
    echo "== node log (last 40 lines)"
    tail -n 40 "$log"
fi
exit "$status"
