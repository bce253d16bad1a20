using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Orchestrator.Actors.Telemetry;

namespace Orchestrator.Actors.Persistence;

/// <summary>One journal row as Akka.Persistence.Sql stores it (tag-table mode: the tags go to their own table).</summary>
public sealed record JournalEntry(
    string PersistenceId, long SequenceNr, long Created, byte[] Message, string Manifest, int SerializerId, string? WriterUuid,
    IReadOnlyList<string> Tags);

/// <summary>
/// Writes journal rows to SQLite on one connection and one thread. Everything queued while a transaction commits goes
/// into the next one, so a burst costs one fsync however many writers wait in it; each caller's task completes only
/// once its rows are committed (or fails with the reason, and then none of the batch is written).
/// </summary>
public sealed class SqliteJournalWriter : IDisposable
{
    /// <summary>The columns this writer fills; checked against the table when the connection opens.</summary>
    private static readonly string[] JournalColumns =
        ["ordering", "created", "deleted", "persistence_id", "sequence_number", "message", "manifest", "identifier", "writer_uuid"];

    private static readonly string[] TagColumns = ["ordering_id", "tag", "sequence_nr", "persistence_id"];

    private readonly string _connectionString;
    private readonly Channel<PendingWrite> _queue = Channel.CreateUnbounded<PendingWrite>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _loop;
    private readonly Timer _backgroundCheckpoints;
    private int _backgroundCheckpointRunning;

