using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Scheduler;

/// <summary>The answers the ledger's persisted state gives alone, in a stable order.</summary>
public static class LedgerQueries
{
    /// <param name="withReachability">how a host shows, its reachability added (not journaled).</param>
    public static object Answer(LedgerState state, ILedgerQuery query, Func<HostRecord, HostRecord> withReachability) => query switch
    {
        SchedulerQueries.ListVms q => new SchedulerReplies.VmList((q.Tenant is { } tenant ? state.VmsOf(tenant) : state.Vms.Values)
            .OrderBy(v => v.Spec.Name, StringComparer.Ordinal).ThenBy(v => v.Tenant.Value, StringComparer.Ordinal).ToList()),
        SchedulerQueries.GetVm q => new SchedulerReplies.VmFound(state.FindVm(q.Tenant, q.Name)),
        SchedulerQueries.GetBootstrap q => new SchedulerReplies.BootstrapOf(q.VmId, state.Vms.GetValueOrDefault(q.VmId)?.Spec.Bootstrap),
        SchedulerQueries.ListHosts => new SchedulerReplies.HostList(
            state.Hosts.Values.OrderBy(h => h.Id.Value, StringComparer.Ordinal).Select(withReachability).ToList()),
        SchedulerQueries.ListRules q => new SchedulerReplies.RuleList(
            state.Rules.Values.Where(r => r.Tenant == q.Tenant).OrderBy(r => r.Name, StringComparer.Ordinal).ToList()),
        SchedulerQueries.ListWebhooks q => new SchedulerReplies.WebhookList(
            state.Webhooks.Values.Where(w => w.Tenant == q.Tenant).OrderBy(w => w.CreatedAt).ToList()),
        SchedulerQueries.FindKey q => state.Keys.GetValueOrDefault(q.KeyId) is { } key
            ? new SchedulerReplies.KeyFound(key, state.FindTenant(key.Tenant))
            : new SchedulerReplies.KeyFound(null, null),
        SchedulerQueries.GetTenant q => SchedulerReplies.TenantView(state, q.Tenant),
        SchedulerQueries.ListTenants => new SchedulerReplies.TenantList(state.Tenants.Keys.Append(TenantId.System)
            .OrderBy(t => t.Value, StringComparer.Ordinal).Select(t => SchedulerReplies.TenantView(state, t)).ToList()),
        PlacementQueries.ListGroups q => PlacementQueries.Answer(state, q),
        NetworkQueries.ListNetworks q => NetworkReplies.List(state, q.Tenant),
        VolumeQueries.ListVolumes q => VolumeReplies.List(state, q.Tenant),
        SnapshotQueries.ListSnapshots q => SnapshotReplies.List(state, q),
        SecurityGroupQueries.ListSecurityGroups q => SecurityGroupReplies.List(state, q.Tenant),
        ForwardQueries.ListForwards q => ForwardReplies.List(state, q),
        ImageQueries.ListImages q => ImageReplies.List(state, q.Tenant),
        _ => throw new ArgumentOutOfRangeException(nameof(query), query, "not a query the ledger answers"),
    };
}
