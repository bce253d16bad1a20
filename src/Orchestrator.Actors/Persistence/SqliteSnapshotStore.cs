using Akka.Configuration;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Sql.Snapshot;
using Microsoft.Data.Sqlite;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Akka.Persistence.Sql's snapshot store (on SQLite and PostgreSQL alike) that merges incremental snapshots
/// (<see cref="IIncrementalSnapshot"/>) back into a whole one before it offers it, and on SQLite reads a snapshot itself:
/// one query on a connection of its own, the blob read straight into its array. Saves, deletes and other stores' reads
/// stay the plugin's own, on the same table.
/// </summary>
/// <remarks>
/// Why read itself: a scheduler recovering a million VMs spent 2.9 s getting its 79 MiB snapshot from the store, where
/// reading the row and deserializing it took 1.4 s (`scale` measures both).
/// </remarks>
public sealed class SqliteSnapshotStore : SqlSnapshotStore
{
    private readonly string? _connectionString;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public SqliteSnapshotStore(Config snapshotConfig) : base(snapshotConfig)
    {
        var provider = snapshotConfig.GetString("provider-name", "");
        var table = snapshotConfig.GetString("table-mapping", "default");
        _connectionString = provider.StartsWith("SQLite", StringComparison.OrdinalIgnoreCase) && table == "default"
            ? snapshotConfig.GetString("connection-string")
            : null;
    }

    protected override async Task<SelectedSnapshot?> LoadAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken cancellationToken)
    {
        var serialization = Context.System.Serialization; // Context is this actor's thread's only: taken before any await
        Func<long, Task<SelectedSnapshot?>> stored; // the snapshot at a sequence number, as stored (whole or not)
        SelectedSnapshot? latest;
        if (ReadsItself(criteria))
        {
            var rows = await Task.Run(() => Read(persistenceId, criteria.MinSequenceNr, criteria.MaxSequenceNr, serialization), cancellationToken);
            if (rows.Count == 0)
            {
                return null;
            }

            latest = await rows.First().Value;
            stored = sequenceNr => rows.GetValueOrDefault(sequenceNr) ?? Task.FromResult<SelectedSnapshot?>(null);
        }
        else
        {
            latest = await base.LoadAsync(persistenceId, criteria, cancellationToken);
            stored = sequenceNr => base.LoadAsync(persistenceId,
                new SnapshotSelectionCriteria(sequenceNr, DateTime.MaxValue, sequenceNr, DateTime.MinValue), cancellationToken);
        }

        if (latest?.Snapshot is not IIncrementalSnapshot { PreviousSequenceNr: not null } newest)
        {
            return latest;
        }

        // Back along the chain to a whole snapshot; then the increments made to it, merged in one go.
        var chain = new List<IIncrementalSnapshot> { newest };
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
        return new SelectedSnapshot(latest.Metadata, newest.OnTo(at.Snapshot, chain));
    }

    private bool ReadsItself(SnapshotSelectionCriteria criteria) =>
        _connectionString is not null && criteria.MaxTimeStamp == DateTime.MaxValue
        && (criteria.MinTimestamp ?? DateTime.MinValue) == DateTime.MinValue;

    /// <summary>
    /// Every snapshot the sequence numbers select, by sequence number, each deserialized on the thread pool as soon as its
    /// row is read: a chain's rows are deserialized side by side, and beside the reading of the next. Oldest first, so the
    /// whole snapshot at the chain's start, the largest by far, is deserialized while the increments are read. The store
    /// keeps only the latest whole snapshot and the increments after it (a whole one deletes those before it), so nearly
    /// every row read is one the chain needs.
    /// </summary>
    private SortedDictionary<long, Task<SelectedSnapshot?>> Read(string persistenceId, long minSequenceNr, long maxSequenceNr,
        Akka.Serialization.Serialization serialization)
    {
        var rows = new SortedDictionary<long, Task<SelectedSnapshot?>>(Comparer<long>.Create((a, b) => b.CompareTo(a)));
        using var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT sequence_number, created, snapshot, manifest, serializer_id FROM snapshot
            WHERE persistence_id = $id AND sequence_number BETWEEN $min AND $max
            ORDER BY sequence_number
            """;
        command.Parameters.AddWithValue("$id", persistenceId);
        command.Parameters.AddWithValue("$min", minSequenceNr);
        command.Parameters.AddWithValue("$max", maxSequenceNr);
        using var row = command.ExecuteReader();
        while (row.Read())
        {
            var metadata = new SnapshotMetadata(persistenceId, row.GetInt64(0), new DateTime(row.GetInt64(1), DateTimeKind.Utc));
            var payload = row.IsDBNull(2) ? [] : row.GetFieldValue<byte[]>(2);
            var manifest = row.IsDBNull(3) ? "" : row.GetString(3);
            var serializerId = row.GetInt32(4);
            rows[metadata.SequenceNr] = Task.Run(() => (SelectedSnapshot?)new SelectedSnapshot(metadata, serialization.Deserialize(payload, serializerId, manifest)));
        }

        return rows;
    }
}
