using Akka.Actor;
using Akka.Cluster;
using Orchestrator.Actors.Hosts;

namespace Orchestrator.Actors.Tests;

/// <summary>The host agent's own view of the cluster decides when it stops feeding its fence guard (I3).</summary>
public sealed class MembershipViewTests
{
    private static readonly UniqueAddress H1 = Node(1), H2 = Node(2), H3 = Node(3);

    private static UniqueAddress Node(int i) => new(new Address("akka.tcp", "orchestrator", $"10.0.0.{i}", 4053), i);

    private static MembershipView ThreeUp() =>
        MembershipView.Empty.WithStatus(H1, MemberStatus.Up).WithStatus(H2, MemberStatus.Up).WithStatus(H3, MemberStatus.Up);

    [Fact]
    public void A_node_that_has_not_joined_yet_keeps_its_vms() => Assert.True(MembershipView.Empty.SeesMajority);

    [Fact]
    public void One_unreachable_member_of_three_leaves_a_majority_and_two_do_not()
    {
        var one = ThreeUp().WithReachable(H1, false);
        Assert.True(one.SeesMajority);
        var two = one.WithReachable(H2, false);
        Assert.False(two.SeesMajority);
        Assert.Equal((1, 3), (two.ReachableVoting, two.Voting));
        Assert.True(two.WithReachable(H2, true).SeesMajority);
    }

    [Fact]
    public void Only_serving_members_vote()
    {
        // The majority downed h1 and h2 (as a leader would after a partition): h3 alone is the cluster now.
        var view = ThreeUp().WithReachable(H1, false).WithReachable(H2, false);
        Assert.False(view.SeesMajority);
        view = view.WithStatus(H1, MemberStatus.Down).WithStatus(H2, MemberStatus.Down);
        Assert.True(view.SeesMajority);
        view = view.Removed(H1);
        Assert.Equal(MemberStatus.Removed, view.StatusOf(H1));
        Assert.DoesNotContain(H1, view.Unreachable);

        var joining = ThreeUp().WithStatus(Node(4), MemberStatus.Joining).WithStatus(Node(5), MemberStatus.Joining);
        Assert.Equal(3, joining.Voting);
    }

    [Fact]
    public void A_two_node_cluster_that_loses_one_has_no_majority()
    {
        var view = MembershipView.Empty.WithStatus(H1, MemberStatus.Up).WithStatus(H2, MemberStatus.Up).WithReachable(H2, false);
        Assert.False(view.SeesMajority);
    }
}
