using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// What the scheduler answers. Commands are the Domain's <see cref="LedgerCommands"/>; queries are below.
/// </summary>
public static class SchedulerReplies
{
    /// <summary>The command's events are persisted; <paramref name="Vm"/> is the VM as it now stands, if any.</summary>
    public sealed record Accepted(VmRecord? Vm) : IOrchestratorMessage;

    public sealed record Refused(Refusal Refusal) : IOrchestratorMessage;

    public sealed record VmList(IReadOnlyList<VmRecord> Vms) : IOrchestratorMessage;

    public sealed record HostList(IReadOnlyList<HostRecord> Hosts) : IOrchestratorMessage;

    /// <summary>Answer to <see cref="SchedulerQueries.GetVm"/>; null when the tenant has no such VM.</summary>
    public sealed record VmFound(VmRecord? Vm) : IOrchestratorMessage;

    /// <summary>Answer to <see cref="SchedulerQueries.FindKey"/>: the key and its tenant (null when unknown).</summary>
    public sealed record KeyFound(ApiKeyRecord? Key, TenantRecord? Tenant) : IOrchestratorMessage;

    /// <summary>A tenant with what its VMs take and its keys (hashes included: callers must never show them).</summary>
    public sealed record TenantFound(TenantRecord? Tenant, TenantUsage Usage, IReadOnlyList<ApiKeyRecord> Keys) : IOrchestratorMessage;

    public sealed record TenantList(IReadOnlyList<TenantFound> Tenants) : IOrchestratorMessage;

    /// <summary>A tenant's webhooks, secrets included: callers must never show them after registration.</summary>
    public sealed record WebhookList(IReadOnlyList<WebhookRecord> Webhooks) : IOrchestratorMessage;

    public sealed record RuleList(IReadOnlyList<RuleRecord> Rules) : IOrchestratorMessage;

    /// <summary>Answer to <see cref="RegisterHostAgent"/>: what this host must run, with the epochs it may run.</summary>
    public sealed record HostAssignments(IReadOnlyList<VmAssignment> Assignments) : IOrchestratorMessage;
}

public static class SchedulerQueries
{
    /// <summary>All VMs of a tenant; every VM when Tenant is null (admin).</summary>
    public sealed record ListVms(TenantId? Tenant) : IOrchestratorMessage;

    public sealed record GetVm(TenantId Tenant, string Name) : IOrchestratorMessage;

    public sealed record ListHosts : IOrchestratorMessage
    {
        public static readonly ListHosts Instance = new();
    }

    /// <summary>For the API's key check: one key by its public id.</summary>
    public sealed record FindKey(string KeyId) : IOrchestratorMessage;

    public sealed record GetTenant(TenantId Tenant) : IOrchestratorMessage;

    public sealed record ListWebhooks(TenantId Tenant) : IOrchestratorMessage;

    public sealed record ListRules(TenantId Tenant) : IOrchestratorMessage;

    public sealed record ListTenants : IOrchestratorMessage
    {
        public static readonly ListTenants Instance = new();
    }

    /// <summary>Live details (vCPU threads, CPU time) from the VM's host; forwarded there, answered with VmRuntime.</summary>
    public sealed record GetVmRuntime(TenantId Tenant, string Name) : IOrchestratorMessage;
}

/// <summary>
/// Pause or resume a tenant's VM where it runs; forwarded to its host, answered with <see cref="Hosts.VmPauseResult"/>
/// (or <see cref="SchedulerReplies.VmFound"/> with no VM when the tenant has none of that name).
/// </summary>
public sealed record SetVmPaused(TenantId Tenant, string Name, bool Paused) : IOrchestratorMessage;

/// <summary>
/// A host agent announcing itself (capacity) and asking what it must run. The sender is the agent; the scheduler
/// tells it about later changes to its VMs. Sent at start and again periodically, so a recovered scheduler
/// re-learns its hosts.
/// </summary>
public sealed record RegisterHostAgent(LedgerCommands.RegisterHost Host) : IOrchestratorMessage;

/// <summary>
/// From a host agent before it (re)starts a VM on its own (after a crash or a fence): the ledger must still place the
/// VM on that host under that epoch. A host that cannot reach the scheduler never gets an answer, so never restarts.
/// </summary>
public sealed record MayStartVm(VmId VmId, Epoch Epoch, HostId HostId) : IOrchestratorMessage;

/// <summary>
/// From a host agent, every usage-report interval: how much CPU each of its running VMs' vCPUs used over the last
/// window. Not journaled: the scheduler recomputes the host's entitlements with it and journals only what moved.
/// </summary>
public sealed record HostUsageReport(HostId HostId, IReadOnlyList<VmCpuDemand> Demand) : IOrchestratorMessage;

public sealed record StartPermission(VmId VmId, Epoch Epoch, bool Granted, string? Reason) : IOrchestratorMessage;

/// <summary>How often the scheduler recomputes CPU entitlements, and the change (millicores) worth journaling.</summary>
public sealed record SharesPolicy(TimeSpan Interval, long ToleranceMillicores);

/// <summary>Snapshot of the ledger (the persistent actor's state).</summary>
public sealed record LedgerSnapshot(
    IReadOnlyList<HostRecord> Hosts,
    IReadOnlyList<VmRecord> Vms,
    IReadOnlyList<TenantRecord>? Tenants = null,
    IReadOnlyList<ApiKeyRecord>? Keys = null,
    IReadOnlyList<WebhookRecord>? Webhooks = null,
    IReadOnlyList<RuleRecord>? Rules = null) : IOrchestratorMessage;
