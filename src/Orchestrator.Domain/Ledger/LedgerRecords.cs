using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Ledger;

public enum HostState
{
    Up,
    Unreachable,
    Down,
    Maintenance,
}

/// <summary>
/// How a host runs its guests, as its own probe found: <see cref="Kind"/> "kvm" (hardware) or "tcg" (QEMU's emulator),
/// the CPU model guests see, and, when the host fell back from KVM, <see cref="Note"/> saying why.
/// </summary>
public sealed record HostAccelerator(string Kind, string CpuModel, string Note = "")
{
    public const string Kvm = "kvm";
    public const string Tcg = "tcg";

    /// <summary>Longest <see cref="Note"/> kept: it is evidence for an operator, not a log.</summary>
    public const int MaxNoteLength = 400;

    public bool IsHardware => Kind == Kvm;
}

/// <summary>A host as the ledger knows it, with what is allocated on it.</summary>
public sealed record HostRecord(
    HostId Id,
    int Cpus,
    long MemoryMiB,
    string Driver,
    HostState State,
    int AllocatedVcpus,
    long AllocatedMemoryMiB,
    int VmCount,
    string Address = "",
    long ReservedCpuMillicores = 0,
    long ReservedMemoryMiB = 0,
    HostAccelerator? Accelerator = null,
    IReadOnlyList<Storage.StoragePoolInfo>? Pools = null,
    IReadOnlyDictionary<string, string>? Labels = null)
{
    /// <summary>The host's storage pools; none for a host that keeps no disks.</summary>
    public IReadOnlyList<Storage.StoragePoolInfo> EffectivePools => Pools ?? [];

    /// <summary>Physical CPU in millicores: reservations are promised against this, never against the overcommit.</summary>
    public long CpuMillicores => Cpus * 1000L;

    /// <summary>The labels VMs select hosts by (<c>zone=a</c>, <c>ssd=true</c>); empty when none.</summary>
    public IReadOnlyDictionary<string, string> EffectiveLabels => Labels ?? Vms.VmLabels.None;
}

/// <summary>A VM in the ledger: the tenant's spec, where it is allowed to run, and what was last observed.</summary>
public sealed record VmRecord(
    VmId Id,
    TenantId Tenant,
    VmSpec Spec,
    DesiredState Desired,
    VmStatus Status,
    string? Reason,
    HostId? Host,
    Epoch Epoch,
    int? Pid,
    int Restarts,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ReadyAt,
    long? EntitledCpuMillicores = null,
    VmDisk? Disk = null)
{
    /// <summary>Whether the VM holds resources on its host (it does from placement until released).</summary>
    public bool HoldsAllocation => Host is not null;
}

/// <summary>
/// Where a VM's disk is: pool <paramref name="Pool"/>, on <paramref name="Host"/> when that pool is the host's own (the
/// VM is pinned there: elsewhere it would boot without its data), or on a shared pool (Host null) every host reaches.
/// <paramref name="Layer"/>: the file its QEMU writes to (null: the VM's own id); <paramref name="Backing"/>: the snapshot
/// layer that file is an overlay on (null: the image). Both change with snapshots and restores (LedgerState.Snapshots).
/// </summary>
public sealed record VmDisk(string Pool, HostId? Host, string? Layer = null, string? Backing = null);
