using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// What the scheduler answers. Commands are the Domain's <see cref="LedgerCommands"/>: a refusal, or once their events
/// are persisted the reply of their family (<see cref="To"/>); queries are below.
/// </summary>
public static class SchedulerReplies
{
    /// <summary>
    /// To a VM command (create, stop, start, delete, resources, labels): the VM as it now stands, or as it was last seen
    /// when the command released it (the delete of a VM never placed).
    /// </summary>
    public sealed record VmAccepted(VmRecord Vm) : IOrchestratorMessage;

    /// <summary>To CreateTenant and UpdateTenant: the tenant as it now stands, with its usage and keys.</summary>
    public sealed record TenantAccepted(TenantFound Tenant) : IOrchestratorMessage;

    /// <summary>To IssueKey: the key as recorded (the hash of its secret: callers must never show it).</summary>
    public sealed record KeyIssued(ApiKeyRecord Key) : IOrchestratorMessage;

    /// <summary>To CreateWebhook: the webhook as recorded (its secret sealed where secrets are sealed at rest).</summary>
    public sealed record WebhookCreated(WebhookRecord Webhook) : IOrchestratorMessage;

    /// <summary>To CreateRule: the rule as recorded.</summary>
    public sealed record RuleCreated(RuleRecord Rule) : IOrchestratorMessage;

    /// <summary>
    /// To every other command (deletes of rules and webhooks, revoking a key, a host's reports, a rule firing, a host's
    /// loss): its events, if any, are persisted; there is nothing to show.
    /// </summary>
    public sealed record Done : IOrchestratorMessage
    {
        public static readonly Done Instance = new();
    }

    public sealed record Refused(Refusal Refusal) : IOrchestratorMessage;

    /// <summary>
    /// The reply to an accepted command, from the ledger it was decided against (<paramref name="before"/>: the VM a
    /// command names is looked up there) and the ledger with its events applied (<paramref name="after"/>).
    /// </summary>
    public static IOrchestratorMessage To(ILedgerCommand command, LedgerState before, LedgerState after) => command switch
    {
        // A retry names the VM its key made (its create decided nothing new).
        LedgerCommands.CreateVm c => VmReply(before.VmCreatedBy(c.Idempotency, DateTimeOffset.UtcNow) ?? c.NewId, before, after),
        LedgerCommands.StopVm c => VmReply(before.FindVm(c.Tenant, c.Name)?.Id, before, after),
        LedgerCommands.StartVm c => VmReply(before.FindVm(c.Tenant, c.Name)?.Id, before, after),
        LedgerCommands.DeleteVm c => VmReply(before.FindVm(c.Tenant, c.Name)?.Id, before, after),
        LedgerCommands.SetVmResources c => VmReply(before.FindVm(c.Tenant, c.Name)?.Id, before, after),
        LedgerCommands.PatchVmResources c => VmReply(before.FindVm(c.Tenant, c.Name)?.Id, before, after),
        LedgerCommands.SetVmLabels c => VmReply(before.FindVm(c.Tenant, c.Name)?.Id, before, after),
        LedgerCommands.CreateTenant c => new TenantAccepted(TenantView(after, c.Tenant)),
        LedgerCommands.UpdateTenant c => new TenantAccepted(TenantView(after, c.Tenant)),
        LedgerCommands.IssueKey c => after.Keys.GetValueOrDefault(c.KeyId) is { } key ? new KeyIssued(key) : Done.Instance,
        LedgerCommands.CreateWebhook c => after.Webhooks.GetValueOrDefault(c.Id) is { } webhook ? new WebhookCreated(webhook) : Done.Instance,
        LedgerCommands.CreateRule c => after.Rules.GetValueOrDefault(c.Id) is { } rule ? new RuleCreated(rule) : Done.Instance,
        NetworkCommands.CreateNetwork c => after.Networks.GetValueOrDefault(c.Id) is { } network ? new NetworkReplies.NetworkCreated(network) : Done.Instance,
        VolumeCommands.CreateVolume c => VolumeReplies.Accepted(after, c.Tenant, c.Name),
        VolumeCommands.ResizeVolume c => VolumeReplies.Accepted(after, c.Tenant, c.Name),
        VolumeCommands.AttachVolume c => VolumeReplies.Accepted(after, c.Tenant, c.Volume),
        VolumeCommands.DetachVolume c => VolumeReplies.Accepted(after, c.Tenant, c.Volume),
        SnapshotCommands.TakeSnapshot c => SnapshotReplies.Accepted(after, c.Tenant, c.Vm, c.Name),
        SnapshotCommands.RestoreSnapshot c => VmReply(before.FindVm(c.Tenant, c.Vm)?.Id, before, after),
        ImageCommands.RegisterImage c => after.Images.GetValueOrDefault(c.Id) is { } image ? new ImageReplies.ImageAccepted(image) : Done.Instance,
        ImageCommands.DeleteImage c => before.FindImage(c.Tenant, c.Name) is { } gone ? new ImageReplies.ImageAccepted(gone) : Done.Instance,
        LedgerCommands.RegisterHost c => new HostAssignments(after.VmsOn(c.HostId).Select(after.AssignmentOf).ToList()),
        _ => Done.Instance,
    };

