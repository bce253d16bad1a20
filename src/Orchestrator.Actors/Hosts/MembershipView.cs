using System.Collections.Immutable;
using Akka.Cluster;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// The cluster as a host agent has been told it is: each member's status and who is unreachable, built only from the
/// events the agent received. Reading <c>Cluster.State</c> instead races: that view is kept by another actor, which may
/// not have seen the unreachability event the agent is handling, and then the agent keeps feeding its fence guard
/// until the next event, which can be its own downing seconds later (I3).
/// </summary>
public sealed record MembershipView(ImmutableDictionary<UniqueAddress, MemberStatus> Members, ImmutableHashSet<UniqueAddress> Unreachable)
{
    public static readonly MembershipView Empty = new(ImmutableDictionary<UniqueAddress, MemberStatus>.Empty, []);

    /// <summary>The snapshot a subscription starts with.</summary>
    public static MembershipView From(ClusterEvent.CurrentClusterState state) =>
        new(state.Members.ToImmutableDictionary(m => m.UniqueAddress, m => m.Status),
            state.Unreachable.Select(m => m.UniqueAddress).ToImmutableHashSet());

    /// <summary>Folds in one membership or reachability event; others leave the view as it is.</summary>
    public MembershipView Apply(ClusterEvent.IClusterDomainEvent e) => e switch
    {
        ClusterEvent.MemberRemoved removed => Removed(removed.Member.UniqueAddress),
        ClusterEvent.IMemberEvent changed => WithStatus(changed.Member.UniqueAddress, changed.Member.Status),
        ClusterEvent.UnreachableMember unreachable => WithReachable(unreachable.Member.UniqueAddress, false),
        ClusterEvent.ReachableMember reachable => WithReachable(reachable.Member.UniqueAddress, true),
        _ => this,
    };

    public MembershipView WithStatus(UniqueAddress member, MemberStatus status) => this with { Members = Members.SetItem(member, status) };

    /// <summary>A removed member stays, as Removed, so a node can tell it was removed from never having joined.</summary>
    public MembershipView Removed(UniqueAddress member) =>
        new(Members.SetItem(member, MemberStatus.Removed), Unreachable.Remove(member));

    public MembershipView WithReachable(UniqueAddress member, bool reachable) =>
        this with { Unreachable = reachable ? Unreachable.Remove(member) : Unreachable.Add(member) };

    public MemberStatus? StatusOf(UniqueAddress member) => Members.TryGetValue(member, out var status) ? status : null;

    /// <summary>Members that count towards a majority: the ones that are (or were) serving.</summary>
    public int Voting => Members.Count(m => Counts(m.Value));

    public int ReachableVoting => Members.Count(m => Counts(m.Value) && !Unreachable.Contains(m.Key));

    /// <summary>Before this node is Up it has no view yet: an empty view keeps adopted VMs alive through a restart.</summary>
    public bool SeesMajority => Voting == 0 || ReachableVoting * 2 > Voting;

    private static bool Counts(MemberStatus status) => status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Leaving;
}
