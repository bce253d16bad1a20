using Akka.Actor;
using Akka.TestKit.Xunit2;
using Microsoft.Data.Sqlite;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Tests;

/// <summary>The scheduler on a real SQLite journal: persist before reply, recover after a restart.</summary>
public sealed class SchedulerActorTests : PersistentTestKit
{
    private static readonly LedgerRules Rules = LedgerRules.Create(["demo"]);
    private static readonly HostId Host1 = new("h1");
    private IActorRef StartScheduler(int snapshotEvery = 1000) => Sys.ActorOf(SchedulerActor.Props(Rules, snapshotEvery, new HostLossTimings(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2))));

    private void Restart(ref IActorRef scheduler, int snapshotEvery = 1000)
    {
        Watch(scheduler);
        scheduler.Tell(PoisonPill.Instance);
        ExpectTerminated(scheduler);
        scheduler = StartScheduler(snapshotEvery);
    }

    private SchedulerReplies.HostAssignments RegisterHost(IActorRef scheduler, IActorRef agent)
    {
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(Host1, 4, 8192, "qemu")), agent);
        return ExpectMsg<SchedulerReplies.HostAssignments>();
    }

    private VmRecord Create(IActorRef scheduler, string name)
    {
        scheduler.Tell(new LedgerCommands.CreateVm(TenantId.System, new VmSpec(name, 1, 256, "demo"), VmId.New()));
        return ExpectMsg<SchedulerReplies.VmAccepted>().Vm;
    }

    [Fact]
    public void Allocations_survive_a_scheduler_restart()
    {
        var scheduler = StartScheduler(snapshotEvery: 4);
        Assert.Empty(RegisterHost(scheduler, TestActor).Assignments);
        var created = new List<VmRecord>();
        for (var i = 0; i < 6; i++)
        {
            created.Add(Create(scheduler, $"vm{i}"));
            ExpectMsg<HostAgentCommands.Assign>(); // the host is told after the requester
        }

        Restart(ref scheduler, snapshotEvery: 4);
        scheduler.Tell(new SchedulerQueries.ListVms(null));
        var recovered = ExpectMsg<SchedulerReplies.VmList>().Vms;
        Assert.Equal(
            created.Select(v => (v.Id, v.Host, v.Epoch)).OrderBy(t => t.Id.Value),
            recovered.Select(v => (v.Id, v.Host, v.Epoch)).OrderBy(t => t.Id.Value));
        scheduler.Tell(SchedulerQueries.ListHosts.Instance);
        Assert.Equal(6, ExpectMsg<SchedulerReplies.HostList>().Hosts.Single().AllocatedVcpus);

        var assignments = RegisterHost(scheduler, TestActor).Assignments;
        Assert.Equal(created.Select(v => v.Id).OrderBy(id => id.Value), assignments.Select(a => a.VmId).OrderBy(id => id.Value));
        Assert.All(assignments, a => Assert.Equal(new Epoch(1), a.Epoch));
    }

    [Fact]
    public void A_scheduler_recovers_the_same_ledger_from_a_whole_snapshot_and_an_incremental_one_after_it()
    {
        var scheduler = StartScheduler(snapshotEvery: 25);
        IgnoreMessages(m => m is HostAgentCommands.Assign);
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(Host1, 16, 16384, "qemu")), TestActor);
        ExpectMsg<SchedulerReplies.HostAssignments>();
        for (var i = 0; i < 12; i++)
        {
            Create(scheduler, $"vm{i}"); // events 2 to 25: the first snapshot, whole
        }

        // The next one builds on it, so it is taken only once this one is saved.
        AwaitAssert(() => Assert.Single(StoredSnapshots()));
        for (var i = 0; i < 26; i++)
        {
            // One event each, changing three VMs only: the snapshot at event 50 holds those.
            scheduler.Tell(new LedgerCommands.SetVmLabels(TenantId.System, $"vm{i % 3}", new Dictionary<string, string> { ["n"] = $"{i}" }));
            ExpectMsg<SchedulerReplies.VmAccepted>();
        }

        scheduler.Tell(new LedgerCommands.DeleteVm(TenantId.System, "vm7")); // after the last snapshot: replayed
        ExpectMsg<SchedulerReplies.VmAccepted>();
        var before = Ledger(scheduler);
        AwaitAssert(() => Assert.Equal(2, StoredSnapshots().Count));
        var stored = StoredSnapshots();
        Assert.Null(stored[0].Delta);
        Assert.Equal(12, stored[0].Vms.Count);
        Assert.Equal(25, stored[1].Delta?.PreviousSequenceNr);
        Assert.Equal(["vm0", "vm1", "vm2"], stored[1].Vms.Select(v => v.Spec.Name).Order());

        Restart(ref scheduler, snapshotEvery: 25);

        Assert.Equal(before, Ledger(scheduler));
    }

    /// <summary>The scheduler's hosts and VMs as JSON, in id order.</summary>
    private string Ledger(IActorRef scheduler)
    {
        scheduler.Tell(new SchedulerQueries.ListVms(null));
        var vms = ExpectMsg<SchedulerReplies.VmList>().Vms.OrderBy(v => v.Id.Value);
        scheduler.Tell(SchedulerQueries.ListHosts.Instance);
        var hosts = ExpectMsg<SchedulerReplies.HostList>().Hosts;
        return System.Text.Json.JsonSerializer.Serialize(new { vms, hosts }, Orchestrator.Actors.Serialization.OrchestratorSerializer.Json);
    }

    /// <summary>The scheduler's snapshots as the store holds them, each read apart (whole or incremental).</summary>
    private List<LedgerSnapshot> StoredSnapshots()
    {
        using var connection = new SqliteConnection(
            Orchestrator.Actors.Persistence.SqliteSnapshotFile.ConnectionString(OrchestratorConfig.StoreConnectionString(OrchestratorConfig.Load([]), DataDirectory)));
        connection.Open();
        using var select = connection.CreateCommand();
        select.CommandText = "SELECT snapshot FROM snapshot WHERE persistence_id = $id ORDER BY sequence_number";
        select.Parameters.AddWithValue("$id", SchedulerActor.Name);
        using var rows = select.ExecuteReader();
        var snapshots = new List<LedgerSnapshot>();
        while (rows.Read())
        {
            snapshots.Add(Orchestrator.Actors.Serialization.LedgerSnapshotFormat.Read(rows.GetFieldValue<byte[]>(0)));
        }

        return snapshots;
    }

    [Fact]
    public void A_snapshot_stored_as_json_by_an_earlier_version_still_recovers()
    {
        var scheduler = StartScheduler(); // creates the journal's tables
        scheduler.Tell(SchedulerQueries.ListHosts.Instance);
        Assert.Empty(ExpectMsg<SchedulerReplies.HostList>().Hosts);
        Watch(scheduler);
        scheduler.Tell(PoisonPill.Instance);
        ExpectTerminated(scheduler);

        // The row as the JSON format stored it: the type's plain manifest, the payload JSON.
        using (var connection = new SqliteConnection(OrchestratorConfig.StoreConnectionString(OrchestratorConfig.Load([]), DataDirectory)))
        {
            connection.Open();
            SqliteSnapshotStoreTests.CreateTableOfBefore(connection); // that version kept its snapshots in the journal's file
            using var insert = connection.CreateCommand();
            insert.CommandText = """
                INSERT INTO snapshot (persistence_id, sequence_number, created, snapshot, manifest, serializer_id)
                VALUES ($id, 1, $created, $payload, $manifest, 4711)
                """;
            insert.Parameters.AddWithValue("$id", SchedulerActor.Name);
            insert.Parameters.AddWithValue("$created", DateTime.UtcNow.Ticks);
            insert.Parameters.AddWithValue("$payload", System.Text.Encoding.UTF8.GetBytes(LegacySnapshot.Json));
            insert.Parameters.AddWithValue("$manifest", LegacySnapshot.Manifest);
            Assert.Equal(1, insert.ExecuteNonQuery());
        }

        scheduler = StartScheduler();
        scheduler.Tell(new SchedulerQueries.ListVms(null));
        Assert.Equal(
            LegacySnapshot.Expected.Vms.Select(v => (v.Id, v.Host, v.Epoch, v.Status)).OrderBy(t => t.Id.Value),
            ExpectMsg<SchedulerReplies.VmList>().Vms.Select(v => (v.Id, v.Host, v.Epoch, v.Status)).OrderBy(t => t.Id.Value));
        scheduler.Tell(SchedulerQueries.ListHosts.Instance);
        Assert.Equal(LegacySnapshot.Expected.Hosts, ExpectMsg<SchedulerReplies.HostList>().Hosts);
        scheduler.Tell(new SchedulerQueries.GetTenant(new TenantId("acme")));
        var tenant = ExpectMsg<SchedulerReplies.TenantFound>();
        Assert.Equal(LegacySnapshot.Expected.Tenants![0], tenant.Tenant);
        Assert.Equal(new TenantUsage(1, 2, 2048), tenant.Usage);
    }

    [Fact]
    public void A_refused_request_leaves_nothing_in_the_journal()
    {
        var scheduler = StartScheduler();
        RegisterHost(scheduler, TestActor);
        scheduler.Tell(new LedgerCommands.CreateVm(TenantId.System, new VmSpec("bad/name", 10_000, -5, "nope"), VmId.New()));
        var refused = ExpectMsg<SchedulerReplies.Refused>();
        Assert.Equal(["name", "vcpus", "memoryMiB", "image"], refused.Refusal.Errors.Select(e => e.Field));

        Restart(ref scheduler);
        scheduler.Tell(new SchedulerQueries.ListVms(null));
        Assert.Empty(ExpectMsg<SchedulerReplies.VmList>().Vms);
    }

    [Fact]
    public void Stop_and_delete_reach_the_vms_host()
    {
        var scheduler = StartScheduler();
        var agent = CreateTestProbe();
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(Host1, 4, 8192, "qemu")), agent);
        agent.ExpectMsg<SchedulerReplies.HostAssignments>();
        var vm = Create(scheduler, "web1");
        Assert.True(agent.ExpectMsg<HostAgentCommands.Assign>().Assignment.ShouldRun);

        scheduler.Tell(new LedgerCommands.StopVm(TenantId.System, "web1"));
        Assert.Equal(VmStatus.Stopping, ExpectMsg<SchedulerReplies.VmAccepted>().Vm.Status);
        Assert.False(agent.ExpectMsg<HostAgentCommands.Assign>().Assignment.ShouldRun);

        scheduler.Tell(new LedgerCommands.DeleteVm(TenantId.System, "web1"));
        ExpectMsg<SchedulerReplies.VmAccepted>();
        Assert.True(agent.ExpectMsg<HostAgentCommands.Assign>().Assignment.Deleting);

        scheduler.Tell(new LedgerCommands.ConfirmDeleted(vm.Id));
        ExpectMsg<SchedulerReplies.Done>();
        scheduler.Tell(new SchedulerQueries.GetVm(TenantId.System, "web1"));
        Assert.Null(ExpectMsg<SchedulerReplies.VmFound>().Vm);
    }

    [Fact]
    public void A_wait_for_a_deletion_is_answered_when_the_host_confirms_it_and_a_create_of_the_name_then_succeeds()
    {
        var scheduler = StartScheduler();
        var agent = CreateTestProbe();
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(Host1, 4, 8192, "qemu")), agent);
        agent.ExpectMsg<SchedulerReplies.HostAssignments>();
        var old = Create(scheduler, "web1");
        scheduler.Tell(new LedgerCommands.DeleteVm(TenantId.System, "web1"));
        Assert.Equal(VmStatus.Deleting, ExpectMsg<SchedulerReplies.VmAccepted>().Vm.Status);

        var waiter = CreateTestProbe();
        scheduler.Tell(new SchedulerQueries.AwaitDeletion(TenantId.System, "web1"), waiter);
        waiter.ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // the host has not confirmed yet

        scheduler.Tell(new LedgerCommands.ConfirmDeleted(old.Id));
        ExpectMsg<SchedulerReplies.Done>();
        Assert.Equal(new SchedulerReplies.DeletionSettled(TenantId.System, "web1"), waiter.ExpectMsg<SchedulerReplies.DeletionSettled>());
        Assert.NotEqual(old.Id, Create(scheduler, "web1").Id);
    }

    [Fact]
    public void A_wait_for_a_name_nothing_is_deleting_is_answered_at_once()
    {
        var scheduler = StartScheduler();
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(Host1, 4, 8192, "qemu")), CreateTestProbe());
        Create(scheduler, "web1");

        scheduler.Tell(new SchedulerQueries.AwaitDeletion(TenantId.System, "web1"));
        ExpectMsg<SchedulerReplies.DeletionSettled>();
        scheduler.Tell(new SchedulerQueries.AwaitDeletion(TenantId.System, "nothing"));
        ExpectMsg<SchedulerReplies.DeletionSettled>();
    }

    [Fact]
    public void Show_vm_answers_the_record_with_what_its_host_says_in_one_reply()
    {
        var scheduler = StartScheduler();
        var agent = CreateTestProbe();
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(Host1, 4, 8192, "qemu")), agent);
        agent.ExpectMsg<SchedulerReplies.HostAssignments>();
        var vm = Create(scheduler, "web1");
        agent.ExpectMsg<HostAgentCommands.Assign>();

        scheduler.Tell(new SchedulerQueries.ShowVm(TenantId.System, "web1"));
        agent.ExpectMsg<HostAgentCommands.GetVmRuntime>(q => q.VmId == vm.Id);
        var runtime = new VmRuntime(vm.Id, 4242, [new VcpuUsage(0, 4243, 1.5)], ["ready"]);
        agent.Reply(runtime);
        var shown = ExpectMsg<SchedulerReplies.VmShown>();

        Assert.Equal(vm.Id, shown.Vm!.Id);
        Assert.Same(runtime, shown.Runtime);
    }

    [Fact]
    public void Show_vm_answers_the_record_alone_when_the_host_is_silent_and_nothing_for_an_unknown_name()
    {
        var scheduler = StartScheduler();
        var agent = CreateTestProbe();
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(Host1, 4, 8192, "qemu")), agent);
        agent.ExpectMsg<SchedulerReplies.HostAssignments>();
        var vm = Create(scheduler, "web1");

        scheduler.Tell(new SchedulerQueries.ShowVm(TenantId.System, "web1"));
        var shown = ExpectMsg<SchedulerReplies.VmShown>(SchedulerQueries.ShowVm.RuntimeTimeout + TimeSpan.FromSeconds(10));
        Assert.Equal(vm.Id, shown.Vm!.Id);
        Assert.Null(shown.Runtime);

        scheduler.Tell(new SchedulerQueries.ShowVm(TenantId.System, "nothing"));
        Assert.Equal(new SchedulerReplies.VmShown(null, null), ExpectMsg<SchedulerReplies.VmShown>());
    }
}

