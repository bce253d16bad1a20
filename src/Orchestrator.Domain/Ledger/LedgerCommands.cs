using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Ledger;

/// <summary>A request the ledger decides on; the scheduler actor receives these as messages.</summary>
public interface ILedgerCommand
{
}

/// <summary>How much CPU a VM's vCPUs used over the last sampling window, in millicores.</summary>
public sealed record VmCpuDemand(VmId VmId, long Millicores);

/// <summary>Requests the ledger decides on. Each says which states allow it.</summary>
public static class LedgerCommands
{
    /// <summary>
    /// Always allowed; re-registering a known host updates its capacity and brings it back Up. Address is the
    /// host's cluster member address, so a recovered scheduler can tell which hosts are still members.
    /// </summary>
    /// <param name="Accelerator">what the host's probe found (null from hosts that do not say, such as simulated ones).</param>
    /// <param name="Pools">the host's storage pools (null or empty: it keeps no disks, as simulated hosts).</param>
    /// <param name="Labels">the labels in the host's config: the host's labels when it first registers (an admin's later).</param>
    public sealed record RegisterHost(HostId HostId, int Cpus, long MemoryMiB, string Driver, string Address = "",
        HostAccelerator? Accelerator = null, IReadOnlyList<Storage.StoragePoolInfo>? Pools = null,
        IReadOnlyDictionary<string, string>? Labels = null) : ILedgerCommand;

    /// <summary>
    /// From the cluster: the host was removed (downed by the split-brain resolver or by an operator). Its VMs are
    /// re-placed on survivors under a new epoch, per restart policy. A host already down: no-op.
    /// </summary>
    public sealed record LoseHost(HostId HostId) : ILedgerCommand;

    /// <summary>Allowed for a new, valid tenant id (not "system", which always exists) with a valid quota.</summary>
    public sealed record CreateTenant(TenantId Tenant, TenantQuota Quota) : ILedgerCommand;

    /// <summary>Changes a tenant's quota and/or disables it (its keys stop working, its VMs keep running). Not the system tenant's state.</summary>
    public sealed record UpdateTenant(TenantId Tenant, TenantQuota? Quota, bool? Disabled, TenantCpuPool? Pool = null) : ILedgerCommand;

    /// <summary>Records a new key (its id and the hash of its secret). Admin keys belong to the system tenant only.</summary>
    public sealed record IssueKey(string KeyId, TenantId Tenant, KeyRole Role, string SecretHash, string? Name) : ILedgerCommand;

    /// <summary>Revokes one of the tenant's keys; revoking twice is a no-op.</summary>
    public sealed record RevokeKey(TenantId Tenant, string KeyId) : ILedgerCommand;

    /// <summary>Registers a webhook for the tenant's events (at most <see cref="WebhookRecord.MaxPerTenant"/>).</summary>
    public sealed record CreateWebhook(string Id, TenantId Tenant, string Url, string Secret, IReadOnlyList<string> EventTypes) : ILedgerCommand;

    public sealed record DeleteWebhook(TenantId Tenant, string Id) : ILedgerCommand;

    /// <param name="ByAdmin">an admin asked: its schedule may run more often than <see cref="RuleRecord.MinScheduleInterval"/>.</param>
    public sealed record CreateRule(
        string Id, TenantId Tenant, string Name, string? OnEvent, int Count, TimeSpan Within, string? Schedule,
        IReadOnlyDictionary<string, string> Selector, RuleAction Action, bool ByAdmin = false) : ILedgerCommand;

    public sealed record DeleteRule(TenantId Tenant, string Id) : ILedgerCommand;

    /// <summary>
    /// From the rule engine: the rule's trigger fired, for one VM (an event rule) or for every VM it selects (a
    /// scheduled one). Each action taken is journaled as RuleFired, naming the rule, with the action's own events.
    /// </summary>
    public sealed record FireRule(string RuleId, VmId? VmId, string Reason) : ILedgerCommand;

    /// <summary>
    /// Allowed when the spec is valid, the tenant has no VM of that name, exists and is enabled, and the VM fits its
    /// quota — decided in the same step as placement, so concurrent creates can't overshoot.
    /// </summary>
    /// <param name="Idempotency">the request's Idempotency-Key (digests), when it sent one: a retry gets the same VM.</param>
    /// <param name="TraceParent">the W3C traceparent of the request's span, when it is traced: the scheduler's and the
    /// host's spans continue that trace.</param>
    public sealed record CreateVm(TenantId Tenant, VmSpec Spec, VmId NewId, IdempotencyToken? Idempotency = null,
        string? TraceParent = null) : ILedgerCommand;

