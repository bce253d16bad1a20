using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.TestKit.Xunit2;
using Microsoft.Data.Sqlite;
using Orchestrator.Actors.Persistence;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// The SQLite journal's own write path (<see cref="GroupCommitJournal"/>) on a real file: what it writes, Akka.Persistence.Sql
/// reads back (recovery and events by tag), and a write that cannot be serialized is refused alone.
/// </summary>
public sealed class SqliteJournalTests : PersistentTestKit
{
    [Fact]
    public void The_configured_sqlite_journal_is_this_one()
    {
        var journal = Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null);
        journal.Tell(new Identify(1));
        Assert.NotNull(ExpectMsg<ActorIdentity>().Subject);
        Assert.Equal(typeof(GroupCommitJournal).AssemblyQualifiedName!.Split(',')[0],
            Sys.Settings.Config.GetString("akka.persistence.journal.sql.class").Split(',')[0].Trim());
    }

    [Fact]
    public async Task Events_it_writes_recover_in_order_and_are_found_by_their_tags()
    {
        var writer = Sys.ActorOf(Props.Create(() => new Recorder("recorder-1")));
        // Several batches, some sent before the last is written, with and without tags.
        for (var i = 0; i < 50; i++)
        {
            writer.Tell(new Recorder.Record($"event-{i}", i % 2 == 0 ? ["even", "all"] : i % 5 == 0 ? [] : ["all"]));
        }

        for (var i = 0; i < 50; i++)
        {
            ExpectMsg<Recorder.Written>();
        }

        Watch(writer);
        writer.Tell(PoisonPill.Instance);
        ExpectTerminated(writer);
        var recovered = Sys.ActorOf(Props.Create(() => new Recorder("recorder-1")));
        recovered.Tell(Recorder.GetEvents.Instance);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"event-{i}"), ExpectMsg<IReadOnlyList<string>>());

        var queries = PersistenceQuery.Get(Sys).ReadJournalFor<SqlReadJournal>("akka.persistence.query.journal.sql");
        var even = await queries.CurrentEventsByTag("even", Offset.NoOffset())
            .RunAggregate(new List<EventEnvelope>(), (list, e) => { list.Add(e); return list; }, Sys.Materializer());
        Assert.Equal(Enumerable.Range(0, 50).Where(i => i % 2 == 0).Select(i => $"event-{i}"), even.Select(e => (string)e.Event));
        Assert.Equal(Enumerable.Range(0, 50).Where(i => i % 2 == 0).Select(i => (long)i + 1), even.Select(e => e.SequenceNr));
        Assert.All(even, e => Assert.Equal("recorder-1", e.PersistenceId));
        // Offsets are the journal's ordering: increasing, as the read side pages by them.
        var offsets = even.Select(e => ((Sequence)e.Offset).Value).ToList();
        Assert.Equal(offsets.Order(), offsets);
        var all = await queries.CurrentEventsByTag("all", Offset.NoOffset())
            .RunAggregate(0, (n, _) => n + 1, Sys.Materializer());
        Assert.Equal(50 - 5, all); // i = 5, 15, 25, 35, 45 carry no tag
    }

    [Fact]
    public async Task The_read_journal_starts_only_once_the_tables_are_made()
    {
        using var dir = new TempDir();
        var config = TestConfig.Persistent(dir.Path);
        // Another connection holds SQLite's write lock: the journal cannot make its tables until it lets go.
        using var blocker = new SqliteConnection($"Data Source={Path.Combine(dir.Path, "orchestrator.db")}");
        blocker.Open();
        Execute(blocker, "BEGIN IMMEDIATE");
        var system = ActorSystem.Create("tables-late", config);
        try
        {
            // The read journal asks the write journal (which this starts) whether it has started, then queries.
            var starting = Task.Run(() => PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>("akka.persistence.query.journal.sql"));
            Assert.NotSame(starting, await Task.WhenAny(starting, Task.Delay(TimeSpan.FromSeconds(2))));

            Execute(blocker, "COMMIT");
            var queries = await starting;
            var events = await queries.CurrentAllEvents(Offset.NoOffset()).RunAggregate(0, (n, _) => n + 1, system.Materializer());
            Assert.Equal(0, events);
        }
        finally
        {
            await system.Terminate();
        }
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    [Fact]
    public async Task It_creates_the_tables_the_plugin_would_create()
    {
        // The plugin's own journal creates its tables in a file of its own, through linq2db, as it did here before.
        using var pluginDir = new TempDir();
        var pluginConfig = ConfigurationFactory.ParseString("""
            akka.persistence.journal.sql.class = "Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql"
            """).WithFallback(TestConfig.Persistent(pluginDir.Path));
        var pluginSystem = ActorSystem.Create("plugin-made", pluginConfig);
        try
        {
            var probe = CreateTestProbe(pluginSystem);
            // Answered once the journal has made its tables: it stashes what comes before.
            Akka.Persistence.Persistence.Instance.Apply(pluginSystem).JournalFor(null)
                .Tell(new ReplayMessages(1, long.MaxValue, long.MaxValue, "nobody", probe.Ref));
            probe.ExpectMsg<RecoverySuccess>();
        }
        finally
        {
            await pluginSystem.Terminate();
        }

        Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null)
            .Tell(new ReplayMessages(1, long.MaxValue, long.MaxValue, "nobody", TestActor));
        ExpectMsg<RecoverySuccess>();

        var plugins = Schema(pluginConfig.GetString("akka.persistence.journal.sql.connection-string"));
        Assert.Contains("table journal: column persistence_id NVarChar(255) not null 1 primary key 0", plugins); // it did make them
        Assert.Equal(plugins, Schema(Sys.Settings.Config.GetString("akka.persistence.journal.sql.connection-string")));
    }

    /// <summary>Every table's columns and every index's columns, as SQLite describes them (SQLite's own tables left out).</summary>
    private static List<string> Schema(string connectionString)
    {
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        var described = new List<string>();
        foreach (var table in Rows(connection, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"))
        {
            described.AddRange(Rows(connection, $"SELECT 'table {table}: column ' || name || ' ' || type || ' not null ' || \"notnull\" || ' primary key ' || pk " +
                                                $"|| ' default ' || ifnull(dflt_value, '-') FROM pragma_table_info('{table}') ORDER BY cid")
                .Select(column => column.Replace(" default -", "")));
            foreach (var index in Rows(connection, $"SELECT name || ' unique ' || \"unique\" FROM pragma_index_list('{table}') ORDER BY name"))
            {
                var columns = Rows(connection, $"SELECT name FROM pragma_index_info('{index.Split(' ')[0]}') ORDER BY seqno");
                described.Add($"table {table}: index {index} on {string.Join(", ", columns)}");
            }
        }

        return described;
    }

    private static List<string> Rows(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        var rows = new List<string>();
        while (reader.Read())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }

    [Fact]
    public void An_event_that_cannot_be_serialized_is_rejected_alone_and_later_writes_go_on()
    {
        var writer = Sys.ActorOf(Props.Create(() => new Recorder("recorder-2")));
        writer.Tell(new Recorder.Record("before", []));
        ExpectMsg<Recorder.Written>();
        writer.Tell(new Recorder.Record(new Unserializable(), []));
        Assert.Contains("cannot be serialized", ExpectMsg<Recorder.Rejected>().Reason);
        writer.Tell(new Recorder.Record("after", []));
        ExpectMsg<Recorder.Written>();

        Watch(writer);
        writer.Tell(PoisonPill.Instance);
        ExpectTerminated(writer);
        var recovered = Sys.ActorOf(Props.Create(() => new Recorder("recorder-2")));
        recovered.Tell(Recorder.GetEvents.Instance);
        Assert.Equal(["before", "after"], ExpectMsg<IReadOnlyList<string>>());
    }

    [Fact]
    public async Task The_writer_refuses_a_table_it_does_not_know_naming_the_missing_columns()
    {
        var file = System.IO.Path.Combine(DataDirectory, "other.db");
        var connectionString = new SqliteConnectionStringBuilder { DataSource = file }.ToString();
        using (var connection = new SqliteConnection(connectionString))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE journal (ordering INTEGER PRIMARY KEY, payload BLOB); CREATE TABLE tags (ordering_id INTEGER)";
            command.ExecuteNonQuery();
        }

        using var writer = new SqliteJournalWriter(connectionString);
        var entry = new JournalEntry("p", 1, 0, [1], "m", 1, null, []);
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => writer.WriteAsync([entry]));
        Assert.Contains("journal", failure.Message);
        Assert.Contains("persistence_id", failure.Message);
    }

    [Fact]
    public async Task A_write_SQLite_refuses_leaves_no_row_of_it_and_the_next_write_commits_with_its_tags_on_its_rows()
    {
        // The plugin's own schema, made by the journal as a node makes it.
        var journal = Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null);
        journal.Tell(new Identify(1));
        ExpectMsg<ActorIdentity>();
        var recorder = Sys.ActorOf(Props.Create(() => new Recorder("recorder-3")));
        recorder.Tell(new Recorder.Record("first", ["t"]));
        ExpectMsg<Recorder.Written>();
        var connectionString = Sys.Settings.Config.GetString("akka.persistence.journal.sql.connection-string");

        using var writer = new SqliteJournalWriter(connectionString);
        // Sequence number 1 of "writer-test" twice in one write: the unique index refuses the second row, so neither is kept.
        JournalEntry Entry(long sequenceNr, params string[] tags) => new("writer-test", sequenceNr, 0, [(byte)sequenceNr], "m", 1, null, tags);
        await Assert.ThrowsAsync<SqliteException>(() => writer.WriteAsync([Entry(1, "a"), Entry(1, "b")]));
        await writer.WriteAsync([Entry(1, "a"), Entry(2, "a", "b")]);

        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT j.sequence_number, t.tag FROM tags t JOIN journal j ON j.ordering = t.ordering_id " +
                              "WHERE j.persistence_id = 'writer-test' ORDER BY j.sequence_number, t.tag";
        var rows = new List<string>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                rows.Add($"{reader.GetInt64(0)}:{reader.GetString(1)}");
            }
        }

        Assert.Equal(["1:a", "2:a", "2:b"], rows);
        command.CommandText = "SELECT count(*) FROM journal WHERE persistence_id = 'writer-test'";
        Assert.Equal(2L, command.ExecuteScalar());
    }

    private sealed class Unserializable
    {
        public string Boom => throw new InvalidOperationException("cannot be serialized");
    }

    /// <summary>Persists what it is told (strings, tagged or not) and tells what it recovered.</summary>
    internal sealed class Recorder : ReceivePersistentActor
    {
        private readonly List<string> _events = [];
        private IActorRef _lastSender = ActorRefs.Nobody;

        public Recorder(string persistenceId)
        {
            PersistenceId = persistenceId;
            Recover<string>(e => _events.Add(e));
            Command<Record>(r =>
            {
                var sender = Sender;
                _lastSender = sender;
                // The even events' tags come as the scheduler gives them (a TagSet), the others as the plugin's own set.
                object payload = r.Tags.Count == 0 ? r.Payload
                    : r.Tags.Contains("even") ? new Tagged(r.Payload, TagSet.Of([.. r.Tags]))
                    : new Tagged(r.Payload, r.Tags);
                PersistAsync(payload, e =>
                {
                    _events.Add((string)(e is Tagged t ? t.Payload : e));
                    sender.Tell(new Written());
                });
            });
            Command<GetEvents>(_ => Sender.Tell((IReadOnlyList<string>)_events.ToList()));
        }

        public override string PersistenceId { get; }

        protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
        {
            _lastSender.Tell(new Rejected(cause.InnerException?.Message ?? cause.Message));
        }

        public sealed record Record(object Payload, IReadOnlyList<string> Tags);

        public sealed record Written;

        public sealed record Rejected(string Reason);

        public sealed class GetEvents
        {
            public static readonly GetEvents Instance = new();
        }
    }
}
