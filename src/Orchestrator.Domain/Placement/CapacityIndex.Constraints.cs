// The index's decisions under placement constraints: the same as PlacementConstraints.ChooseHost's scan.
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Placement;

public sealed partial class CapacityIndex
{
    /// <summary>
    /// The host <see cref="PlacementConstraints.ChooseHost"/> would choose among the indexed hosts, or null. Selectors
    /// skip whole shapes (hosts are grouped by their labels); unreachable hosts and the hosts of anti-affinity members
    /// are skipped in the walk; affinity looks only at the few hosts that hold members.
    /// </summary>
    public HostRecord? ChooseHost(ResourceRequest request, PlacementPolicy policy, PlacementConstraints constraints)
    {
        if (constraints.Group is not { } group)
        {
            return ChooseHost(request, policy, constraints.Unreachable);
        }

        switch (group.Policy)
        {
            case GroupPolicy.AntiAffinity:
                return ChooseHost(request, policy, WithMemberHosts(constraints.Unreachable, group));
            case GroupPolicy.Affinity:
                return group.BindsToMembers ? BestOfMemberHosts(request, policy, constraints) : ChooseHost(request, policy, constraints.Unreachable);
            case GroupPolicy.SoftAntiAffinity:
                // Any host without a member beats every host with one.
                return ChooseHost(request, policy, WithMemberHosts(constraints.Unreachable, group))
                       ?? BestOfMemberHosts(request, policy, constraints);
            default:
                return BestOfMemberHosts(request, policy, constraints) ?? ChooseHost(request, policy, constraints.Unreachable);
        }
    }

    private static HostRecord? BestOfMemberHosts(ResourceRequest request, PlacementPolicy policy, PlacementConstraints constraints) =>
        constraints.ChooseHost(constraints.Group!.MemberHosts.Select(m => m.Host), request, policy);

    private static HashSet<HostId> WithMemberHosts(IReadOnlySet<HostId> unreachable, GroupPlacement group)
    {
        var excluded = new HashSet<HostId>(unreachable);
        foreach (var (host, _) in group.MemberHosts)
        {
            excluded.Add(host.Id);
        }

        return excluded;
    }
}
