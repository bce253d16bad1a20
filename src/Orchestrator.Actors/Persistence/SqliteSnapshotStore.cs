using Akka.Configuration;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Sql.Snapshot;
using Microsoft.Data.Sqlite;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Akka.Persistence.Sql's snapshot store (on SQLite and PostgreSQL alike) that merges incremental snapshots
/// (<see cref="IIncrementalSnapshot"/>) back into a whole one before it offers it. On SQLite it keeps the snapshots itself,
/// in a file of their own beside the journal's (<see cref="SqliteSnapshotFile"/>), each read, written and deleted in one
/// statement on a connection of its own: the blob read straight into its array, and written only once it is serialized.
/// On PostgreSQL the rest is the plugin's.
/// </summary>
/// <remarks>
/// Why read itself: a scheduler recovering a million VMs spent 2.9 s getting its 79 MiB snapshot from the store, where
/// reading the row and deserializing it took 1.4 s (`scale` measures both).
/// Why write and delete itself: the plugin runs both inside a transaction that Microsoft.Data.Sqlite begins with BEGIN
/// IMMEDIATE, which takes SQLite's one write lock, and the journal (then in the same file) waited for all that ran inside
/// it. The plugin serializes the snapshot there: placements sent while a snapshot of 10,000 hosts and 40,000 VMs was saved
/// waited up to 336 ms (`bench durable --rate 10000 --snapshot-every 30000`), against its serializing (147 ms) and
/// writing (108 ms). Its delete compiles its query there when first run: 404 ms after the process's first whole
/// snapshot, 214 of them compiling, while placements queued behind the journal (p99 0.8-1.1 s in that run's window).
/// </remarks>
public sealed class SqliteSnapshotStore : SqlSnapshotStore
{
    /// <summary>The journal's file: snapshots from before they had a file of their own are read and deleted there.</summary>
    private readonly string? _journalConnection;

    /// <summary>The snapshots' own file (<see cref="SqliteSnapshotFile"/>); null: not a SQLite file, the plugin's path.</summary>
    private readonly string? _snapshotConnection;

    /// <summary>
    /// The snapshots' file readied (<see cref="SqliteSnapshotFile.Prepare"/>), on the thread pool rather than the actor's
    /// thread: every starter has done it already (<see cref="SqliteStoreFile.Prepare"/>), and this is for any other.
    /// Each load, save and delete waits for it first; should it fail, they fail with its reason.
    /// </summary>
    private readonly Task _ready = Task.CompletedTask;

    private readonly ILoggingAdapter _log = Context.GetLogger();

    public SqliteSnapshotStore(Config snapshotConfig) : base(WithoutThePluginsTable(snapshotConfig))
    {
        if (KeepsItsOwnFile(snapshotConfig))
        {
            var connectionString = snapshotConfig.GetString("connection-string", "");
            _journalConnection = connectionString;
            _snapshotConnection = SqliteSnapshotFile.ConnectionString(connectionString);
            _ready = Task.Run(() => SqliteSnapshotFile.Prepare(connectionString));
        }
    }

    private static bool KeepsItsOwnFile(Config config) =>
        config.GetString("provider-name", "").StartsWith("SQLite", StringComparison.OrdinalIgnoreCase)
        && config.GetString("table-mapping", "default") == "default"
        && new SqliteConnectionStringBuilder(config.GetString("connection-string", "")).DataSource is { Length: > 0 };

    /// <summary>
    /// Where the snapshots have a file of their own, the plugin's table in the journal's file is not created: nothing
    /// writes there any more. Creating it went through linq2db, which compiled for about 0.3 s at a scheduler's start,
    /// before its snapshot was even asked for.
    /// </summary>
    private static Config WithoutThePluginsTable(Config config) =>
        KeepsItsOwnFile(config) ? ConfigurationFactory.ParseString("auto-initialize = false").WithFallback(config) : config;

