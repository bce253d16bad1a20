using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Ledger;

public enum HostState
{
    Up,
    Unreachable,
    Down,
    Maintenance,
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
    string Address = "");

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
    DateTimeOffset? ReadyAt)
{
    /// <summary>Whether the VM holds resources on its host (it does from placement until released).</summary>
    public bool HoldsAllocation => Host is not null;
}
