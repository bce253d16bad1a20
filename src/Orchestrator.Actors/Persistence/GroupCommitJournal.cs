using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Akka.Persistence.Sql.Journal;
using Akka.Serialization;
using Akka.Util;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Akka.Persistence.Sql's journal with a faster write path and a faster recovery for SQLite and PostgreSQL; deletes and
/// the read side (events by tag) stay the plugin's own, on the same tables, and so does table creation except on SQLite.
/// </summary>
/// <remarks>
/// Why: in tag-table mode the plugin inserts tagged rows one at a time through linq2db to learn each row's ordering,
/// which capped durable placements at about 5,000/s on SQLite and 2,000/s on PostgreSQL. Here each write batch is one
/// transaction on one connection (<see cref="SqliteJournalWriter"/>: prepared statements; <see cref="PostgresJournalWriter"/>:
/// one statement of arrays), and writes that arrive while one is being committed are committed together in the next
/// (group commit). The rows are exactly the plugin's: same columns, same tag rows. Recovery reads them back with one
/// query of its own (<see cref="JournalReplay"/>), where the plugin's replay spent 15 µs per event. Other stores and
/// other tag modes use the plugin's own paths.
/// </remarks>
public sealed class GroupCommitJournal : SqlWriteJournal
{
    private readonly IJournalRowWriter? _writer;
    private readonly JournalReplay? _replay;

    /// <summary>Cancels the replays still reading when the journal stops.</summary>
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Each persistence id's latest write: its highest sequence number is read only after that is done.</summary>
    private readonly Dictionary<string, Task> _lastWrite = new(StringComparer.Ordinal);

    /// <summary>
    /// The tables readied (<see cref="SqliteStoreFile.CreateJournalTables"/>), on the thread pool: writes, replays and reads
    /// of the highest sequence number wait for it; should it fail, they fail with its reason. Already done where this
    /// journal does not create its tables itself.
    /// </summary>
    private readonly Task _ready = Task.CompletedTask;

    public GroupCommitJournal(Config journalConfig) : base(WithTablesOfItsOwn(journalConfig))
    {
        var provider = journalConfig.GetString("provider-name", "");
        var connectionString = journalConfig.GetString("connection-string");
        if (CreatesItsTables(journalConfig) && journalConfig.GetBoolean("auto-initialize", true))
        {
            _ready = Task.Run(() => SqliteStoreFile.CreateJournalTables(connectionString));
        }

        if (IsTagTable(journalConfig))
        {
            _writer = IsSqlite(provider) ? new SqliteJournalWriter(connectionString, tablesReady: _ready)
                : provider.StartsWith("PostgreSQL", StringComparison.OrdinalIgnoreCase) ? new PostgresJournalWriter(connectionString)
                : null;
            _replay = _writer is not null && HasDefaultTables(journalConfig)
                ? JournalReplay.For(provider, connectionString, Context.System.Serialization, journalConfig.GetString("serializer", null))
                : null;
        }
    }

    /// <summary>
    /// Where this journal writes and reads back every row itself on SQLite, it creates the plugin's tables too, with plain
    /// SQL, and the plugin does not. Why: the plugin creates them through linq2db, whose first use compiles for about
    /// 0.3 s, beside a recovering scheduler reading its snapshot on the same two cores (a cold `scale --recover` of a
    /// million VMs: 2.53-2.75 s without the plugin's table creation in the journal and the snapshot store, 2.95-3.12 s
    /// with it, three runs each).
    /// </summary>
    private static bool CreatesItsTables(Config config) =>
        IsSqlite(config.GetString("provider-name", "")) && IsTagTable(config) && HasDefaultTables(config);

    private static Config WithTablesOfItsOwn(Config config) =>
        CreatesItsTables(config) ? ConfigurationFactory.ParseString("auto-initialize = false").WithFallback(config) : config;

    private static bool IsSqlite(string provider) => provider.StartsWith("SQLite", StringComparison.OrdinalIgnoreCase);

