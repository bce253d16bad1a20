using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Ledger;

/// <summary>
/// What the scheduler's journal records. Persisted before anyone is told (invariant I1); each type has a stable
/// manifest in the serializer, so renaming a record is a breaking change.
/// </summary>
public interface ILedgerEvent
{
}

/// <summary>An event about one VM, tagged with its tenant for read models.</summary>
public interface IVmLedgerEvent : ILedgerEvent
{
    VmId VmId { get; }
}

public static class LedgerEvents
{
    /// <param name="Labels">the host's labels from its config; they label the host when it is new (an admin's labels win after).</param>
    public sealed record HostRegistered(HostId HostId, int Cpus, long MemoryMiB, string Driver, DateTimeOffset At, string Address = "",
        HostAccelerator? Accelerator = null, IReadOnlyList<Storage.StoragePoolInfo>? Pools = null,
        IReadOnlyDictionary<string, string>? Labels = null) : ILedgerEvent;

    /// <summary>The host left the cluster (downed); its VMs were re-placed in the same decision.</summary>
    public sealed record HostLost(HostId HostId, DateTimeOffset At) : ILedgerEvent;

    public sealed record TenantCreated(TenantId Tenant, TenantQuota Quota, DateTimeOffset At) : ILedgerEvent;

    public sealed record TenantUpdated(TenantId Tenant, TenantQuota Quota, bool Disabled, TenantCpuPool? Pool = null) : ILedgerEvent;

    /// <summary>A key was issued; only the hash of its secret is recorded. Never shown on event streams.</summary>
    public sealed record ApiKeyIssued(string KeyId, TenantId Tenant, KeyRole Role, string SecretHash, string? Name, DateTimeOffset At)
        : ILedgerEvent;

    public sealed record ApiKeyRevoked(string KeyId, DateTimeOffset At) : ILedgerEvent;

    /// <summary>A webhook was registered. Its secret signs deliveries; never shown on event streams.</summary>
    public sealed record WebhookCreated(string Id, TenantId Tenant, string Url, string Secret, IReadOnlyList<string> EventTypes, DateTimeOffset At)
        : ILedgerEvent;

    public sealed record WebhookDeleted(string Id, TenantId Tenant) : ILedgerEvent;

    public sealed record RuleCreated(
        string Id, TenantId Tenant, string Name, string? OnEvent, int Count, TimeSpan Within, string? Schedule,
        IReadOnlyDictionary<string, string> Selector, RuleAction Action, DateTimeOffset At) : ILedgerEvent;

    public sealed record RuleDeleted(string Id, TenantId Tenant) : ILedgerEvent;

    /// <summary>A rule acted on a VM: what it did and why. The action's own events follow in the same decision.</summary>
    public sealed record RuleFired(VmId VmId, string RuleId, string RuleName, RuleAction Action, string Reason) : IVmLedgerEvent;

    /// <param name="Idempotency">the create's Idempotency-Key (digests), kept a day so that a retry gets this VM.</param>
    public sealed record VmRequested(VmId VmId, TenantId Tenant, VmSpec Spec, DateTimeOffset At, IdempotencyToken? Idempotency = null) : IVmLedgerEvent;

    /// <summary>The VM got a host; <paramref name="Epoch"/> is the fencing token of this placement.</summary>
    /// <param name="DiskPool">the pool of <paramref name="HostId"/> that holds the VM's disk (null: the host keeps no disks).</param>
    public sealed record VmPlaced(VmId VmId, HostId HostId, Epoch Epoch, string? DiskPool = null) : IVmLedgerEvent;

    /// <summary>No host has room; the VM waits as Pending.</summary>
    public sealed record VmPending(VmId VmId, string Reason) : IVmLedgerEvent;

    public sealed record VmStarted(VmId VmId, Epoch Epoch, int Pid) : IVmLedgerEvent;

    public sealed record VmReady(VmId VmId, Epoch Epoch, DateTimeOffset At) : IVmLedgerEvent;

    public sealed record VmRestarting(VmId VmId, Epoch Epoch, int Attempt, string Reason) : IVmLedgerEvent;

    public sealed record VmStopped(VmId VmId, Epoch Epoch, string Reason) : IVmLedgerEvent;

    public sealed record VmFailed(VmId VmId, Epoch Epoch, string Reason) : IVmLedgerEvent;

    public sealed record VmDesiredStateChanged(VmId VmId, DesiredState Desired) : IVmLedgerEvent;

    public sealed record VmDeleteRequested(VmId VmId) : IVmLedgerEvent;

    /// <summary>The tenant changed the VM's shares, reservations or limits (allowed while it runs).</summary>
    public sealed record VmResourcesChanged(VmId VmId, VmResources Resources) : IVmLedgerEvent;

    public sealed record VmLabelsChanged(VmId VmId, IReadOnlyDictionary<string, string> Labels) : IVmLedgerEvent;

    /// <summary>
    /// The scheduler recomputed its host's CPU entitlements (reservations, then shares, capped by limits and by the
    /// demand the VMs showed) and this VM's moved; null when it no longer runs there.
    /// </summary>
    public sealed record SharesChanged(VmId VmId, HostId HostId, long? EntitledMillicores) : IVmLedgerEvent;

    /// <summary>The VM is gone from its host and its allocation is free.</summary>
    public sealed record VmReleased(VmId VmId) : IVmLedgerEvent;
}
