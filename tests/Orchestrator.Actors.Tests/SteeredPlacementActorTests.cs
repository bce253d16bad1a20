using Akka.Actor;
using Akka.TestKit;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Tests;

/// <summary>The scheduler with reachability, host labels and server groups, on a real SQLite journal.</summary>
public sealed class SteeredPlacementActorTests : PersistentTestKit
{
    private static readonly LedgerRules Rules = LedgerRules.Create(["demo"]);

    private IActorRef StartScheduler(int snapshotEvery = 1000) =>
        Sys.ActorOf(SchedulerActor.Props(Rules, snapshotEvery, new HostLossTimings(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2))));

    private TestProbe RegisterHost(IActorRef scheduler, string id, IReadOnlyDictionary<string, string>? labels = null)
    {
        var agent = CreateTestProbe();
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(new HostId(id), 4, 8192, "qemu", Labels: labels)), agent);
        agent.ExpectMsg<SchedulerReplies.HostAssignments>();
        return agent;
    }

    private VmRecord Create(IActorRef scheduler, string name, string? group = null, string[]? selector = null)
    {
        scheduler.Tell(new LedgerCommands.CreateVm(TenantId.System, new VmSpec(name, 1, 256, "demo", HostSelector: selector, Group: group), VmId.New()));
        return ExpectMsg<SchedulerReplies.VmAccepted>().Vm;
    }

    private VmRecord Find(IActorRef scheduler, string name)
    {
        scheduler.Tell(new SchedulerQueries.GetVm(TenantId.System, name));
        return ExpectMsg<SchedulerReplies.VmFound>().Vm!;
    }

    [Fact]
    public void An_unreachable_host_gets_no_new_vms_and_takes_the_waiting_ones_when_reachable_again()
    {
        var scheduler = StartScheduler();
        var h1 = RegisterHost(scheduler, "h1");
        scheduler.Tell(new HostLossProtocol.Reachability(new HostId("h1"), false));

        var waiting = Create(scheduler, "web1");
        Assert.Equal(VmStatus.Pending, waiting.Status);
        Assert.Contains("unreachable", waiting.Reason);

        // A second host that can be reached takes the next VM; the first stays out of bounds.
        var h2 = RegisterHost(scheduler, "h2");
        h2.ExpectMsg<HostAgentCommands.Assign>(a => a.Assignment.VmId == waiting.Id); // the waiting VM, placed at registration
        Assert.Equal("h2", Create(scheduler, "web2").Host!.Value.Value);

        scheduler.Tell(new HostLossProtocol.Reachability(new HostId("h2"), false));
        Assert.Equal(VmStatus.Pending, Create(scheduler, "web3").Status);
        scheduler.Tell(new HostLossProtocol.Reachability(new HostId("h1"), true));
        h1.ExpectMsg<HostAgentCommands.Assign>();
        AwaitAssert(() => Assert.Equal("h1", Find(scheduler, "web3").Host?.Value));
    }

    [Fact]
    public void Labels_groups_and_selectors_survive_a_restart_from_a_snapshot()
    {
        var scheduler = StartScheduler(snapshotEvery: 3);
        RegisterHost(scheduler, "h1", new Dictionary<string, string> { ["zone"] = "a" });
        RegisterHost(scheduler, "h2", new Dictionary<string, string> { ["zone"] = "b" });
        scheduler.Tell(new PlacementCommands.CreateGroup(TenantId.System, "web", GroupPolicy.AntiAffinity));
        ExpectMsg<SchedulerReplies.Done>();
        var web1 = Create(scheduler, "web1", "web");
        scheduler.Tell(new PlacementCommands.SetHostLabels(new HostId("h2"), new Dictionary<string, string> { ["ssd"] = "true" }, []));
        ExpectMsg<SchedulerReplies.Done>();

        Watch(scheduler);
        scheduler.Tell(PoisonPill.Instance);
        ExpectTerminated(scheduler);
        scheduler = StartScheduler(snapshotEvery: 3);

        scheduler.Tell(SchedulerQueries.ListHosts.Instance);
        var hosts = ExpectMsg<SchedulerReplies.HostList>().Hosts;
        Assert.Equal("true", hosts.Single(h => h.Id.Value == "h2").EffectiveLabels["ssd"]);
        scheduler.Tell(new PlacementQueries.ListGroups(TenantId.System));
        var group = ExpectMsg<PlacementReplies.GroupList>().Groups.Single();
        Assert.Equal(["web1"], group.Members);

        // The group still holds: the second member goes to the other host, a third waits.
        var web2 = Create(scheduler, "web2", "web", ["zone"]);
        Assert.NotEqual(web1.Host, web2.Host);
        Assert.Equal(VmStatus.Pending, Create(scheduler, "web3", "web").Status);
    }
}
