using Orchestrator.Domain.Storage;

namespace Orchestrator.Domain.Ledger;

/// <summary>Requests about disk snapshots (issue 18). Each says which states allow it.</summary>
public static class SnapshotCommands
{
    /// <summary>
    /// Allowed for the tenant's VM that has a disk and is not being deleted, with fewer than <see cref="SnapshotRecord.MaxPerVm"/>
    /// snapshots, a name it does not use yet, within the tenant's snapshot and storage quotas and its pool's room (a snapshot
    /// is charged its VM's disk size). <paramref name="Id"/> and <paramref name="NewLayer"/> are fresh ids (the API makes them).
    /// </summary>
    public sealed record TakeSnapshot(TenantId Tenant, string Vm, string Name, string Id, string NewLayer) : ILedgerCommand;

    /// <summary>Allowed when no layer backs on the snapshot's: not its VM's disk, another snapshot or a clone.</summary>
    public sealed record DeleteSnapshot(TenantId Tenant, string Vm, string Name) : ILedgerCommand;

    /// <summary>Allowed while the VM has no process (stopped, failed or pending): its disk becomes a new layer on the snapshot.</summary>
    public sealed record RestoreSnapshot(TenantId Tenant, string Vm, string Snapshot, string NewLayer) : ILedgerCommand;

    /// <summary>From the VM's host: its QEMU writes to <paramref name="Layer"/> now, so every older snapshot of it is whole.</summary>
    public sealed record ConfirmDiskLayer(VmId VmId, string Layer) : ILedgerCommand;
}

/// <summary>Snapshot events, told apart from the core's in one dispatch arm.</summary>
public interface ISnapshotEvent : ILedgerEvent;

public static class SnapshotEvents
{
    /// <summary>
    /// The VM's top layer <see cref="Layer"/> is the snapshot's from now on; the VM writes to <see cref="NewLayer"/>, an
    /// overlay on it (a running VM's host switches it over QMP; a stopped VM's makes it at the next start).
    /// </summary>
    public sealed record SnapshotTaken(string Id, TenantId Tenant, string Name, VmId VmId, string Layer, string? Backing, string NewLayer,
        string Pool, HostId? Host, int SizeGiB, string Image, bool Ready, DateTimeOffset At) : ISnapshotEvent, IVmLedgerEvent;

    /// <summary>The VM's QEMU writes to its new layer: these snapshots are whole.</summary>
    public sealed record SnapshotsReady(VmId VmId, IReadOnlyList<string> Ids) : ISnapshotEvent, IVmLedgerEvent;

    /// <summary>The snapshot is gone: a host of its pool deletes its layer's file.</summary>
    public sealed record SnapshotDeleted(string Id, TenantId Tenant) : ISnapshotEvent;

    /// <summary>The VM's disk is <see cref="NewLayer"/>, a new overlay on the snapshot's layer; its old top layer's file goes.</summary>
    public sealed record VmDiskRestored(VmId VmId, string SnapshotId, string NewLayer) : ISnapshotEvent, IVmLedgerEvent;
}
