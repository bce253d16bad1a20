#!/usr/bin/env bash
# Publishes the whole node (`orchestrator`, self-contained linux-x64) for a bare machine with /dev/kvm and no .NET, so
# that the issue's own command runs there: `orchestrator vm create k1 --image demo --driver kvm --wait` against a node
# whose host runs the native engine. Writes .device/node/ at the repository root (ignored through .git/info/exclude):
#   orchestrator-node.tar.xz   the published node (not trimmed: Akka and ASP.NET reflect, and xz makes up for it)
#   images/demo/               the demo image
#   run.sh                     what the device runs (see there)
# Usage: tools/device-node/publish.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../device-bundle.sh"
repo="$device_repo"
out="$repo/.device/node"
image="$device_image"
device_prepare

staging="$(mktemp -d)"
log="$staging/publish.log"
trap 'rm -rf "$staging"' EXIT
# InvariantGlobalization: the device may have no libicu. The guard (QEMU's fence helper) lands in the output twice
# with its own runtimeconfig; the kvm engine does not use it, so the duplicate is not an error here.
if ! dotnet publish "$repo/src/Orchestrator.Node/Orchestrator.Node.csproj" -c Release -r linux-x64 --self-contained \
    -p:DebugType=none -p:GenerateDocumentationFile=false -p:InvariantGlobalization=true \
    -p:ErrorOnDuplicatePublishOutputFiles=false -o "$staging/orchestrator-node" >"$log" 2>&1; then
    cat "$log" >&2
    echo "publish.sh: dotnet publish failed" >&2
    exit 1
fi

rm -rf "$out"
mkdir -p "$out/images/demo"
tar -C "$staging" -cf - orchestrator-node | xz -T0 -9 >"$out/orchestrator-node.tar.xz"
cp "$image/vmlinuz" "$image/initrd.img" "$out/images/demo/"
cp "$here/run.sh" "$out/run.sh"
chmod +x "$out/run.sh"

size_mib="$(device_size_mib "$out")"

cat <<MSG
published: .device/node (${size_mib} MiB with the demo image)
here (no /dev/kvm expected): .device/node/run.sh                  # the node refuses kvm, saying why; exits 2
                             DRIVER=qemu .device/node/run.sh      # the same bundle end to end under QEMU
on the device machine, with the run tool:
  run carry=[".device/node"] command=".device/node/run.sh"
MSG