/// <summary>The scheduler divides a host's CPU with the demand its agent reports, and journals what moved.</summary>
public sealed class SchedulerSharesTests : PersistentTestKit
{
    private static readonly LedgerRules Rules = LedgerRules.Create(["demo"]);
    private static readonly HostId Host1 = new("h1");
    private IActorRef StartScheduler() => Sys.ActorOf(SchedulerActor.Props(Rules, 1000,
        new HostLossTimings(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30)), shares: new SharesPolicy(TimeSpan.FromMilliseconds(200), 25)));

    [Fact]
    public void Reported_demand_moves_entitlements_and_they_survive_a_restart()
    {
        var scheduler = StartScheduler();
        var agent = CreateTestProbe();
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(Host1, 1, 8192, "qemu")), agent);
        agent.ExpectMsg<SchedulerReplies.HostAssignments>();
        var vms = new List<VmRecord>();
        foreach (var (name, shares) in new[] { ("a", 2048), ("b", 1024), ("c", 1024) })
        {
            scheduler.Tell(new LedgerCommands.CreateVm(TenantId.System,
                new VmSpec(name, 1, 256, "demo", RestartPolicy.OnFailure, new VmResources(CpuShares: shares)), VmId.New()));
            var vm = ExpectMsg<SchedulerReplies.VmAccepted>().Vm;
            scheduler.Tell(new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Running, null, 100 + vms.Count, null));
            ExpectMsg<SchedulerReplies.Done>();
            vms.Add(vm);
        }

        AwaitAssert(() => Assert.Equal([500L, 250L, 250L], Entitled(scheduler, vms)), TimeSpan.FromSeconds(5));

        // c idles: what it leaves goes to a and b by their shares.
        scheduler.Tell(new HostUsageReport(Host1, [new VmCpuDemand(vms[2].Id, 100)]));
        AwaitAssert(() => Assert.Equal([600L, 300L, 100L], Entitled(scheduler, vms)), TimeSpan.FromSeconds(5));

        Watch(scheduler);
        scheduler.Tell(PoisonPill.Instance);
        ExpectTerminated(scheduler);
        scheduler = StartScheduler();
        Assert.Equal([600L, 300L, 100L], Entitled(scheduler, vms)); // journaled, not only held in memory
    }

    private List<long?> Entitled(IActorRef scheduler, IEnumerable<VmRecord> vms)
    {
        scheduler.Tell(new SchedulerQueries.ListVms(null));
        var now = ExpectMsg<SchedulerReplies.VmList>().Vms.ToDictionary(v => v.Id);
        return vms.Select(v => now[v.Id].EntitledCpuMillicores).ToList();
    }
}
