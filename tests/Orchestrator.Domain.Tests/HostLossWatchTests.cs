using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Hosts;
using static Orchestrator.Domain.Hosts.HostLossEffect;
using static Orchestrator.Domain.Hosts.HostLossInput;

namespace Orchestrator.Domain.Tests;

public class HostLossWatchTests
{
    private static readonly TimeSpan AfterDown = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan AfterLeave = TimeSpan.FromSeconds(20);
    private static readonly HostId H1 = new("h1");
    private static readonly HostId H2 = new("h2");
    private const string A1 = "akka.tcp://orchestrator@10.0.0.1:4053";
    private const string A2 = "akka.tcp://orchestrator@10.0.0.2:4053";

    private static HostLossWatch Watching(bool leases = false) => HostLossWatch.Create(AfterDown, AfterLeave, leases)
        .Decide(new AgentRegistered(H1, A1)).Watch
        .Decide(new AgentRegistered(H2, A2)).Watch;

    [Fact]
    public void A_host_whose_agent_died_is_lost_after_the_leave_wait_and_only_its_own()
    {
        var (watch, effects) = Watching().Decide(new MemberGone(A1, HostDeparture.AgentDied));
        Assert.Equal([new AgentGone(H1), new StartCountdown(H1, AfterLeave, $"({A1}) lost its host agent")], effects);
        Assert.Equal([new LoseHost(H1)], watch.Decide(new Due(H1)).Effects);
    }

    [Fact]
    public void A_host_that_registers_again_before_its_countdown_ends_keeps_its_vms()
    {
        var (watch, _) = Watching().Decide(new MemberGone(A1, HostDeparture.Left));
        (watch, _) = watch.Decide(new AgentRegistered(H1, A1));
        Assert.Equal([new KeepHost(H1)], watch.Decide(new Due(H1)).Effects);
    }

    [Fact]
    public void A_down_shortens_a_running_countdown_and_a_leave_never_lengthens_one()
    {
        var (watch, _) = Watching().Decide(new MemberGone(A1, HostDeparture.AgentDied));
        var (afterDown, downed) = watch.Decide(new MemberGone(A1, HostDeparture.Downed));
        Assert.Equal([new StartCountdown(H1, AfterDown, $"({A1}) was downed and removed")], downed);
        Assert.Empty(afterDown.Decide(new MemberGone(A1, HostDeparture.Left)).Effects);
    }

    [Fact]
    public void With_leases_a_lost_host_waits_out_its_lease_and_a_silent_store_moves_nothing()
    {
        var (watch, _) = Watching(leases: true).Decide(new MemberGone(A1, HostDeparture.Downed));
        (watch, var due) = watch.Decide(new Due(H1));
        Assert.Equal([new CheckLease(H1)], due);

        var (waiting, held) = watch.Decide(new LeaseChecked(H1, TimeSpan.FromSeconds(3)));
        Assert.Equal(TimeSpan.FromSeconds(3) + HostLossWatch.LeaseSlack, Assert.IsType<StartCountdown>(Assert.Single(held)).Delay);
        Assert.Equal(HostLossWatch.LeaseRetry, Assert.IsType<StartCountdown>(Assert.Single(watch.Decide(new LeaseCheckFailed(H1)).Effects)).Delay);
        Assert.Equal([new CheckLease(H1)], waiting.Decide(new Due(H1)).Effects);
        Assert.Empty(waiting.Decide(new LeaseChecked(H1, TimeSpan.Zero)).Effects); // an answer to no question
        Assert.Equal([new LoseHost(H1)], watch.Decide(new LeaseChecked(H1, TimeSpan.Zero)).Effects);
        Assert.Empty(watch.Decide(new AgentRegistered(H1, A1)).Watch.Decide(new LeaseChecked(H1, TimeSpan.Zero)).Effects);
    }

    [Fact]
    public void After_a_recovery_hosts_up_in_the_ledger_with_no_agent_and_no_member_are_counted_down()
    {
        var watch = HostLossWatch.Create(AfterDown, AfterLeave, leases: false).Decide(new AgentRegistered(H1, A1)).Watch;
        var h3 = new HostId("h3");
        var effects = watch.Decide(new MembersChecked([(H1, A1), (H2, A2), (h3, "akka.tcp://orchestrator@10.0.0.3:4053")],
            new HashSet<string> { A2 })).Effects;
        Assert.Equal([h3], effects.OfType<StartCountdown>().Select(c => c.Host));
    }

    [Fact]
    public void A_host_shows_unreachable_while_its_member_is_and_not_once_it_is_gone()
    {
        var (watch, effects) = Watching().Decide(new Unreachable(A1));
        Assert.Equal([new ReachabilityChanged(H1, false)], effects);
        Assert.True(watch.IsUnreachable(H1));
        Assert.False(watch.IsUnreachable(H2));
        Assert.Empty(watch.Decide(new Unreachable(A1)).Effects);
        Assert.False(watch.Decide(new MemberGone(A1, HostDeparture.Downed)).Watch.IsUnreachable(H1));
        Assert.Equal([new ReachabilityChanged(H1, true)], watch.Decide(new Reachable(A1)).Effects);
    }

    private static readonly Arbitrary<List<HostLossInput>> Histories = Gen.ListOf(
            Gen.Choose(0, 9).Zip(Gen.Choose(0, 1)).Zip(Gen.Choose(-2, 2)).Select(t =>
            {
                var ((kind, which), lease) = t;
                var (host, address) = which == 0 ? (H1, A1) : (H2, A2);
                return kind switch
                {
                    0 or 1 => (HostLossInput)new AgentRegistered(host, address),
                    2 => new MemberGone(address, HostDeparture.AgentDied),
                    3 => new MemberGone(address, HostDeparture.Downed),
                    4 => new MemberGone(address, HostDeparture.Left),
                    5 or 6 => new Due(host),
                    7 => new LeaseChecked(host, TimeSpan.FromSeconds(lease)),
                    8 => new Unreachable(address),
                    _ => new LeaseCheckFailed(host),
                };
            }))
        .Select(list => list.ToList())
        .ToArbitrary();

    /// <summary>
    /// Whatever the order of news: a host is lost only when a countdown it was given has ended (and, with leases, its
    /// lease has run out), never while its agent is registered, and never without having been counted down first.
    /// </summary>
    [Property(MaxTest = 500)]
    public Property A_host_is_lost_only_at_the_end_of_its_countdown_and_never_while_its_agent_lives() =>
        Prop.ForAll(Histories, Gen.Elements(true, false).ToArbitrary(), (history, leases) =>
        {
            var watch = HostLossWatch.Create(AfterDown, AfterLeave, leases);
            var countedDown = new HashSet<HostId>();
            foreach (var input in history)
            {
                var before = watch;
                (watch, var effects) = watch.Decide(input);
                foreach (var effect in effects)
                {
                    switch (effect)
                    {
                        case StartCountdown c:
                            countedDown.Add(c.Host);
                            break;
                        case LoseHost lost when before.Agents.ContainsKey(lost.Host):
                            return false.Label($"lost {lost.Host} while its agent was registered, at {input}");
                        case LoseHost lost when !countedDown.Contains(lost.Host):
                            return false.Label($"lost {lost.Host} without a countdown, at {input}");
                        case LoseHost lost when input is not (Due or LeaseChecked) || leases && input is Due:
                            return false.Label($"lost {lost.Host} at {input}");
                    }
                }
            }

            return true.ToProperty();
        });
}