    /// <summary>A tenant with its usage and keys, as queries and replies show it; the tenant is null when unknown.</summary>
    public static TenantFound TenantView(LedgerState state, TenantId tenant) => new(
        state.FindTenant(tenant),
        state.UsageOf(tenant),
        state.Keys.Values.Where(k => k.Tenant == tenant).OrderBy(k => k.CreatedAt).ThenBy(k => k.KeyId, StringComparer.Ordinal).ToList(),
        state.StorageUsedGiB(tenant),
        new TenantCounts(state.SnapshotsOf(tenant).Count(), state.VolumesOf(tenant).Count(), state.NetworksOf(tenant).Count(), state.AddressesOf(tenant)),
        state.ImageBytesOf(tenant));

    /// <summary>Done when there is no such VM before or after (a VM command is refused before that could happen).</summary>
    private static IOrchestratorMessage VmReply(VmId? subject, LedgerState before, LedgerState after) =>
        subject is { } id && (after.Vms.GetValueOrDefault(id) ?? before.Vms.GetValueOrDefault(id)) is { } vm
            ? new VmAccepted(vm)
            : Done.Instance;

    public sealed record VmList(IReadOnlyList<VmRecord> Vms) : IOrchestratorMessage;

    public sealed record HostList(IReadOnlyList<HostRecord> Hosts) : IOrchestratorMessage;

    /// <summary>Answer to <see cref="SchedulerQueries.GetVm"/>; null when the tenant has no such VM.</summary>
    public sealed record VmFound(VmRecord? Vm) : IOrchestratorMessage;

    /// <summary>
    /// Answer to <see cref="SchedulerQueries.ShowVm"/>: the ledger's record (null when the tenant has no such VM) and its
    /// host's live details (none where it has no host; null when the host did not answer in time).
    /// </summary>
    public sealed record VmShown(VmRecord? Vm, VmRuntime? Runtime) : IOrchestratorMessage;

    /// <summary>Answer to <see cref="SchedulerQueries.FindKey"/>: the key and its tenant (null when unknown).</summary>
    public sealed record KeyFound(ApiKeyRecord? Key, TenantRecord? Tenant) : IOrchestratorMessage;

    /// <summary>A tenant with what its VMs take and its keys (hashes included: callers must never show them).</summary>
    /// <param name="StorageGiB">GiB of the tenant's VM disks and volumes (what its storage quota counts).</param>
    /// <param name="ImageBytes">bytes of its private imported images, part of <paramref name="StorageGiB"/> (rounded up together).</param>
    public sealed record TenantFound(TenantRecord? Tenant, TenantUsage Usage, IReadOnlyList<ApiKeyRecord> Keys, long StorageGiB = 0,
        TenantCounts? Counts = null, long ImageBytes = 0) : IOrchestratorMessage;

    public sealed record TenantList(IReadOnlyList<TenantFound> Tenants) : IOrchestratorMessage;

    /// <summary>A tenant's webhooks, secrets included: callers must never show them after registration.</summary>
    public sealed record WebhookList(IReadOnlyList<WebhookRecord> Webhooks) : IOrchestratorMessage;

    public sealed record RuleList(IReadOnlyList<RuleRecord> Rules) : IOrchestratorMessage;

    /// <summary>Answer to <see cref="SchedulerQueries.AwaitDeletion"/>: the tenant has no VM of that name being deleted now.</summary>
    public sealed record DeletionSettled(TenantId Tenant, string Name) : IOrchestratorMessage;

    /// <summary>Answer to <see cref="SchedulerQueries.GetBootstrap"/>; null when the VM has none or is gone.</summary>
    public sealed record BootstrapOf(VmId VmId, VmBootstrap? Bootstrap) : IOrchestratorMessage;

    /// <summary>Answer to <see cref="RegisterHostAgent"/>: what this host must run, with the epochs it may run.</summary>
    public sealed record HostAssignments(IReadOnlyList<VmAssignment> Assignments) : IOrchestratorMessage;
}

/// <summary>A query the ledger's persisted state answers alone (<see cref="LedgerQueries"/>).</summary>
public interface ILedgerQuery : IOrchestratorMessage;

public static class SchedulerQueries
{
    /// <summary>All VMs of a tenant; every VM when Tenant is null (admin).</summary>
    public sealed record ListVms(TenantId? Tenant) : ILedgerQuery;

