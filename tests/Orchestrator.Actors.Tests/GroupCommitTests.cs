using Akka.Actor;
using Akka.TestKit.Xunit2;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Tests;

/// <summary>The scheduler's group commit on real SQLite: many requests in flight, one writer, nothing lost.</summary>
public sealed class GroupCommitTests : PersistentTestKit
{
    private static readonly LedgerRules Rules = LedgerRules.Create(["demo"]);
    private IActorRef StartScheduler() =>
        Sys.ActorOf(SchedulerActor.Props(Rules, 50, new HostLossTimings(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30))));

    [Fact]
    public void Concurrent_creates_never_overshoot_a_tiny_host_and_every_acknowledged_vm_survives_a_restart()
    {
        var scheduler = StartScheduler();
        var agent = CreateTestProbe();
        // 2 CPUs at the default ratio 4.0: room for exactly 8 one-vCPU VMs.
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(new HostId("tiny"), 2, 64 * 1024, "simulated")), agent);
        agent.ExpectMsg<SchedulerReplies.HostAssignments>();

        const int requests = 200;
        var ids = Enumerable.Range(0, requests).Select(_ => VmId.New()).ToList();
        for (var i = 0; i < requests; i++)
        {
            // All sent before any answer comes back: they are decided while earlier ones are still being written.
            scheduler.Tell(new LedgerCommands.CreateVm(TenantId.System, new VmSpec($"vm{i:D3}", 1, 256, "demo"), ids[i]));
        }

        var acknowledged = new List<VmRecord>();
        for (var i = 0; i < requests; i++)
        {
            acknowledged.Add(ExpectMsg<SchedulerReplies.VmAccepted>(TimeSpan.FromSeconds(30)).Vm);
        }

        // Answers come in request order, each with its own VM.
        Assert.Equal(ids, acknowledged.Select(v => v.Id));
        var placed = acknowledged.Where(v => v.Host is not null).ToList();
        Assert.Equal(8, placed.Count);
        Assert.Equal(ids.Take(8), placed.Select(v => v.Id));
        Assert.All(acknowledged.Skip(8), v => Assert.Equal(VmStatus.Pending, v.Status));

        scheduler.Tell(SchedulerQueries.ListHosts.Instance);
        var host = ExpectMsg<SchedulerReplies.HostList>().Hosts.Single();
        Assert.Equal(8, host.AllocatedVcpus);
        Assert.Equal(8, host.VmCount);

        Watch(scheduler);
        scheduler.Tell(PoisonPill.Instance);
        ExpectTerminated(scheduler);
        scheduler = StartScheduler();
        scheduler.Tell(new SchedulerQueries.ListVms(null));
        var recovered = ExpectMsg<SchedulerReplies.VmList>(TimeSpan.FromSeconds(30)).Vms;
        Assert.Equal(
            acknowledged.Select(v => (v.Id, v.Host, v.Status)).OrderBy(t => t.Id.Value),
            recovered.Select(v => (v.Id, v.Host, v.Status)).OrderBy(t => t.Id.Value));
        scheduler.Tell(SchedulerQueries.ListHosts.Instance);
        Assert.Equal(8, ExpectMsg<SchedulerReplies.HostList>().Hosts.Single().AllocatedVcpus);
    }

    [Fact]
    public void A_request_that_changes_nothing_is_answered_after_the_writes_it_was_decided_on()
    {
        var scheduler = StartScheduler();
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(new HostId("h"), 8, 64 * 1024, "simulated")), CreateTestProbe());
        scheduler.Tell(new LedgerCommands.CreateVm(TenantId.System, new VmSpec("a", 1, 256, "demo"), VmId.New()));
        scheduler.Tell(new LedgerCommands.StopVm(TenantId.System, "a"));
        scheduler.Tell(new LedgerCommands.StopVm(TenantId.System, "a")); // nothing to do: already stopping
        ExpectMsg<SchedulerReplies.VmAccepted>();
        Assert.Equal(DesiredState.Stopped, ExpectMsg<SchedulerReplies.VmAccepted>().Vm.Desired);
        // Decided on the unwritten stop, answered once it is written: it shows the VM stopping.
        Assert.Equal(DesiredState.Stopped, ExpectMsg<SchedulerReplies.VmAccepted>().Vm.Desired);
    }
}