    public SqliteJournalWriter(string connectionString)
    {
        // A private cache: the plugin's readers (shared cache) then read the WAL beside this writer instead of
        // waiting on its table locks.
        _connectionString = new SqliteConnectionStringBuilder(connectionString) { Cache = SqliteCacheMode.Private }.ToString();
        _loop = Task.Factory.StartNew(RunAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        _backgroundCheckpoints = new Timer(_ => BackgroundCheckpoint(), null, BackgroundCheckpointInterval, BackgroundCheckpointInterval);
    }

    // Checkpoints (copying the WAL back into the database) in two parts, so that no request waits for a big one.
    // SQLite's own would run inside whichever commit crosses 1,000 WAL pages, and that commit's requests would wait.
    // A checkpoint on another connection runs beside the writer but can never catch up with a busy one, and the WAL
    // is rewound only once it has; so the background one copies nearly everything, and the writer, between two
    // batches, copies the little that is left, after which its next write starts the WAL from the beginning again.

    /// <summary>How often a checkpoint runs beside the writer, on its own connection.</summary>
    public static readonly TimeSpan BackgroundCheckpointInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>How often the writer finishes the background's work between two batches (and so how big the WAL gets).</summary>
    public static readonly TimeSpan WriterCheckpointInterval = TimeSpan.FromSeconds(1);

    /// <summary>Completes once every entry is committed; an empty batch completes at once.</summary>
    public Task WriteAsync(IReadOnlyList<JournalEntry> entries)
    {
        if (entries.Count == 0)
        {
            return Task.CompletedTask;
        }

        var pending = new PendingWrite(entries, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        return _queue.Writer.TryWrite(pending)
            ? pending.Done.Task
            : Task.FromException(new InvalidOperationException("the SQLite journal writer is stopped"));
    }

    public void Dispose()
    {
        _backgroundCheckpoints.Dispose();
        _queue.Writer.TryComplete();
        _loop.Wait(TimeSpan.FromSeconds(30));
    }

    private async Task RunAsync()
    {
        Statements? statements = null;
        var batch = new List<PendingWrite>();
        var lastCheckpoint = Stopwatch.StartNew();
        try
        {
            while (await _queue.Reader.WaitToReadAsync())
            {
                batch.Clear();
                while (_queue.Reader.TryRead(out var pending))
                {
                    batch.Add(pending);
                }

                try
                {
                    statements ??= Statements.Open(_connectionString);
                    statements.Commit(batch);
                    OrchestratorMetrics.JournalBatchSize.Record(batch.Sum(p => p.Entries.Count));
                    foreach (var pending in batch)
                    {
                        pending.Done.TrySetResult();
                    }
                }
                catch (Exception ex)
                {
                    // The transaction rolled back: nothing of this batch is in the journal. A broken connection is
                    // opened afresh for the next batch.
                    statements?.Dispose();
                    statements = null;
                    foreach (var pending in batch)
                    {
                        pending.Done.TrySetException(ex);
                    }
                }

                if (statements is not null && lastCheckpoint.Elapsed >= WriterCheckpointInterval)
                {
                    statements.Checkpoint();
                    lastCheckpoint.Restart();
                }
            }
        }
        finally
        {
            // Stopped (or, were it ever to happen, broken): later writes fail at once instead of waiting forever.
            _queue.Writer.TryComplete();
            while (_queue.Reader.TryRead(out var left))
            {
                left.Done.TrySetException(new InvalidOperationException("the SQLite journal writer is stopped"));
            }

            statements?.Checkpoint();
            statements?.Dispose();
        }
    }

    /// <summary>A passive checkpoint on its own connection: copies what it can, waits for no one, blocks no writer.</summary>
    private void BackgroundCheckpoint()
    {
        if (Interlocked.Exchange(ref _backgroundCheckpointRunning, 1) == 1)
        {
            return;
        }

        try
        {
            using var connection = new SqliteConnection(_connectionString);
            connection.Open();
            Statements.PassiveCheckpoint(connection);
        }
        catch (SqliteException)
        {
            // The database is busy or gone: the next tick tries again, and the WAL only grows meanwhile.
        }
        finally
        {
            Volatile.Write(ref _backgroundCheckpointRunning, 0);
        }
    }

    private sealed record PendingWrite(IReadOnlyList<JournalEntry> Entries, TaskCompletionSource Done);

    /// <summary>The connection and its two prepared inserts, reused for every batch.</summary>
    private sealed class Statements : IDisposable
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _insertRow;
        private readonly SqliteCommand _insertTag;
        private readonly SqliteParameter _rowCreated, _rowPersistenceId, _rowSequenceNr, _rowMessage, _rowManifest, _rowSerializer, _rowWriter;
        private readonly SqliteParameter _tagOrdering, _tagValue, _tagSequenceNr, _tagPersistenceId;

        private Statements(SqliteConnection connection)
        {
            _connection = connection;
            _insertRow = connection.CreateCommand();
            _insertRow.CommandText =
                "INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid) " +
                "VALUES ($created, 0, $pid, $seq, $message, $manifest, $identifier, $writer) RETURNING ordering";
            _insertTag = connection.CreateCommand();
            _insertTag.CommandText = "INSERT INTO tags (ordering_id, tag, sequence_nr, persistence_id) VALUES ($ordering, $tag, $seq, $pid)";
            _rowCreated = _insertRow.Parameters.Add("$created", SqliteType.Integer);
            _rowPersistenceId = _insertRow.Parameters.Add("$pid", SqliteType.Text);
            _rowSequenceNr = _insertRow.Parameters.Add("$seq", SqliteType.Integer);
            _rowMessage = _insertRow.Parameters.Add("$message", SqliteType.Blob);
            _rowManifest = _insertRow.Parameters.Add("$manifest", SqliteType.Text);
            _rowSerializer = _insertRow.Parameters.Add("$identifier", SqliteType.Integer);
            _rowWriter = _insertRow.Parameters.Add("$writer", SqliteType.Text);
            _tagOrdering = _insertTag.Parameters.Add("$ordering", SqliteType.Integer);
            _tagValue = _insertTag.Parameters.Add("$tag", SqliteType.Text);
            _tagSequenceNr = _insertTag.Parameters.Add("$seq", SqliteType.Integer);
            _tagPersistenceId = _insertTag.Parameters.Add("$pid", SqliteType.Text);
        }

        public static Statements Open(string connectionString)
        {
            var connection = new SqliteConnection(connectionString);
            try
            {
                connection.Open();
                using (var pragma = connection.CreateCommand())
                {
                    pragma.CommandText = "PRAGMA wal_autocheckpoint = 0"; // see the writer's two-part checkpoints
                    pragma.ExecuteNonQuery();
                }

                RequireColumns(connection, "journal", JournalColumns);
                RequireColumns(connection, "tags", TagColumns);
                return new Statements(connection);
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }

        public void Commit(List<PendingWrite> batch)
        {
            using var transaction = _connection.BeginTransaction();
            _insertRow.Transaction = transaction;
            _insertTag.Transaction = transaction;
            foreach (var entry in batch.SelectMany(p => p.Entries))
            {
                _rowCreated.Value = entry.Created;
                _rowPersistenceId.Value = entry.PersistenceId;
                _rowSequenceNr.Value = entry.SequenceNr;
                _rowMessage.Value = entry.Message;
                _rowManifest.Value = entry.Manifest;
                _rowSerializer.Value = entry.SerializerId;
                _rowWriter.Value = (object?)entry.WriterUuid ?? DBNull.Value;
                var ordering = (long)_insertRow.ExecuteScalar()!;
                foreach (var tag in entry.Tags)
                {
                    _tagOrdering.Value = ordering;
                    _tagValue.Value = tag;
                    _tagSequenceNr.Value = entry.SequenceNr;
                    _tagPersistenceId.Value = entry.PersistenceId;
                    _insertTag.ExecuteNonQuery();
                }
            }

            transaction.Commit();
        }

        /// <summary>Between batches: finishes what the background checkpoints copied, so the next write rewinds the WAL.</summary>
        public void Checkpoint()
        {
            try
            {
                PassiveCheckpoint(_connection);
            }
            catch (SqliteException)
            {
                // Another checkpoint is running: the next interval tries again.
            }
        }

        public static void PassiveCheckpoint(SqliteConnection connection)
        {
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
            command.ExecuteNonQuery();
        }

        public void Dispose()
        {
            _insertRow.Dispose();
            _insertTag.Dispose();
            _connection.Dispose();
        }

        private static void RequireColumns(SqliteConnection connection, string table, string[] columns)
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"SELECT name FROM pragma_table_info('{table}')";
            var present = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            using (var reader = command.ExecuteReader())
            {
                while (reader.Read())
                {
                    present.Add(reader.GetString(0));
                }
            }

            var missing = columns.Where(c => !present.Contains(c)).ToList();
            if (missing.Count > 0)
            {
                throw new InvalidOperationException(
                    $"the SQLite journal table '{table}' lacks column(s) {string.Join(", ", missing)}: it was not made by " +
                    "Akka.Persistence.Sql's default SQLite schema, which this journal writes");
            }
        }
    }
}
