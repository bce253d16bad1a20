// Disk snapshots (issue 18): a VM's disk is a chain of qcow2 layers in its pool. A snapshot freezes the VM's top layer
// (that file never changes again) and gives the VM a new, empty top layer on it; restore and clone are new top layers on a
// snapshot's. So nothing is ever copied or merged, and a layer's file can go only when no other layer backs on it.
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Storage;

/// <summary>
/// A snapshot of <see cref="Vm"/>'s disk as the ledger keeps it: the tenant's, named per VM. <see cref="Layer"/> (32 hex
/// digits, never a tenant string) names its read-only file in <see cref="Pool"/>; <see cref="Backing"/> is the layer that
/// file is an overlay on (null: the image's base). <see cref="Ready"/> once the VM's QEMU writes to its next layer (at once
/// for a VM with no process).
/// </summary>
public sealed record SnapshotRecord(string Id, TenantId Tenant, string Name, VmId Vm, string Layer, string? Backing, string Pool,
    HostId? Host, int SizeGiB, string Image, bool Ready, DateTimeOffset CreatedAt)
{
    /// <summary>The most snapshots one VM keeps: each is a layer of its disk's chain, which QEMU walks on every read miss.</summary>
    public const int MaxPerVm = 32;

    public PoolKey Key => new(Host, Pool);

    /// <summary>Whether <paramref name="id"/> is a snapshot or layer id: the compact form of a GUID, safe in a path and a QEMU argument.</summary>
    public static bool IsValidId(string? id) => VolumeRecord.IsValidId(id);
}