    private static bool IsTagTable(Config config) => config.GetString("tag-write-mode", "TagTable").Equals("TagTable", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Where this journal writes, it reads back (the same tables, by the default mapping's column names); the plugin's
    /// delete-compatibility mode keeps the highest sequence number in a table of its own, which only the plugin's path reads.
    /// </summary>
    private static bool HasDefaultTables(Config config) =>
        config.GetString("table-mapping", "default") == "default"
        && string.IsNullOrEmpty(config.GetString("table-compatibility-mode", null))
        && !config.GetBoolean("delete-compatibility-mode", false);

    /// <summary>
    /// The plugin's read journal asks its write journal whether it has started (the plugin's internal
    /// <c>IsInitialized</c>) before its first query, and the plugin answers at once when it creates no tables. Where this
    /// journal makes them itself, the answer waits until they are made: a read journal answered first queried a file
    /// without them ("no such table: journal": the demo's event stream, on a node's first start, under load).
    /// </summary>
    protected override bool ReceivePluginInternal(object message)
    {
        if (!_ready.IsCompleted && message.GetType().FullName == "Akka.Persistence.Sql.Utility.IsInitialized")
        {
            var (self, sender) = (Self, Sender);
            // Asked again once the tables are there (or their creation failed, which the writes then report).
            _ready.ContinueWith(_ => self.Tell(message, sender), TaskScheduler.Default);
            return true;
        }

        return base.ReceivePluginInternal(message);
    }

    public override Task ReplayMessagesAsync(
        IActorContext context, string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<IPersistentRepresentation> recoveryCallback) =>
        _replay is null
            ? base.ReplayMessagesAsync(context, persistenceId, fromSequenceNr, toSequenceNr, max, recoveryCallback)
            // As the plugin's replay: from 1 at the lowest.
            : ReplayWhenReadyAsync(_replay, persistenceId, Math.Max(1, fromSequenceNr), toSequenceNr, max, recoveryCallback);

    private async Task ReplayWhenReadyAsync(
        JournalReplay replay, string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<IPersistentRepresentation> recoveryCallback)
    {
        await _ready;
        await replay.ReplayAsync(persistenceId, fromSequenceNr, toSequenceNr, max, recoveryCallback, _stopping.Token);
    }

    protected override Task<IImmutableList<Exception>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken)
    {
        if (_writer is null)
        {
            return base.WriteMessagesAsync(messages, cancellationToken);
        }

        var now = DateTime.UtcNow.Ticks;
        var writes = messages.ToList();
        if (writes.Count == 0)
        {
            return Task.FromResult<IImmutableList<Exception>>(null!);
        }

        var batch = new List<JournalEntry>(writes.Count);
        Exception?[]? rejections = null;
        for (var i = 0; i < writes.Count; i++)
        {
            // An AtomicWrite is all or nothing: one event that won't serialize rejects the whole write, and only it.
            var payload = (IImmutableList<IPersistentRepresentation>)writes[i].Payload;
            var start = batch.Count;
            try
            {
                // By index: a foreach over the interface boxed an enumerator per write (a command's one or two events).
                for (var j = 0; j < payload.Count; j++)
                {
                    batch.Add(Serialize(payload[j], now));
                }
            }
            catch (Exception ex)
            {
                batch.RemoveRange(start, batch.Count - start);
                rejections ??= new Exception?[writes.Count];
                rejections[i] = ex;
            }
        }

        var persistenceId = writes[0].PersistenceId;
        var written = _writer.WriteAsync(batch);
        _lastWrite[persistenceId] = written;
        return Rejections(written, rejections);
    }

    public override async Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken cancellationToken)
    {
        if (_lastWrite.TryGetValue(persistenceId, out var pending))
        {
            // Whether it succeeded or not: the database says what was written once it is over.
            await pending.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        if (_replay is null)
        {
            return await base.ReadHighestSequenceNrAsync(persistenceId, fromSequenceNr, cancellationToken);
        }

        await _ready;
        return await _replay.ReadHighestSequenceNrAsync(persistenceId, fromSequenceNr, cancellationToken);
    }

    protected override void PostStop()
    {
        // Waits (on this actor's thread, once, at its stop) for the writes already queued: what was sent is written.
        _writer?.Dispose();
        _stopping.Cancel(); // not disposed: a replay on its way out may still look at it
        base.PostStop();
    }

    private static async Task<IImmutableList<Exception>> Rejections(Task written, Exception?[]? rejections)
    {
        await written;
        return rejections is null ? null! : ImmutableList.CreateRange<Exception>(rejections!);
    }

    private JournalEntry Serialize(IPersistentRepresentation representation, long now)
    {
        var (payload, tags) = representation.Payload is Tagged tagged
            ? (tagged.Payload, tagged.Tags switch
            {
                TagSet set => set.Tags,
                { Count: 0 } => Array.Empty<string>(),
                var other => other.ToArray(),
            })
            : (representation.Payload, Array.Empty<string>());
        var serializer = Context.System.Serialization.FindSerializerFor(payload);
        var manifest = serializer switch
        {
            SerializerWithStringManifest withManifest => withManifest.Manifest(payload),
            { IncludeManifest: true } => payload.GetType().TypeQualifiedName(),
            _ => string.Empty,
        };
        return new JournalEntry(
            representation.PersistenceId,
            representation.SequenceNr,
            representation.Timestamp == 0 ? now : representation.Timestamp,
            // With the system as transport, as the plugin does: a payload holding actor refs serializes them whole. A ledger
            // event holds none (the Domain knows no Akka), and the transport's scope cost an allocation per event.
            payload is ILedgerEvent ? serializer.ToBinary(payload)
            : Akka.Serialization.Serialization.WithTransport((ExtendedActorSystem)Context.System, (serializer, payload), s => s.serializer.ToBinary(s.payload)),
            manifest,
            serializer.Identifier,
            representation.WriterGuid,
            tags);
    }
}
