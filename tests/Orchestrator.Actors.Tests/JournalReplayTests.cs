using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.TestKit.Xunit2;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// Recovery through the journal's own read (<see cref="JournalReplay"/>) on a real SQLite file: it replays exactly what
/// Akka.Persistence.Sql's own journal replays from the same rows, a persistent actor recovers through it (deletes
/// included), and a row that will not deserialize fails the recovery, naming the row, with nothing after it replayed.
/// </summary>
public sealed class JournalReplayTests : TestKit
{
    /// <summary>The plugin's own journal on the same file: what the new read must equal.</summary>
    private const string PluginJournal = "akka.persistence.journal.plugin-sql";

    private readonly TempDir _dir;

    public JournalReplayTests() : this(new TempDir())
    {
    }

    private JournalReplayTests(TempDir dir) : base(WithPluginJournal(TestConfig.Persistent(dir.Path)))
    {
        _dir = dir;
    }

    private static Config WithPluginJournal(Config config) => ConfigurationFactory.ParseString($$"""
            {{PluginJournal}} {
              class = "Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql"
              provider-name = "SQLite.MS"
              connection-string = {{OrchestratorConfig.Quote(config.GetString("akka.persistence.journal.sql.connection-string"))}}
              tag-write-mode = TagTable
              read-isolation-level = read-uncommitted
              auto-initialize = false
            }
            """)
        .WithFallback(config);

