using Microsoft.Data.Sqlite;
using Npgsql;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Orchestrator.Simulation;

/// <summary>
/// What the store itself allows, measured in the same run and on the same disk or server as the benchmark beside it:
/// rows/s in transactions of <see cref="BatchRows"/> rows of <see cref="RowBytes"/> bytes (the most a group commit could
/// reach), and the latency of a one-row commit (the least a single durable request could wait). A scratch table of its
/// own, never the journal's.
/// </summary>
/// <param name="RowsPerS">rows/s, batched.</param>
/// <param name="CommitP50Ms">one-row commit, median.</param>
/// <param name="CommitP99Ms">one-row commit, 99th percentile.</param>
public sealed record StoreLimit(string Store, double RowsPerS, double CommitP50Ms, double CommitP99Ms)
{
    public const int BatchRows = 256;
    public const int RowBytes = 300;
    private const int Batches = 80;
    private const int SingleCommits = 400;

    /// <summary>SQLite as the journal uses it (WAL, synchronous=FULL), in a file of its own in <paramref name="directory"/>.</summary>
    public static StoreLimit MeasureSqlite(string directory)
    {
        var file = Path.Combine(directory, "store-limit.db");
        try
        {
            using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Pooling = false }.ToString());
            connection.Open();
            Execute(connection, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; CREATE TABLE rows (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
            using var insert = connection.CreateCommand();
            insert.CommandText = "INSERT INTO rows (payload) VALUES ($payload)";
            var payload = insert.Parameters.Add("$payload", SqliteType.Blob);
            payload.Value = new byte[RowBytes];
            insert.Prepare();

            void Transaction(int rows)
            {
                using var transaction = connection.BeginTransaction();
                insert.Transaction = transaction;
                for (var i = 0; i < rows; i++)
                {
                    insert.ExecuteNonQuery();
                }

                transaction.Commit();
            }

            var rowsPerS = RowsPerSecond(() => Transaction(BatchRows));
            var (p50, p99) = CommitLatency(() => Transaction(1));
            return new StoreLimit("sqlite", rowsPerS, p50, p99);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            foreach (var suffix in new[] { "", "-wal", "-shm" })
            {
                File.Delete(file + suffix);
            }
        }
    }

    /// <summary>PostgreSQL on the benchmark's own database: one multi-row INSERT per transaction, one round trip each.</summary>
    public static async Task<StoreLimit> MeasurePostgresAsync(string connectionString, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await using (var create = new NpgsqlCommand("CREATE TABLE store_limit_rows (id bigserial PRIMARY KEY, payload bytea NOT NULL)", connection))
        {
            await create.ExecuteNonQueryAsync(ct);
        }

        var row = new byte[RowBytes];
        NpgsqlCommand Insert(int rows)
        {
            var values = string.Join(", ", Enumerable.Range(0, rows).Select(_ => "($1)"));
            var command = new NpgsqlCommand($"INSERT INTO store_limit_rows (payload) VALUES {values}", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = row });
            return command;
        }

        // Outside a transaction block each statement is its own transaction: one commit per round trip.
        await using var batch = Insert(BatchRows);
        await using var single = Insert(1);
        await batch.PrepareAsync(ct);
        await single.PrepareAsync(ct);
        var rowsPerS = RowsPerSecond(() => batch.ExecuteNonQuery());
        var (p50, p99) = CommitLatency(() => single.ExecuteNonQuery());
        await using (var drop = new NpgsqlCommand("DROP TABLE store_limit_rows", connection))
        {
            await drop.ExecuteNonQueryAsync(ct);
        }

        return new StoreLimit("postgres", rowsPerS, p50, p99);
    }

    private static double RowsPerSecond(Action commitBatch)
    {
        commitBatch(); // the first one creates pages and warms the statement
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < Batches; i++)
        {
            commitBatch();
        }

        return Math.Round(Batches * (double)BatchRows / watch.Elapsed.TotalSeconds);
    }

    private static (double P50Ms, double P99Ms) CommitLatency(Action commitOne)
    {
        var ticks = new long[SingleCommits];
        for (var i = 0; i < ticks.Length; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            commitOne();
            ticks[i] = Stopwatch.GetTimestamp() - t0;
        }

        var latency = BenchCommand.Percentiles(ticks);
        return (latency.P50Ms, latency.P99Ms);
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
