#!/usr/bin/env bash
# Publishes kvm-harness self-contained (linux-x64, trimmed) into .device/kvm-harness/ at the repository root, with the
# demo image next to it, for a bare machine with /dev/kvm and no .NET. .device/ is ignored through .git/info/exclude.
# Usage: tools/kvm-harness/publish.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../device-bundle.sh"
repo="$device_repo"
out="$repo/.device/kvm-harness"
image="$device_image"
device_prepare

rm -rf "$out"
mkdir -p "$out"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Trimmed (PublishTrimmed is set in the csproj, see there). Trimming is safe here: the engine's P/Invokes are source-generated (LibraryImport) and the harness uses no reflection;
# any trim warning fails the publish (warnings are errors in this repository).
if ! dotnet publish "$here/Orchestrator.KvmHarness.csproj" -c Release -r linux-x64 --self-contained \
    -p:DebugType=none -p:GenerateDocumentationFile=false -o "$out" >"$log" 2>&1; then
    cat "$log" >&2
    echo "publish.sh: dotnet publish failed" >&2
    exit 1
fi
if grep -E "warning (IL|NU)" "$log" | grep -v NU1603 >&2; then
    echo "publish.sh: the publish printed the warnings above" >&2
    exit 1
fi

mkdir -p "$out/demo"
cp "$image/vmlinuz" "$image/initrd.img" "$out/demo/"

size_mib="$(device_size_mib "$out")"

cat <<MSG
published: .device/kvm-harness (${size_mib} MiB with the demo image)
here (no /dev/kvm expected): .device/kvm-harness/kvm-harness selftest   # exits 2, saying why
on the device machine, with the run tool:
  run carry=[".device/kvm-harness"] command=".device/kvm-harness/kvm-harness selftest --boots 20 --burst 4; .device/kvm-harness/kvm-harness selftest --output json"
  run carry=[".device/kvm-harness"] command=".device/kvm-harness/kvm-harness boot --timeout 20"   # one boot with its console, to debug
MSG
