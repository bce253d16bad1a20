using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;

namespace Orchestrator.Actors.Scheduler;

public static class SecurityGroupQueries
{
    /// <summary>The tenant's security groups, by name.</summary>
    public sealed record ListSecurityGroups(TenantId Tenant) : ILedgerQuery;
}

public static class SecurityGroupReplies
{
    public sealed record SecurityGroupList(IReadOnlyList<SecurityGroupRecord> Groups) : IOrchestratorMessage;

    public static SecurityGroupList List(LedgerState state, TenantId tenant) => new(state.SecurityGroupsOf(tenant).ToList());
}
