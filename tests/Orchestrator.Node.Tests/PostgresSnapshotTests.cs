using Akka.Actor;
using Akka.Configuration;
using Npgsql;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Serialization;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Node.Tests;

/// <summary>
/// The scheduler's incremental snapshots on a real PostgreSQL server, where the plugin's own store reads them: a restarted
/// scheduler gets the whole snapshot and the incremental one after it merged, and recovers the same ledger.
/// </summary>
public sealed class PostgresSnapshotTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private PostgresServer _postgres = null!;
    private ActorSystem _system = null!;

    public async Task InitializeAsync()
    {
        _postgres = await PostgresServer.StartAsync();
        var loaded = OrchestratorConfig.Load([Path.Combine(OrchestratorConfig.ConfigDirectory, "persistence-postgres.conf")],
            $"orchestrator.persistence.postgres-connection = {OrchestratorConfig.Quote(_postgres.ConnectionString)}");
        var config = ConfigurationFactory.ParseString("""
                akka.actor.provider = local
                akka.loglevel = WARNING
                """)
            .WithFallback(OrchestratorConfig.Complete(loaded, Path.GetTempPath(), []));
        _system = ActorSystem.Create("postgres-snapshots", config);
    }

    public async Task DisposeAsync()
    {
        await _system.Terminate();
        NpgsqlConnection.ClearAllPools();
        await _postgres.DisposeAsync();
    }

    [Fact]
    public async Task A_scheduler_recovers_from_a_whole_snapshot_and_an_incremental_one_read_through_the_plugin()
    {
        var scheduler = Start();
        await scheduler.Ask<SchedulerReplies.HostAssignments>(
            new RegisterHostAgent(new LedgerCommands.RegisterHost(new HostId("h1"), 16, 16384, "qemu")), Wait);
        for (var i = 0; i < 12; i++)
        {
            await scheduler.Ask<SchedulerReplies.VmAccepted>(
                new LedgerCommands.CreateVm(TenantId.System, new VmSpec($"vm{i}", 1, 256, "demo"), VmId.New()), Wait); // events 2 to 25: whole
        }

        // The next one builds on it, so it waits for it to be saved (the store's first save also makes its table).
        await WaitForAsync(async () => await SnapshotRowsAsync() == 1);
        for (var i = 0; i < 26; i++)
        {
            // One event each on three VMs: the snapshot at event 50 holds only those.
            await scheduler.Ask<SchedulerReplies.VmAccepted>(
                new LedgerCommands.SetVmLabels(TenantId.System, $"vm{i % 3}", new Dictionary<string, string> { ["n"] = $"{i}" }), Wait);
        }

        await scheduler.Ask<SchedulerReplies.VmAccepted>(new LedgerCommands.DeleteVm(TenantId.System, "vm7"), Wait); // replayed after it
        var before = await LedgerAsync(scheduler);
        await WaitForAsync(async () => await SnapshotRowsAsync() == 2);
        await scheduler.GracefulStop(Wait);

        var recovered = Start();

        Assert.Equal(before, await LedgerAsync(recovered));
        await recovered.GracefulStop(Wait);
    }

    private IActorRef Start() => _system.ActorOf(SchedulerActor.Props(LedgerRules.Create(["demo"]), 25,
        new HostLossTimings(TimeSpan.FromHours(1), TimeSpan.FromHours(1))));

    private static async Task<string> LedgerAsync(IActorRef scheduler)
    {
        var vms = (await scheduler.Ask<SchedulerReplies.VmList>(new SchedulerQueries.ListVms(null), Wait)).Vms.OrderBy(v => v.Id.Value);
        var hosts = (await scheduler.Ask<SchedulerReplies.HostList>(SchedulerQueries.ListHosts.Instance, Wait)).Hosts;
        return System.Text.Json.JsonSerializer.Serialize(new { vms, hosts }, OrchestratorSerializer.Json);
    }

    private async Task<long> SnapshotRowsAsync()
    {
        await using var connection = new NpgsqlConnection(_postgres.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM snapshot WHERE persistence_id = 'scheduler'", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the scheduler's snapshots were not stored in time");
            await Task.Delay(50);
        }
    }
}
