using System.Diagnostics;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Writes journal rows to SQLite on one connection, with group commit (<see cref="GroupCommitWriter{TConnection}"/>):
/// a burst costs one fsync however many writers wait in it.
/// </summary>
public sealed class SqliteJournalWriter : GroupCommitWriter<SqliteJournalWriter.Statements>
{
    private readonly string _connectionString;
    private readonly Timer _backgroundCheckpoints;
    private readonly Stopwatch _sinceCheckpoint = Stopwatch.StartNew();
    private int _backgroundCheckpointRunning;

    /// <summary>The journal's tables, created: the first batch opens its statements on them only once they are there.</summary>
    private readonly Task _tablesReady;

    /// <param name="tablesReady">completes once the tables exist (none given: they do already).</param>
    public SqliteJournalWriter(string connectionString, Task? tablesReady = null) : base("SQLite")
    {
        _tablesReady = tablesReady ?? Task.CompletedTask;
        // A private cache: the plugin's readers (shared cache) then read the WAL beside this writer instead of
        // waiting on its table locks.
        _connectionString = new SqliteConnectionStringBuilder(connectionString) { Cache = SqliteCacheMode.Private }.ToString();
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

    public override void Dispose()
    {
        _backgroundCheckpoints.Dispose();
        base.Dispose();
    }

    protected override async Task<Statements> OpenAsync()
    {
        await _tablesReady;
        return Statements.Open(_connectionString);
    }

    protected override Task CommitAsync(Statements connection, IReadOnlyList<PendingWrite> batch)
    {
        connection.Commit(batch);
        return Task.CompletedTask;
    }

    protected override void AfterCommit(Statements connection)
    {
        if (_sinceCheckpoint.Elapsed >= WriterCheckpointInterval)
        {
            connection.Checkpoint();
            _sinceCheckpoint.Restart();
        }
    }

    protected override void BeforeClose(Statements connection) => connection.Checkpoint();

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

    /// <summary>One prepared statement on SQLite's own API; each failure is a <see cref="SqliteException"/>, as through ADO.NET.</summary>
    private sealed class RawStatement : IDisposable
    {
        private readonly sqlite3 _db;
        private readonly sqlite3_stmt _statement;

        public RawStatement(sqlite3 db, string sql)
        {
            _db = db;
            Check(raw.sqlite3_prepare_v2(db, sql, out _statement));
        }

        public static void Execute(sqlite3 db, string sql) => SqliteException.ThrowExceptionForRC(raw.sqlite3_exec(db, sql), db);

        public void Bind(int index, long value) => Check(raw.sqlite3_bind_int64(_statement, index, value));

        public void Bind(int index, string? value) =>
            Check(value is null ? raw.sqlite3_bind_null(_statement, index) : raw.sqlite3_bind_text(_statement, index, value));

        // An empty span would bind NULL: a zero-length blob is what an empty message is.
        public void Bind(int index, byte[] value) =>
            Check(value.Length == 0 ? raw.sqlite3_bind_zeroblob(_statement, index, 0) : raw.sqlite3_bind_blob(_statement, index, value));

        /// <summary>Runs the insert and makes the statement ready for the next one.</summary>
        public void Run()
        {
            var result = raw.sqlite3_step(_statement);
            raw.sqlite3_reset(_statement);
            if (result != raw.SQLITE_DONE)
            {
                SqliteException.ThrowExceptionForRC(result, _db);
            }
        }

        public void Dispose() => _statement.Dispose();

        private void Check(int result) => SqliteException.ThrowExceptionForRC(result, _db);
    }

    /// <summary>The connection and its two prepared inserts, reused for every batch.</summary>
    /// <remarks>
    /// The inserts run on SQLite's own statement API (bind, step, reset), as Python's sqlite3 does: through ADO.NET each
    /// row cost a data reader and a parameter walk, several times SQLite's own work, on the one thread every write waits for.
    /// A row's ordering is its rowid (the column is the INTEGER PRIMARY KEY), so no RETURNING is needed.
    /// </remarks>
    public sealed class Statements : IAsyncDisposable
    {
        private readonly SqliteConnection _connection;
        private readonly RawStatement _insertRow;
        private readonly RawStatement _insertTag;

        private Statements(SqliteConnection connection)
        {
            _connection = connection;
            _insertRow = new RawStatement(connection.Handle!,
                "INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid) " +
                "VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7)");
            _insertTag = new RawStatement(connection.Handle!, "INSERT INTO tags (ordering_id, tag, sequence_nr, persistence_id) VALUES (?1, ?2, ?3, ?4)");
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

                RequireColumns(connection, "journal", JournalTables.JournalColumns);
                RequireColumns(connection, "tags", JournalTables.TagColumns);
                RequireRowidOrdering(connection);
                // ADO.NET retried a busy step for the connection's timeout (another connection writing, e.g. a big
                // snapshot); on the statement API SQLite's own busy handler does the same.
                SqliteException.ThrowExceptionForRC(raw.sqlite3_busy_timeout(connection.Handle, connection.DefaultTimeout * 1000), connection.Handle);
                return new Statements(connection);
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }

        public void Commit(IReadOnlyList<PendingWrite> batch)
        {
            var db = _connection.Handle!;
            RawStatement.Execute(db, "BEGIN IMMEDIATE");
            try
            {
                foreach (var pending in batch)
                {
                    foreach (var entry in pending.Entries)
                    {
                        _insertRow.Bind(1, entry.Created);
                        _insertRow.Bind(2, entry.PersistenceId);
                        _insertRow.Bind(3, entry.SequenceNr);
                        _insertRow.Bind(4, entry.Message);
                        _insertRow.Bind(5, entry.Manifest);
                        _insertRow.Bind(6, entry.SerializerId);
                        _insertRow.Bind(7, entry.WriterUuid);
                        _insertRow.Run();
                        var ordering = raw.sqlite3_last_insert_rowid(db);
                        foreach (var tag in entry.Tags)
                        {
                            _insertTag.Bind(1, ordering);
                            _insertTag.Bind(2, tag);
                            _insertTag.Bind(3, entry.SequenceNr);
                            _insertTag.Bind(4, entry.PersistenceId);
                            _insertTag.Run();
                        }
                    }
                }

                RawStatement.Execute(db, "COMMIT");
            }
            catch
            {
                if (raw.sqlite3_get_autocommit(db) == 0)
                {
                    raw.sqlite3_exec(db, "ROLLBACK");
                }

                throw;
            }
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

        public ValueTask DisposeAsync()
        {
            _insertRow.Dispose();
            _insertTag.Dispose();
            _connection.Dispose();
            return ValueTask.CompletedTask;
        }

        /// <summary>The tag rows point at the journal row by its ordering, read back as the rowid: the two must be one column.</summary>
        private static void RequireRowidOrdering(SqliteConnection connection)
        {
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT type, pk FROM pragma_table_info('journal') WHERE name = 'ordering'";
            using var reader = command.ExecuteReader();
            if (!reader.Read() || !reader.GetString(0).Equals("INTEGER", StringComparison.OrdinalIgnoreCase) || reader.GetInt64(1) != 1)
            {
                throw new InvalidOperationException(
                    "the SQLite journal table's 'ordering' column is not its INTEGER PRIMARY KEY: it was not made by " +
                    "Akka.Persistence.Sql's default SQLite schema, which this journal writes");
            }
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