    private IActorRef OurJournal => Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null);

    private IActorRef PluginsJournal => Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(PluginJournal);

    [Fact]
    public void Its_journal_is_the_group_commit_one_and_the_other_the_plugins_own()
    {
        Assert.Equal(typeof(GroupCommitJournal).FullName, Sys.Settings.Config.GetString("akka.persistence.journal.sql.class").Split(',')[0].Trim());
        Assert.StartsWith("Akka.Persistence.Sql.Journal.SqlWriteJournal", Sys.Settings.Config.GetString(PluginJournal + ".class"));
    }

    [Fact]
    public async Task It_replays_what_the_plugin_replays_from_the_same_rows_whatever_the_bounds()
    {
        // Four persistence ids written together (batches mix them), tagged (as the scheduler tags: a TagSet; and as the
        // plugin's own set) and not; "c" deleted up to 5 (the plugin removes 1–4 and marks 5), "d" deleted entirely.
        // Their payloads are strings: a serializer with no manifest.
        var writers = new[] { "a", "b", "c", "d" }.ToDictionary(id => id, id => Sys.ActorOf(Props.Create(() => new Journaled(id, TestActor))));
        foreach (var _ in writers)
        {
            ExpectMsg<Journaled.Recovered>();
        }

        var sent = 0;
        for (var i = 1; i <= 30; i++)
        {
            foreach (var (id, writer) in writers.Where(w => w.Key == "a" || i <= 12))
            {
                writer.Tell(new Journaled.Write($"{id}-{i}", (i % 3) switch { 0 => [], 1 => ["one", "all"], _ => ["all"] }, AsTagSet: i % 2 == 0));
                sent++;
            }
        }

        for (var i = 0; i < sent; i++)
        {
            ExpectMsg<long>();
        }

        // "e": ledger events (a serializer with a string manifest) as the writer takes them, some with no writer uuid.
        using (var writer = new SqliteJournalWriter(Sys.Settings.Config.GetString("akka.persistence.journal.sql.connection-string")))
        {
            await writer.WriteAsync(Enumerable.Range(1, 6).Select(i =>
            {
                var hostLost = new LedgerEvents.HostLost(new HostId($"host-{i}"), DateTimeOffset.UnixEpoch.AddDays(i));
                var serializer = Sys.Serialization.FindSerializerFor(hostLost);
                return new JournalEntry("e", i, 1_000 + i, serializer.ToBinary(hostLost), Akka.Serialization.Serialization.ManifestFor(serializer, hostLost),
                    serializer.Identifier, i % 2 == 0 ? null : "writer-e", i % 3 == 0 ? ["host"] : []);
            }).ToList());
        }

        OurJournal.Tell(new DeleteMessagesTo("c", 5, TestActor));
        ExpectMsg<DeleteMessagesSuccess>();
        OurJournal.Tell(new DeleteMessagesTo("d", 12, TestActor));
        ExpectMsg<DeleteMessagesSuccess>();

        (long From, long To, long Max)[] bounds =
        [
            (0, long.MaxValue, long.MaxValue), (1, long.MaxValue, long.MaxValue), (3, 7, long.MaxValue), (1, long.MaxValue, 4),
            (5, 5, 1), (6, long.MaxValue, 3), (8, 3, long.MaxValue), (31, long.MaxValue, long.MaxValue), (2, 20, 0), (11, 40, 100),
        ];
        foreach (var id in new[] { "a", "b", "c", "d", "e", "never-written" })
        {
            foreach (var (from, to, max) in bounds)
            {
                var ours = Replay(OurJournal, id, from, to, max);
                var plugins = Replay(PluginsJournal, id, from, to, max);
                Assert.True(plugins == ours, $"{id} from {from} to {to} max {max}:\n  plugin: {plugins}\n  ours:   {ours}");
            }
        }

        // Not vacuous: whole journals and their highest sequence numbers, deleted rows left out but counted.
        Assert.Equal(30, Replay(OurJournal, "a", 1, long.MaxValue, long.MaxValue).Events.Count);
        Assert.Equal(Enumerable.Range(6, 7).Select(i => $"c-{i}"), Replay(OurJournal, "c", 1, long.MaxValue, long.MaxValue).Events.Select(e => e.Split(' ')[1]));
        Assert.Equal(new Replayed([], 12), Replay(OurJournal, "d", 1, long.MaxValue, long.MaxValue));
        Assert.Contains("(HostLost) of e, manifest 'LedgerEvents.HostLost'", Replay(OurJournal, "e", 1, long.MaxValue, long.MaxValue).Events[0]);
    }

    [Fact]
    public void A_persistent_actor_recovers_through_it_and_goes_on_after_its_highest_sequence_number_deleted_rows_included()
    {
        var writer = Sys.ActorOf(Props.Create(() => new Journaled("recovering", TestActor)));
        ExpectMsg<Journaled.Recovered>();
        for (var i = 1; i <= 20; i++)
        {
            writer.Tell(new Journaled.Write($"event-{i}", i % 2 == 0 ? ["even"] : [], AsTagSet: true));
        }

        for (var i = 1; i <= 20; i++)
        {
            Assert.Equal(i, ExpectMsg<long>());
        }

        Sys.Stop(writer);
        OurJournal.Tell(new DeleteMessagesTo("recovering", 5, TestActor));
        ExpectMsg<DeleteMessagesSuccess>();

        var recovered = Sys.ActorOf(Props.Create(() => new Journaled("recovering", TestActor)));
        var state = ExpectMsg<Journaled.Recovered>();
        Assert.Equal(Enumerable.Range(6, 15).Select(i => $"event-{i}"), state.Events);
        Assert.Equal(20, state.LastSequenceNr);

        // Everything deleted: nothing to replay, yet the next event still comes after the last one.
        recovered.Tell(new Journaled.Write("event-21", [], AsTagSet: false));
        Assert.Equal(21, ExpectMsg<long>());
        Sys.Stop(recovered);
        OurJournal.Tell(new DeleteMessagesTo("recovering", 21, TestActor));
        ExpectMsg<DeleteMessagesSuccess>();
        var again = Sys.ActorOf(Props.Create(() => new Journaled("recovering", TestActor)));
        Assert.Equal(new Journaled.Recovered([], 21), ExpectMsg<Journaled.Recovered>());
        again.Tell(new Journaled.Write("event-22", [], AsTagSet: false));
        Assert.Equal(22, ExpectMsg<long>());
    }

    [Fact]
    public async Task A_row_that_will_not_deserialize_fails_the_recovery_naming_it_and_nothing_after_it_is_replayed()
    {
        // The tables, made as a node makes them.
        var first = Sys.ActorOf(Props.Create(() => new Journaled("other", TestActor)));
        ExpectMsg<Journaled.Recovered>();
        first.Tell(new Journaled.Write("x", [], AsTagSet: false));
        ExpectMsg<long>();

        // Rows 1, 2 and 4 good; row 3 a ledger event whose bytes are not its JSON.
        var serializer = Sys.Serialization.FindSerializerFor("good");
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, "good");
        JournalEntry Good(long sequenceNr) =>
            new("damaged", sequenceNr, DateTime.UtcNow.Ticks, serializer.ToBinary($"good-{sequenceNr}"), manifest, serializer.Identifier, "w", []);
        using (var writer = new SqliteJournalWriter(Sys.Settings.Config.GetString("akka.persistence.journal.sql.connection-string")))
        {
            var ledger = Sys.Serialization.FindSerializerForType(typeof(LedgerEvents.VmRequested));
            await writer.WriteAsync([Good(1), Good(2), new("damaged", 3, DateTime.UtcNow.Ticks, "{not json"u8.ToArray(), "LedgerEvents.VmRequested", ledger.Identifier, "w", ["t"]), Good(4)]);
        }

        var damaged = Sys.ActorOf(Props.Create(() => new Journaled("damaged", TestActor)));
        Watch(damaged);
        var failed = ExpectMsg<Journaled.RecoveryFailed>();
        ExpectTerminated(damaged);
        var cause = Assert.IsType<JournalReplayException>(failed.Cause);
        Assert.Contains("'damaged' sequence number 3", cause.Message);
        Assert.Contains("LedgerEvents.VmRequested", cause.Message);
        Assert.NotNull(cause.InnerException);
        Assert.Equal(["good-1", "good-2"], failed.EventsBefore);
    }

    /// <summary>Everything the journal replays for these bounds, each event with every field recovery sees.</summary>
    private Replayed Replay(IActorRef journal, string persistenceId, long from, long to, long max)
    {
        var probe = CreateTestProbe();
        journal.Tell(new ReplayMessages(from, to, max, persistenceId, probe.Ref));
        var events = new List<string>();
        while (true)
        {
            switch (probe.ExpectMsg<object>())
            {
                case ReplayedMessage { Persistent: var p }:
                    events.Add($"{p.SequenceNr} {p.Payload} ({p.Payload.GetType().Name}) of {p.PersistenceId}, manifest '{p.Manifest}', " +
                               $"deleted {p.IsDeleted}, sender {p.Sender?.ToString() ?? "none"}, writer {p.WriterGuid}, at {p.Timestamp}");
                    break;
                case RecoverySuccess success:
                    return new Replayed(events, success.HighestSequenceNr);
                case ReplayMessagesFailure failure:
                    throw new InvalidOperationException($"replay of {persistenceId} failed", failure.Cause);
            }
        }
    }

    private sealed record Replayed(IReadOnlyList<string> Events, long HighestSequenceNr)
    {
        public bool Equals(Replayed? other) => other is not null && Events.SequenceEqual(other.Events) && HighestSequenceNr == other.HighestSequenceNr;

        public override int GetHashCode() => HighestSequenceNr.GetHashCode();

        public override string ToString() => $"highest {HighestSequenceNr}: [{string.Join("; ", Events)}]";
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        _dir.Dispose();
    }

    /// <summary>Persists the strings it is told (tagged or not), answering each with its sequence number; tells how it recovered.</summary>
    private sealed class Journaled : ReceivePersistentActor
    {
        private readonly List<string> _events = [];
        private readonly IActorRef _reportTo;

        public Journaled(string persistenceId, IActorRef reportTo)
        {
            PersistenceId = persistenceId;
            _reportTo = reportTo;
            Recover<string>(e => _events.Add(e));
            Recover<RecoveryCompleted>(_ => reportTo.Tell(new Recovered(_events.ToList(), LastSequenceNr)));
            Command<Write>(w =>
            {
                object payload = w.Tags.Length == 0 ? w.Event
                    : w.AsTagSet ? new Tagged(w.Event, TagSet.Of(w.Tags))
                    : new Tagged(w.Event, w.Tags);
                Persist(payload, _ =>
                {
                    _events.Add(w.Event);
                    Sender.Tell(LastSequenceNr);
                });
            });
        }

        public override string PersistenceId { get; }

        protected override void OnRecoveryFailure(Exception reason, object? message = null) =>
            _reportTo.Tell(new RecoveryFailed(reason, _events.ToList()));

        public sealed record Write(string Event, string[] Tags, bool AsTagSet);

        public sealed record Recovered(IReadOnlyList<string> Events, long LastSequenceNr)
        {
            public bool Equals(Recovered? other) => other is not null && Events.SequenceEqual(other.Events) && LastSequenceNr == other.LastSequenceNr;

            public override int GetHashCode() => LastSequenceNr.GetHashCode();
        }

        public sealed record RecoveryFailed(Exception Cause, IReadOnlyList<string> EventsBefore);
    }
}
