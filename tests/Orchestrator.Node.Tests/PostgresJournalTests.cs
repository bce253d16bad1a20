using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Npgsql;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Settings;

namespace Orchestrator.Node.Tests;

/// <summary>
/// The PostgreSQL journal's own write path (<see cref="PostgresJournalWriter"/>) on a real server: Akka.Persistence.Sql
/// reads back what it wrote (recovery and events by tag), a write the server refuses leaves nothing, and a write while
/// the server is down fails its requests, after which writes go on.
/// </summary>
public sealed class PostgresJournalTests : IAsyncLifetime
{
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
