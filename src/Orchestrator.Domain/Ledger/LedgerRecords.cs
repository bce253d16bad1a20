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
/// <remarks>
/// A ledger of a million VMs keeps a million of these, so the layout is packed (88 bytes instead of 160): the fields most
/// VMs leave unset (<see cref="Reason"/>, <see cref="Pid"/>, <see cref="ReadyAt"/>, <see cref="Disk"/>, a non-zero
/// <see cref="Restarts"/>) live in one record of their own that a VM without any of them does not have (as in
/// <see cref="VmSpec"/>); the times are kept as ticks and an offset, the enums as bytes, the host as its id's string, the
/// entitlement as an int (a missing one as a value no entitlement has; one beyond an int in the rare record).
/// From outside it is a record with these properties like any other (<c>with</c>, equality, JSON).
/// </remarks>
public sealed record VmRecord
{
    public VmRecord(
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
        this.Id = Id;
        this.Tenant = Tenant;
        this.Spec = Spec;
        this.Desired = Desired;
        this.Status = Status;
        this.Host = Host;
        this.Epoch = Epoch;
        this.CreatedAt = CreatedAt;
        _rare = Reason is null && Pid is null && ReadyAt is null && Disk is null && Restarts == 0 ? null : new Rare(Reason, Pid, ReadyAt, Disk, Restarts, null);
        this.EntitledCpuMillicores = EntitledCpuMillicores;
    }

    public VmId Id { get; init; }

    public TenantId Tenant { get; init; }

    public VmSpec Spec { get; init; }

    public DesiredState Desired { get => (DesiredState)_desired; init => _desired = checked((byte)value); }

    public VmStatus Status { get => (VmStatus)_status; init => _status = checked((byte)value); }

    public string? Reason { get => _rare?.Reason; init => _rare = value is null && _rare is null ? null : Rare.OrNull((_rare ?? Rare.None) with { Reason = value }); }

    /// <summary>The host the VM is placed on; null while it has none. (A host id always has a value.)</summary>
    public HostId? Host { get => _host is null ? null : new HostId(_host); init => _host = value?.Value; }

    public Epoch Epoch { get; init; }

    public int? Pid { get => _rare?.Pid; init => _rare = value is null && _rare is null ? null : Rare.OrNull((_rare ?? Rare.None) with { Pid = value }); }

    public int Restarts { get => _rare?.Restarts ?? 0; init => _rare = value == 0 && _rare is null ? null : Rare.OrNull((_rare ?? Rare.None) with { Restarts = value }); }

    public DateTimeOffset CreatedAt
    {
        get => new(_createdAtTicks, TimeSpan.FromMinutes(_createdAtOffsetMinutes));
        init => (_createdAtTicks, _createdAtOffsetMinutes) = (value.Ticks, (short)value.TotalOffsetMinutes);
    }

    public DateTimeOffset? ReadyAt { get => _rare?.ReadyAt; init => _rare = value is null && _rare is null ? null : Rare.OrNull((_rare ?? Rare.None) with { ReadyAt = value }); }

    public long? EntitledCpuMillicores
    {
        get => _entitledCpuMillicores switch
        {
            NoEntitlement => null,
            EntitlementInRare => _rare!.LargeEntitlement,
            var millicores => millicores,
        };
        init
        {
            var inline = value is not { } m ? NoEntitlement : m is > EntitlementInRare and <= int.MaxValue ? (int)m : EntitlementInRare;
            _entitledCpuMillicores = inline;
            var large = inline == EntitlementInRare ? value : null;
            _rare = large is null && _rare is null ? null : Rare.OrNull((_rare ?? Rare.None) with { LargeEntitlement = large });
        }
    }

    public VmDisk? Disk { get => _rare?.Disk; init => _rare = value is null && _rare is null ? null : Rare.OrNull((_rare ?? Rare.None) with { Disk = value }); }

    /// <summary>Whether the VM holds resources on its host (it does from placement until released).</summary>
    public bool HoldsAllocation => _host is not null;

    // What the properties above are made of. Equal records hold equal values here: a rare field set and cleared again
    // leaves _rare null, as if it had never been set; the time keeps its offset, as the snapshot and JSON do. A rare
    // setter given nothing on a VM without rare fields makes nothing: Apply clears Pid and Reason at most steps, and a
    // copy of the empty record each time would be garbage at every one.
    private readonly string? _host;
    private readonly long _createdAtTicks;
    private readonly Rare? _rare;
    private readonly int _entitledCpuMillicores;
    private readonly short _createdAtOffsetMinutes;
    private readonly byte _desired;
    private readonly byte _status;

    /// <summary>No entitlement computed yet.</summary>
    private const int NoEntitlement = int.MinValue;

    /// <summary>An entitlement beyond an int (two million cores; never seen), kept in <see cref="Rare.LargeEntitlement"/>.</summary>
    private const int EntitlementInRare = int.MinValue + 1;

    private sealed record Rare(string? Reason, int? Pid, DateTimeOffset? ReadyAt, VmDisk? Disk, int Restarts, long? LargeEntitlement)
    {
        public static readonly Rare None = new(null, null, null, null, 0, null);

        public static Rare? OrNull(Rare rare) => rare == None ? null : rare;
    }
}

/// <summary>
/// Where a VM's disk is: pool <paramref name="Pool"/>, on <paramref name="Host"/> when that pool is the host's own (the
/// VM is pinned there: elsewhere it would boot without its data), or on a shared pool (Host null) every host reaches.
/// <paramref name="Layer"/>: the file its QEMU writes to (null: the VM's own id); <paramref name="Backing"/>: the snapshot
/// layer that file is an overlay on (null: the image). Both change with snapshots and restores (LedgerState.Snapshots).
/// </summary>
public sealed record VmDisk(string Pool, HostId? Host, string? Layer = null, string? Backing = null);