    protected override async Task<SelectedSnapshot?> LoadAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken cancellationToken)
    {
        var serialization = Context.System.Serialization; // Context is this actor's thread's only: taken before any await
        Func<long, Task<SelectedSnapshot?>> stored; // the snapshot at a sequence number, as stored (whole or not)
        SelectedSnapshot? latest;
        if (_snapshotConnection is { } snapshots && _journalConnection is { } journal)
        {
            await _ready;
            var rows = await Task.Run(() => Read(snapshots, persistenceId, criteria, serialization) is { Count: > 0 } own
                ? own
                : Read(journal, persistenceId, criteria, serialization, fromBefore: true), cancellationToken);
            var newest = rows.Find(r => r.Metadata.SequenceNr >= criteria.MinSequenceNr
                                        && r.Metadata.Timestamp >= (criteria.MinTimestamp ?? DateTime.MinValue));
            if (newest is null)
            {
                return null;
            }

            latest = await newest.Snapshot;
            stored = sequenceNr => rows.Find(r => r.Metadata.SequenceNr == sequenceNr)?.Snapshot ?? Task.FromResult<SelectedSnapshot?>(null);
        }
        else
        {
            latest = await base.LoadAsync(persistenceId, criteria, cancellationToken);
            stored = sequenceNr => base.LoadAsync(persistenceId,
                new SnapshotSelectionCriteria(sequenceNr, DateTime.MaxValue, sequenceNr, DateTime.MinValue), cancellationToken);
        }

        if (latest?.Snapshot is not IIncrementalSnapshot { PreviousSequenceNr: not null } increments)
        {
            return latest;
        }

        // Back along the chain to a whole snapshot; then the increments made to it, merged in one go.
        var chain = new List<IIncrementalSnapshot> { increments };
        var at = latest;
        while (at.Snapshot is IIncrementalSnapshot { PreviousSequenceNr: { } previous })
        {
            var earlier = await stored(previous);
            if (earlier is null || earlier.Metadata.SequenceNr != previous) // the plugin's own read may ignore the lower bound
            {
                // The journal has every event (none is ever deleted): recovery from it alone is slow but whole.
                _log.Warning("snapshot {0} of {1} builds on snapshot {2}, which is not in the store: recovering from the journal alone",
                    at.Metadata.SequenceNr, persistenceId, previous);
                return null;
            }

            if (earlier.Snapshot is IIncrementalSnapshot { PreviousSequenceNr: not null } increment)
            {
                chain.Add(increment);
            }

            at = earlier;
        }

        chain.Reverse();
        return new SelectedSnapshot(latest.Metadata, increments.OnTo(at.Snapshot, chain));
    }

    protected override async Task SaveAsync(SnapshotMetadata metadata, object snapshot, CancellationToken cancellationToken)
    {
        if (_snapshotConnection is not { } snapshots)
        {
            await base.SaveAsync(metadata, snapshot, cancellationToken);
            return;
        }

        var serialization = Context.System.Serialization; // Context is this actor's thread's only: taken before any await
        await _ready;
        await Task.Run(() =>
        {
            var serializer = serialization.FindSerializerFor(snapshot);
            var payload = Akka.Serialization.Serialization.WithTransport(serialization.System, () => serializer.ToBinary(snapshot));
            Write(snapshots, metadata, payload, Akka.Serialization.Serialization.ManifestFor(serializer, snapshot), serializer.Identifier);
        }, cancellationToken);
    }

    /// <summary>The plugin's row, as its own save writes it (a second save at a sequence number replaces the first).</summary>
    private static void Write(string connectionString, SnapshotMetadata metadata, byte[] payload, string manifest, int serializerId)
    {
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT OR REPLACE INTO snapshot (persistence_id, sequence_number, created, snapshot, manifest, serializer_id)
            VALUES ($id, $sequenceNr, $created, $snapshot, $manifest, $serializerId)
            """;
        command.Parameters.AddWithValue("$id", metadata.PersistenceId);
        command.Parameters.AddWithValue("$sequenceNr", metadata.SequenceNr);
        command.Parameters.AddWithValue("$created", metadata.Timestamp.Ticks);
        command.Parameters.AddWithValue("$snapshot", payload);
        command.Parameters.AddWithValue("$manifest", manifest);
        command.Parameters.AddWithValue("$serializerId", serializerId);
        command.ExecuteNonQuery();
    }

    protected override async Task DeleteAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken cancellationToken)
    {
        if (_snapshotConnection is not { } snapshots || _journalConnection is not { } journal)
        {
            await base.DeleteAsync(persistenceId, criteria, cancellationToken);
            return;
        }

        await _ready;
        await Task.Run(() =>
        {
            Delete(snapshots, persistenceId, criteria);
            // Rows from before the split, if any are left: looked for first, as a delete takes the journal's write lock.
            if (Read(journal, persistenceId, criteria, serialization: null, fromBefore: true).Count > 0)
            {
                Delete(journal, persistenceId, criteria);
            }
        }, cancellationToken);
    }

    /// <summary>Every snapshot of <paramref name="persistenceId"/> that <paramref name="criteria"/> selects, bounds included.</summary>
    private static void Delete(string connectionString, string persistenceId, SnapshotSelectionCriteria criteria)
    {
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            DELETE FROM snapshot
            WHERE persistence_id = $id AND sequence_number BETWEEN $minSequenceNr AND $maxSequenceNr AND created BETWEEN $minCreated AND $maxCreated
            """;
        command.Parameters.AddWithValue("$id", persistenceId);
        command.Parameters.AddWithValue("$minSequenceNr", criteria.MinSequenceNr);
        command.Parameters.AddWithValue("$maxSequenceNr", criteria.MaxSequenceNr);
        command.Parameters.AddWithValue("$minCreated", (criteria.MinTimestamp ?? DateTime.MinValue).Ticks);
        command.Parameters.AddWithValue("$maxCreated", criteria.MaxTimeStamp.Ticks);
        command.ExecuteNonQuery();
    }

    /// <summary>A stored snapshot: its metadata, and the snapshot as it deserializes (null: only the metadata was asked for).</summary>
    private sealed record StoredRow(SnapshotMetadata Metadata, Task<SelectedSnapshot?> Snapshot);

    /// <summary>
    /// Every snapshot of <paramref name="persistenceId"/> in the file at or below the criteria's upper bounds, newest first,
    /// each deserialized on the thread pool as soon as its row is read: a chain's rows are deserialized side by side, and
    /// beside the reading of the next. Read oldest first, so the whole snapshot at the chain's start, the largest by far, is
    /// deserialized while the increments are read. The lower bounds pick the newest only: the snapshots a chain builds on
    /// are older. The store keeps only the latest whole snapshot and the increments after it (a whole one deletes those
    /// before it), so nearly every row read is one the chain needs.
    /// </summary>
    /// <param name="fromBefore">the journal's file, read for the snapshots it kept from before they had a file of their own:
    /// none where it never had their table (a file created since).</param>
    private static List<StoredRow> Read(string connectionString, string persistenceId, SnapshotSelectionCriteria criteria,
        Akka.Serialization.Serialization? serialization, bool fromBefore = false)
    {
        var rows = new List<StoredRow>();
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        if (fromBefore)
        {
            command.CommandText = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshot'";
            if (command.ExecuteScalar() is null)
            {
                return rows;
            }
        }

        command.CommandText = $"""
            SELECT sequence_number, created, {(serialization is null ? "NULL" : "snapshot")}, manifest, serializer_id FROM snapshot
            WHERE persistence_id = $id AND sequence_number <= $maxSequenceNr AND created <= $maxCreated
            ORDER BY sequence_number
            """;
        command.Parameters.AddWithValue("$id", persistenceId);
        command.Parameters.AddWithValue("$maxSequenceNr", criteria.MaxSequenceNr);
        command.Parameters.AddWithValue("$maxCreated", criteria.MaxTimeStamp.Ticks);
        using var row = command.ExecuteReader();
        while (row.Read())
        {
            var metadata = new SnapshotMetadata(persistenceId, row.GetInt64(0), new DateTime(row.GetInt64(1), DateTimeKind.Utc));
            if (serialization is null)
            {
                rows.Add(new StoredRow(metadata, Task.FromResult<SelectedSnapshot?>(null)));
                continue;
            }

            var payload = row.IsDBNull(2) ? [] : row.GetFieldValue<byte[]>(2);
            var manifest = row.IsDBNull(3) ? "" : row.GetString(3);
            var serializerId = row.GetInt32(4);
            rows.Add(new StoredRow(metadata,
                Task.Run(() => (SelectedSnapshot?)new SelectedSnapshot(metadata, serialization.Deserialize(payload, serializerId, manifest)))));
        }

        rows.Reverse();
        return rows;
    }
}
