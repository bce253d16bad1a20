# Sourced by the publish scripts that bundle something for the device machine (x86-64 with /dev/kvm, no .NET).
# Each bundle lives in .device/NAME/ at the repository root, which .git/info/exclude ignores, and travels there as one
# `carry` path of the run tool: 64 MiB at most.

device_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
device_image="$device_repo/images/out/demo"
device_limit_mib=64

# Builds the demo image (kernel + busybox initramfs) if missing, as the tests do, and makes sure .device/ is ignored.
device_prepare() {
    bash "$device_repo/images/build-demo-image.sh" "$device_image" >/dev/null
    local exclude
    exclude="$(git -C "$device_repo" rev-parse --git-path info/exclude)"
    [[ "$exclude" = /* ]] || exclude="$device_repo/$exclude"
    mkdir -p "$(dirname "$exclude")"
    grep -qxF '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >>"$exclude"
}

# Prints the bundle's size in MiB; fails, saying so, when it is over what one run can carry.
device_size_mib() {
    local bundle="$1" size_mib
    size_mib=$(( $(du -sb "$bundle" | cut -f1) / 1048576 ))
    if (( size_mib >= device_limit_mib )); then
        echo "${bundle#"$device_repo"/} is ${size_mib} MiB, over the ${device_limit_mib} MiB a device run can carry" >&2
        return 1
    fi
    echo "$size_mib"
}
