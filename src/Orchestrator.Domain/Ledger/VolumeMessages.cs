using Orchestrator.Domain.Storage;

namespace Orchestrator.Domain.Ledger;

/// <summary>Requests about tenant volumes. Each says which states allow it.</summary>
public static class VolumeCommands
{
    /// <summary>
    /// Allowed for an existing, enabled tenant with fewer than <see cref="VolumeRecord.MaxPerTenant"/> volumes, a valid name it
    /// does not use yet, a size within the limits that fits its storage quota, and a pool (the one named, else the best one)
    /// with room for it.
    /// </summary>
    public sealed record CreateVolume(string Id, TenantId Tenant, string Name, int SizeGiB, string? Pool = null) : ILedgerCommand;

    /// <summary>Allowed while the volume is attached to no VM (detach it first, or delete its VM with its volumes).</summary>
    public sealed record DeleteVolume(TenantId Tenant, string Name) : ILedgerCommand;

    /// <summary>Allowed to grow only, within the limits, the storage quota and the pool's room.</summary>
    public sealed record ResizeVolume(TenantId Tenant, string Name, int SizeGiB) : ILedgerCommand;

    /// <summary>
    /// Allowed when both are the tenant's, the volume is attached to no VM, the VM is not being deleted, has fewer than
    /// <see cref="VolumeRecord.MaxPerVm"/> volumes, and (when placed) runs where the volume's pool is.
    /// </summary>
    public sealed record AttachVolume(TenantId Tenant, string Vm, string Volume) : ILedgerCommand;

    /// <summary>Allowed when the volume is attached to that VM.</summary>
    public sealed record DetachVolume(TenantId Tenant, string Vm, string Volume) : ILedgerCommand;
}

public static class VolumeEvents
{
    public sealed record VolumeCreated(string Id, TenantId Tenant, string Name, int SizeGiB, string Pool, HostId? Host, DateTimeOffset At)
        : ILedgerEvent;

    /// <summary>The volume is gone: its host deletes its file.</summary>
    public sealed record VolumeDeleted(string Id, TenantId Tenant) : ILedgerEvent;

    public sealed record VolumeResized(string Id, int SizeGiB) : ILedgerEvent;

    /// <summary>Tells the VM's host (an assignment change): a running VM gets the disk hot-plugged.</summary>
    public sealed record VolumeAttached(string VolumeId, VmId VmId) : IVmLedgerEvent;

    /// <summary>Tells the VM's host: a running VM has the disk unplugged.</summary>
    public sealed record VolumeDetached(string VolumeId, VmId VmId) : IVmLedgerEvent;
}