    public sealed record GetVm(TenantId Tenant, string Name) : ILedgerQuery;

    /// <summary>A host starting a VM asks for its bootstrap, which its assignment leaves out (it may be ~150 KB).</summary>
    public sealed record GetBootstrap(VmId VmId) : ILedgerQuery;

    public sealed record ListHosts : ILedgerQuery
    {
        public static readonly ListHosts Instance = new();
    }

    /// <summary>For the API's key check: one key by its public id.</summary>
    public sealed record FindKey(string KeyId) : ILedgerQuery;

    public sealed record GetTenant(TenantId Tenant) : ILedgerQuery;

    public sealed record ListWebhooks(TenantId Tenant) : ILedgerQuery;

    public sealed record ListRules(TenantId Tenant) : ILedgerQuery;

    public sealed record ListTenants : ILedgerQuery
    {
        public static readonly ListTenants Instance = new();
    }

    /// <summary>
    /// Answered with <see cref="SchedulerReplies.DeletionSettled"/> once the tenant has no VM of that name being deleted:
    /// at once when it has none, otherwise when the ledger releases it (its host confirmed the delete, or was lost). For
    /// a create under the name of a VM just deleted (apply's replace), without asking again and again.
    /// </summary>
    public sealed record AwaitDeletion(TenantId Tenant, string Name) : IOrchestratorMessage;

    /// <summary>
    /// A VM as <c>vm show</c> shows it: the ledger's record with the live details (vCPU threads, console, CPU time) its
    /// host gives within <see cref="RuntimeTimeout"/>; answered with <see cref="SchedulerReplies.VmShown"/>.
    /// </summary>
    public sealed record ShowVm(TenantId Tenant, string Name) : IOrchestratorMessage
    {
        /// <summary>How long the host may take: a slow or gone host leaves the record shown without its details.</summary>
        public static readonly TimeSpan RuntimeTimeout = TimeSpan.FromSeconds(2);
    }
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
/// <param name="Underlay">the host's address for the tenant networks' VXLAN; null: it takes part in none.</param>
public sealed record RegisterHostAgent(LedgerCommands.RegisterHost Host, string? Underlay = null) : IOrchestratorMessage;

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

/// <summary>
/// Snapshot of the ledger (the persistent actor's state): whole, or with a <see cref="Delta"/> only what changed since
/// an earlier snapshot (see <see cref="IncrementalSnapshots"/>). The snapshot store merges such a chain back into a whole
/// snapshot before it is offered, so recovery only ever sees a whole one.
/// </summary>
public sealed record LedgerSnapshot(
    IReadOnlyList<HostRecord> Hosts,
    IReadOnlyList<VmRecord> Vms,
    IReadOnlyList<TenantRecord>? Tenants = null,
    IReadOnlyList<ApiKeyRecord>? Keys = null,
    IReadOnlyList<WebhookRecord>? Webhooks = null,
    IReadOnlyList<RuleRecord>? Rules = null,
    IReadOnlyList<Orchestrator.Domain.Placement.GroupRecord>? Groups = null,
    IReadOnlyList<Orchestrator.Domain.Networks.NetworkRecord>? Networks = null,
    IReadOnlyList<IdempotencyRecord>? IdempotencyKeys = null,
    IReadOnlyList<Orchestrator.Domain.Storage.VolumeRecord>? Volumes = null,
    IReadOnlyList<Orchestrator.Domain.Storage.SnapshotRecord>? Snapshots = null,
    IReadOnlyList<Orchestrator.Domain.Networks.SecurityGroupRecord>? SecurityGroups = null,
    IReadOnlyList<Orchestrator.Domain.Networks.PortForwardRecord>? Forwards = null,
    IReadOnlyList<Orchestrator.Domain.Storage.ImageRecord>? Images = null,
    SnapshotDelta? Delta = null) : IOrchestratorMessage, IIncrementalSnapshot
{
    long? IIncrementalSnapshot.PreviousSequenceNr => Delta?.PreviousSequenceNr;

    object IIncrementalSnapshot.OnTo(object whole, IReadOnlyList<IIncrementalSnapshot> chain) =>
        IncrementalSnapshots.Merge((LedgerSnapshot)whole, chain.Cast<LedgerSnapshot>().ToList());
}

/// <summary>
/// What makes an incremental snapshot out of the one at <paramref name="PreviousSequenceNr"/>: its Hosts and Vms hold only
/// the records set since then, and these the ones removed; every other list is whole.
/// </summary>
public sealed record SnapshotDelta(long PreviousSequenceNr, IReadOnlyList<HostId> RemovedHosts, IReadOnlyList<VmId> RemovedVms);
