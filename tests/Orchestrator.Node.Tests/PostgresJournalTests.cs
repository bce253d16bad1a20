using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Npgsql;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Serialization;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Node.Tests;

/// <summary>
/// The PostgreSQL journal's own write path (<see cref="PostgresJournalWriter"/>) and recovery read
/// (<see cref="PostgresJournalReplay"/>) on a real server: recovery and Akka.Persistence.Sql's read side find what it
/// wrote, its replay equals the plugin's own, a row that will not deserialize fails recovery, a write the server refuses
/// leaves nothing, and a write while the server is down fails its requests, after which writes go on. And the scheduler's
/// incremental snapshots through the plugin's snapshot store: a whole one and the one after it, merged, recover the ledger.
/// </summary>
public sealed class PostgresJournalTests : IAsyncLifetime
{
    private const string PluginJournal = "akka.persistence.journal.plugin-sql";

    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private PostgresServer _postgres = null!;
    private ActorSystem _system = null!;

    public async Task InitializeAsync()
    {
        _postgres = await PostgresServer.StartAsync();
        var loaded = OrchestratorConfig.Load([Path.Combine(OrchestratorConfig.ConfigDirectory, "persistence-postgres.conf")],
            $"orchestrator.persistence.postgres-connection = {OrchestratorConfig.Quote(_postgres.ConnectionString)}");
        var config = ConfigurationFactory.ParseString($$"""
                akka.actor.provider = local
                akka.loglevel = WARNING
                # The plugin's own journal on the same tables: what the journal's own replay must equal.
                {{PluginJournal}} {
                  class = "Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql"
                  provider-name = "PostgreSQL.15"
                  connection-string = {{OrchestratorConfig.Quote(_postgres.ConnectionString)}}
                  tag-write-mode = TagTable
                  auto-initialize = false
                }
                """)
            .WithFallback(OrchestratorConfig.Complete(loaded, Path.GetTempPath(), []));
        _system = ActorSystem.Create("postgres-journal", config);
    }

    public async Task DisposeAsync()
    {
        await _system.Terminate();
        NpgsqlConnection.ClearAllPools();
        await _postgres.DisposeAsync();
    }

    [Fact]
    public void The_postgres_journal_is_the_group_commit_one()
    {
        Assert.Equal("PostgreSQL.15", _system.Settings.Config.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Equal(typeof(GroupCommitJournal).FullName, _system.Settings.Config.GetString("akka.persistence.journal.sql.class").Split(',')[0].Trim());
    }

    [Fact]
    public async Task Events_it_writes_recover_in_order_and_are_found_by_their_tags()
    {
        var recorder = _system.ActorOf(Props.Create(() => new Recorder("recorder-1")));
        // Several batches, most sent before the one ahead is written, with and without tags.
        var writes = Enumerable.Range(0, 50)
            .Select(i => recorder.Ask<Recorder.Written>(new Recorder.Record($"event-{i}", i % 2 == 0 ? ["even", "all"] : i % 5 == 0 ? [] : ["all"]),
                TimeSpan.FromSeconds(30)))
            .ToList();
        await Task.WhenAll(writes);
        await recorder.GracefulStop(TimeSpan.FromSeconds(10));

        var recovered = _system.ActorOf(Props.Create(() => new Recorder("recorder-1")));
        var events = await recovered.Ask<IReadOnlyList<string>>(Recorder.GetEvents.Instance, TimeSpan.FromSeconds(30));
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"event-{i}"), events);

