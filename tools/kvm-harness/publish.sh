#!/usr/bin/env bash
# Publishes kvm-harness self-contained (linux-x64, trimmed) into .device/kvm-harness/ at the repository root, with the
# demo image next to it, for a bare machine with /dev/kvm and no .NET. .device/ is ignored through .git/info/exclude.
# Usage: tools/kvm-harness/publish.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/.device/kvm-harness"
image="$repo/images/out/demo"
limit_mib=64

# The demo image (kernel + busybox initramfs): built if missing, as the tests do.
bash "$repo/images/build-demo-image.sh" "$image" >/dev/null

exclude="$(git -C "$repo" rev-parse --git-path info/exclude)"
[[ "$exclude" = /* ]] || exclude="$repo/$exclude"
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >>"$exclude"

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

size_mib=$(( $(du -sb "$out" | cut -f1) / 1048576 ))
if (( size_mib >= limit_mib )); then
    echo "publish.sh: .device/kvm-harness is ${size_mib} MiB, over the ${limit_mib} MiB a device run can carry" >&2
    exit 1
fi

cat <<MSG
published: .device/kvm-harness (${size_mib} MiB with the demo image)
here (no /dev/kvm expected): .device/kvm-harness/kvm-harness selftest   # exits 2, saying why
on the device machine, with the run tool:
  run carry=[".device/kvm-harness"] command=".device/kvm-harness/kvm-harness selftest --boots 20 --burst 4; .device/kvm-harness/kvm-harness selftest --output json"
  run carry=[".device/kvm-harness"] command=".device/kvm-harness/kvm-harness boot --timeout 20"   # one boot with its console, to debug
MSG