    /// <summary>Allowed unless the VM is being deleted.</summary>
    public sealed record StopVm(TenantId Tenant, string Name) : ILedgerCommand;

    /// <summary>Allowed unless the VM is being deleted. Starting a Failed VM retries it.</summary>
    public sealed record StartVm(TenantId Tenant, string Name) : ILedgerCommand;

    /// <summary>Allowed in every state; deleting twice is a no-op.</summary>
    /// <param name="WithVolumes">its attached volumes are deleted with it; else they outlive it, detached.</param>
    public sealed record DeleteVm(TenantId Tenant, string Name, bool WithVolumes = false) : ILedgerCommand;

    /// <summary>
    /// Allowed unless the VM is being deleted and the resources are valid for its size; a larger reservation must fit
    /// on the host the VM holds.
    /// </summary>
    public sealed record SetVmResources(TenantId Tenant, string Name, VmResources Resources) : ILedgerCommand;

    /// <summary>
    /// Changes only the resource fields the patch names, merged into the VM's resources as the ledger has them when it
    /// decides (not as a client last read them). Allowed as <see cref="SetVmResources"/> is.
    /// </summary>
    public sealed record PatchVmResources(TenantId Tenant, string Name, VmResourcesPatch Patch) : ILedgerCommand;

    /// <summary>Replaces the VM's labels; allowed unless it is being deleted.</summary>
    public sealed record SetVmLabels(TenantId Tenant, string Name, IReadOnlyDictionary<string, string> Labels) : ILedgerCommand;

    /// <summary>
    /// From the scheduler's own timer: recompute a host's CPU entitlements with the demand its agent last reported
    /// (millicores per VM; VMs missing are taken at full demand). Emits SharesChanged for the VMs whose entitlement
    /// moved by more than <paramref name="ToleranceMillicores"/>.
    /// </summary>
    public sealed record RecomputeShares(HostId HostId, IReadOnlyList<VmCpuDemand> Demand, long ToleranceMillicores) : ILedgerCommand;

    /// <summary>From the VM's host; ignored when the epoch is not the VM's current one (a stale copy).</summary>
    public sealed record ReportVm(VmId VmId, Epoch Epoch, VmStatus Status, string? Reason, int? Pid, int? Attempt) : ILedgerCommand;

    /// <summary>From the VM's host after a delete: the process and its files are gone.</summary>
    public sealed record ConfirmDeleted(VmId VmId) : ILedgerCommand;
}

public enum RefusalKind
{
    Invalid,
    NotFound,
    Conflict,

    /// <summary>Not allowed for this tenant: over quota, or the tenant is disabled.</summary>
    Forbidden,

    /// <summary>An Idempotency-Key sent again with another request: not a retry, and not to be run as a new one.</summary>
    KeyReused,
}

public sealed record Refusal(RefusalKind Kind, string Message, IReadOnlyList<FieldError> Errors)
{
    public static Refusal NotFound(string what) => new(RefusalKind.NotFound, what, []);

    public static Refusal Conflict(string field, string message) => new(RefusalKind.Conflict, message, [new FieldError(field, message)]);

    public static Refusal Forbidden(FieldError error) => new(RefusalKind.Forbidden, error.Message, [error]);

    public static Refusal KeyReused(string message) => new(RefusalKind.KeyReused, message, [new FieldError("Idempotency-Key", message)]);

    public static Refusal Invalid(IReadOnlyList<FieldError> errors) =>
        new(RefusalKind.Invalid, "the request is not valid", errors);
}

/// <summary>What the ledger decided: events to persist (possibly none), or a refusal naming what is wrong.</summary>
public sealed record Decision(IReadOnlyList<ILedgerEvent> Events, Refusal? Refusal)
{
    public static readonly Decision Nothing = new([], null);

    public static Decision Accept(params ILedgerEvent[] events) => new(events, null);

    public static Decision Refuse(Refusal refusal) => new([], refusal);

    public bool IsRefused => Refusal is not null;
}