        var queries = PersistenceQuery.Get(_system).ReadJournalFor<SqlReadJournal>("akka.persistence.query.journal.sql");
        var even = await queries.CurrentEventsByTag("even", Offset.NoOffset())
            .RunAggregate(new List<EventEnvelope>(), (list, e) => { list.Add(e); return list; }, _system.Materializer());
        Assert.Equal(Enumerable.Range(0, 50).Where(i => i % 2 == 0).Select(i => $"event-{i}"), even.Select(e => (string)e.Event));
        Assert.Equal(Enumerable.Range(0, 50).Where(i => i % 2 == 0).Select(i => (long)i + 1), even.Select(e => e.SequenceNr));
        Assert.All(even, e => Assert.Equal("recorder-1", e.PersistenceId));
        // Offsets are the journal's ordering: increasing with the sequence numbers, as the read side pages by them.
        var offsets = even.Select(e => ((Sequence)e.Offset).Value).ToList();
        Assert.Equal(offsets.Order(), offsets);
        var all = await queries.CurrentEventsByTag("all", Offset.NoOffset()).RunAggregate(0, (n, _) => n + 1, _system.Materializer());
        Assert.Equal(50 - 5, all); // i = 5, 15, 25, 35, 45 carry no tag
    }

    [Fact]
    public async Task A_write_the_server_refuses_leaves_no_row_of_it_and_the_next_write_commits_with_its_tags_on_its_rows()
    {
        await CreateTablesAsync();
        using var writer = new PostgresJournalWriter(_postgres.ConnectionString);
        // Sequence number 1 of "writer-test" twice in one batch: the unique index refuses the second row, so neither is kept.
        await Assert.ThrowsAsync<PostgresException>(() => writer.WriteAsync([Entry(1, "a"), Entry(1, "b")]));
        await writer.WriteAsync([Entry(1, "a"), Entry(2, "a", "b"), Entry(3)]);

        Assert.Equal(["1:a", "2:a", "2:b"], await TagRowsAsync());
        Assert.Equal(3L, await ScalarAsync("SELECT count(*) FROM journal WHERE persistence_id = 'writer-test'"));
    }

    [Fact]
    public async Task A_write_while_the_server_is_down_fails_and_later_writes_go_on()
    {
        await CreateTablesAsync();
        using var writer = new PostgresJournalWriter(_postgres.ConnectionString);
        await writer.WriteAsync([Entry(1, "a")]);

        _postgres.Stop();
        await Assert.ThrowsAnyAsync<Exception>(() => writer.WriteAsync([Entry(2, "a")]));
        _postgres.Start();
        NpgsqlConnection.ClearAllPools(); // the pool's connections died with the server
        await writer.WriteAsync([Entry(2, "b")]);

        Assert.Equal(["1:a", "2:b"], await TagRowsAsync());
    }

    [Fact]
    public async Task Its_replay_equals_the_plugins_for_the_same_rows_and_an_actor_recovers_through_it_after_deletes()
    {
        // Three persistence ids written together, tagged and not; "c" deleted up to 5 (the plugin removes 1–4 and marks 5),
        // "d" deleted entirely; "e" ledger events (a serializer with a manifest) from the writer, some with no writer uuid.
        var recorders = new[] { "a", "c", "d" }.ToDictionary(id => id, id => _system.ActorOf(Props.Create(() => new Recorder(id))));
        var writes = Enumerable.Range(1, 12).SelectMany(i => recorders.Select(r =>
                r.Value.Ask<Recorder.Written>(new Recorder.Record($"{r.Key}-{i}", (i % 3) switch { 0 => [], 1 => ["one", "all"], _ => ["all"] }),
                    TimeSpan.FromSeconds(30))))
            .ToList();
        await Task.WhenAll(writes);
        using (var writer = new PostgresJournalWriter(_postgres.ConnectionString))
        {
            await writer.WriteAsync(Enumerable.Range(1, 6).Select(i =>
            {
                var hostLost = new LedgerEvents.HostLost(new HostId($"host-{i}"), DateTimeOffset.UnixEpoch.AddDays(i));
                var serializer = _system.Serialization.FindSerializerFor(hostLost);
                return new JournalEntry("e", i, 1_000 + i, serializer.ToBinary(hostLost), Akka.Serialization.Serialization.ManifestFor(serializer, hostLost),
                    serializer.Identifier, i % 2 == 0 ? null : "writer-e", i % 3 == 0 ? ["host"] : []);
            }).ToList());
        }

        var journal = Akka.Persistence.Persistence.Instance.Apply(_system).JournalFor(null);
        // The journal answers the actor the message names.
        await journal.Ask<DeleteMessagesSuccess>(replyTo => new DeleteMessagesTo("c", 5, replyTo), TimeSpan.FromSeconds(30), CancellationToken.None);
        await journal.Ask<DeleteMessagesSuccess>(replyTo => new DeleteMessagesTo("d", 12, replyTo), TimeSpan.FromSeconds(30), CancellationToken.None);

        var plugins = Akka.Persistence.Persistence.Instance.Apply(_system).JournalFor(PluginJournal);
        (long From, long To, long Max)[] bounds =
        [
            (0, long.MaxValue, long.MaxValue), (3, 7, long.MaxValue), (1, long.MaxValue, 4), (5, 5, 1), (8, 3, long.MaxValue),
            (13, long.MaxValue, long.MaxValue), (2, 20, 0),
        ];
        foreach (var id in new[] { "a", "c", "d", "e", "never-written" })
        {
            foreach (var (from, to, max) in bounds)
            {
                var ours = await ReplayAsync(journal, id, from, to, max);
                var theirs = await ReplayAsync(plugins, id, from, to, max);
                Assert.True(theirs == ours, $"{id} from {from} to {to} max {max}:\n  plugin: {theirs}\n  ours:   {ours}");
            }
        }

        Assert.Equal(12, (await ReplayAsync(journal, "a", 1, long.MaxValue, long.MaxValue)).Events.Count);
        Assert.Equal(new Replayed([], 12), await ReplayAsync(journal, "d", 1, long.MaxValue, long.MaxValue));
        Assert.Contains("(HostLost) of e, manifest 'LedgerEvents.HostLost'", (await ReplayAsync(journal, "e", 1, long.MaxValue, long.MaxValue)).Events[0]);

        // A recovery after the delete: the rest, and the next event after the last (the deleted marker row counts).
        await recorders["c"].GracefulStop(TimeSpan.FromSeconds(10));
        var recovered = _system.ActorOf(Props.Create(() => new Recorder("c")));
        Assert.Equal(Enumerable.Range(6, 7).Select(i => $"c-{i}"), await recovered.Ask<IReadOnlyList<string>>(Recorder.GetEvents.Instance, TimeSpan.FromSeconds(30)));
        await recorders["d"].GracefulStop(TimeSpan.FromSeconds(10));
        var emptied = _system.ActorOf(Props.Create(() => new Recorder("d")));
        await emptied.Ask<Recorder.Written>(new Recorder.Record("d-13", []), TimeSpan.FromSeconds(30));
        var d = await ReplayAsync(journal, "d", 1, long.MaxValue, long.MaxValue);
        Assert.Equal(13, d.HighestSequenceNr);
        Assert.StartsWith("13 d-13 ", Assert.Single(d.Events));
    }

    [Fact]
    public async Task A_row_that_will_not_deserialize_fails_the_replay_naming_it_and_nothing_after_it_is_replayed()
    {
        await CreateTablesAsync();
        var serializer = _system.Serialization.FindSerializerFor("good");
        JournalEntry Good(long sequenceNr) =>
            new("damaged", sequenceNr, DateTime.UtcNow.Ticks, serializer.ToBinary($"good-{sequenceNr}"), Akka.Serialization.Serialization.ManifestFor(serializer, "good"),
                serializer.Identifier, "w", []);
        using (var writer = new PostgresJournalWriter(_postgres.ConnectionString))
        {
            var ledger = _system.Serialization.FindSerializerForType(typeof(LedgerEvents.VmRequested));
            await writer.WriteAsync([Good(1), Good(2), new("damaged", 3, DateTime.UtcNow.Ticks, "{not json"u8.ToArray(), "LedgerEvents.VmRequested", ledger.Identifier, "w", []), Good(4)]);
        }

        var journal = Akka.Persistence.Persistence.Instance.Apply(_system).JournalFor(null);
        var failure = await Assert.ThrowsAsync<ReplayFailed>(() => ReplayAsync(journal, "damaged", 1, long.MaxValue, long.MaxValue));
        var cause = Assert.IsType<JournalReplayException>(failure.InnerException);
        Assert.Contains("'damaged' sequence number 3", cause.Message);
        Assert.Equal(["good-1", "good-2"], failure.Before.Select(e => e.Split(' ')[1]));
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

    private async Task<long> SnapshotRowsAsync() => (long)(await ScalarAsync("SELECT count(*) FROM snapshot WHERE persistence_id = 'scheduler'"))!;

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + Wait;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the scheduler's snapshots were not stored in time");
            await Task.Delay(50);
        }
    }

    private static JournalEntry Entry(long sequenceNr, params string[] tags) =>
        new("writer-test", sequenceNr, 0, [(byte)sequenceNr], "m", 1, null, tags);

    /// <summary>The plugin's own schema, made by the journal as a node makes it: one recorded event.</summary>
    private async Task CreateTablesAsync()
    {
        var recorder = _system.ActorOf(Props.Create(() => new Recorder("schema")));
        await recorder.Ask<Recorder.Written>(new Recorder.Record("first", ["t"]), TimeSpan.FromSeconds(30));
    }

    private async Task<List<string>> TagRowsAsync()
    {
        await using var connection = new NpgsqlConnection(_postgres.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT j.sequence_number, t.tag FROM tags t JOIN journal j ON j.ordering = t.ordering_id " +
            "WHERE j.persistence_id = 'writer-test' AND t.sequence_nr = j.sequence_number AND t.persistence_id = j.persistence_id " +
            "ORDER BY j.sequence_number, t.tag", connection);
        var rows = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add($"{reader.GetInt64(0)}:{reader.GetString(1)}");
        }

        return rows;
    }

    private async Task<object?> ScalarAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(_postgres.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    /// <summary>Everything the journal replays for these bounds, each event with every field recovery sees.</summary>
    private async Task<Replayed> ReplayAsync(IActorRef journal, string persistenceId, long from, long to, long max)
    {
        var done = new TaskCompletionSource<Replayed>(TaskCreationOptions.RunContinuationsAsynchronously);
        var collector = _system.ActorOf(Props.Create(() => new ReplayCollector(done)));
        journal.Tell(new ReplayMessages(from, to, max, persistenceId, collector));
        return await done.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    private sealed record Replayed(IReadOnlyList<string> Events, long HighestSequenceNr)
    {
        public bool Equals(Replayed? other) => other is not null && Events.SequenceEqual(other.Events) && HighestSequenceNr == other.HighestSequenceNr;

        public override int GetHashCode() => HighestSequenceNr.GetHashCode();

        public override string ToString() => $"highest {HighestSequenceNr}: [{string.Join("; ", Events)}]";
    }

    private sealed class ReplayFailed(IReadOnlyList<string> before, Exception cause) : Exception("the replay failed", cause)
    {
        public IReadOnlyList<string> Before { get; } = before;
    }

    /// <summary>Takes what a journal replays, until it says it is done.</summary>
    private sealed class ReplayCollector(TaskCompletionSource<Replayed> done) : UntypedActor
    {
        private readonly List<string> _events = [];

        protected override void OnReceive(object message)
        {
            switch (message)
            {
                case ReplayedMessage { Persistent: var p }:
                    _events.Add($"{p.SequenceNr} {p.Payload} ({p.Payload.GetType().Name}) of {p.PersistenceId}, manifest '{p.Manifest}', " +
                                $"deleted {p.IsDeleted}, sender {p.Sender?.ToString() ?? "none"}, writer {p.WriterGuid}, at {p.Timestamp}");
                    break;
                case RecoverySuccess success:
                    done.TrySetResult(new Replayed(_events, success.HighestSequenceNr));
                    Context.Stop(Self);
                    break;
                case ReplayMessagesFailure failure:
                    done.TrySetException(new ReplayFailed(_events, failure.Cause));
                    Context.Stop(Self);
                    break;
            }
        }
    }

    /// <summary>Persists what it is told (strings, tagged or not) and tells what it recovered.</summary>
    private sealed class Recorder : ReceivePersistentActor
    {
        private readonly List<string> _events = [];

        public Recorder(string persistenceId)
        {
            PersistenceId = persistenceId;
            Recover<string>(e => _events.Add(e));
            Command<Record>(r =>
            {
                var sender = Sender;
                object payload = r.Tags.Count == 0 ? r.Payload : new Tagged(r.Payload, r.Tags);
                PersistAsync(payload, e =>
                {
                    _events.Add((string)(e is Tagged t ? t.Payload : e));
                    sender.Tell(new Written());
                });
            });
            Command<GetEvents>(_ => Sender.Tell((IReadOnlyList<string>)_events.ToList()));
        }

        public override string PersistenceId { get; }

        public sealed record Record(object Payload, IReadOnlyList<string> Tags);

        public sealed record Written;

        public sealed class GetEvents
        {
            public static readonly GetEvents Instance = new();
        }
    }
}
