using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;

namespace Orchestrator.Actors.Scheduler;

/// <summary>Queries about server groups (host labels come with <see cref="SchedulerQueries.ListHosts"/>).</summary>
public static class PlacementQueries
{
    /// <summary>The tenant's groups, by name, with their members' names.</summary>
    public sealed record ListGroups(TenantId Tenant) : ILedgerQuery;

    internal static object Answer(LedgerState state, ListGroups q) => new PlacementReplies.GroupList(state.GroupsOf(q.Tenant)
        .Select(g => new PlacementReplies.GroupView(g, state.MembersOf(q.Tenant, g.Name).Select(v => v.Spec.Name).Order(StringComparer.Ordinal).ToList()))
        .ToList());
}

public static class PlacementReplies
{
    public sealed record GroupView(GroupRecord Group, IReadOnlyList<string> Members);

    public sealed record GroupList(IReadOnlyList<GroupView> Groups) : IOrchestratorMessage;
}
