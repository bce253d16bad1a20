using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using Orchestrator.Actors.Persistence;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Orchestrator.Simulation;

/// <summary>
/// The journal's writer alone, measured after the run: the window's own journal rows (its events with their tags, as the
/// store holds them) written again by the same writer class into copies of the journal's tables, with as many requests
/// in flight as the run had and nothing else at work. <see cref="StoreLimit"/> counts 300-byte rows in a table without
/// an index; a placement here is two events and three tag rows in the plugin's schema, some eleven index entries, so
/// this is the most the durable path could reach on this store as the journal lays it out, and the distance to it is
/// what the scheduler, the actors and serialization cost.
/// </summary>
/// <param name="RequestsPerS">the window's requests' rows, each request's rows one write, written per second.</param>
/// <param name="RowsPerRequest">journal rows (events) a request wrote in the window.</param>
/// <param name="TagsPerRequest">tag rows a request wrote in the window.</param>
/// <param name="CpuMsPerRequest">the whole process's CPU per request while it ran (the writer's and the store's own, on SQLite).</param>
public sealed record JournalWriterLimit(string Store, int Requests, double RequestsPerS, double RowsPerS, double RowsPerRequest,
    double TagsPerRequest, double CpuMsPerRequest)
{
    /// <summary>At most this many of the window's rows are written again (a few seconds' worth).</summary>
    public const int MostRows = 100_000;

    private const string Schema = "writer_limit";

    /// <summary>The journal's highest ordering now (PostgreSQL's when <paramref name="postgres"/> is given): the window's rows come after it.</summary>
    public static async Task<long> LastOrderingAsync(string? postgres, string journalFile, CancellationToken ct)
    {
        await using DbConnection journal = postgres is null ? Sqlite(journalFile) : new NpgsqlConnection(postgres);
        await journal.OpenAsync(ct);
        return await ScalarAsync(journal, "SELECT coalesce(max(ordering), 0) FROM journal", ct);
    }

    /// <summary>On the store the run journaled to (PostgreSQL's database when <paramref name="postgres"/> is given).</summary>
    public static Task<JournalWriterLimit> MeasureAsync(string? postgres, string journalFile, long after, int requests, int lanes, CancellationToken ct) =>
        postgres is null ? MeasureSqliteAsync(journalFile, after, requests, lanes, ct) : MeasurePostgresAsync(postgres, after, requests, lanes, ct);

    /// <summary>On SQLite: copies of the journal's tables in a file of their own beside it, removed after.</summary>
    private static async Task<JournalWriterLimit> MeasureSqliteAsync(string journalFile, long after, int requests, int lanes, CancellationToken ct)
    {
        var (entries, tables) = await ReadAsync(Sqlite(journalFile), after, requests,
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('journal', 'tags') AND sql IS NOT NULL ORDER BY type DESC", ct);
        var file = Path.Combine(Path.GetDirectoryName(journalFile)!, "journal-writer-limit.db");
        try
        {
            await using (var copy = Sqlite(file))
            {
                await copy.OpenAsync(ct);
                await ExecuteAsync(copy, "PRAGMA journal_mode = WAL", ct);
                foreach (var create in tables)
                {
                    await ExecuteAsync(copy, create, ct);
                }
            }

            using var writer = new SqliteJournalWriter(Sqlite(file).ConnectionString);
            return await MeasureAsync("sqlite", writer, entries, lanes);
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

    /// <summary>On PostgreSQL: copies of the journal's tables in a schema of their own in the bench's database, dropped after.</summary>
    private static async Task<JournalWriterLimit> MeasurePostgresAsync(string connectionString, long after, int requests, int lanes, CancellationToken ct)
    {
        var (entries, _) = await ReadAsync(new NpgsqlConnection(connectionString), after, requests, tablesSql: null, ct);
        await using var admin = new NpgsqlConnection(connectionString);
        await admin.OpenAsync(ct);
        // LIKE … INCLUDING ALL copies the columns, their defaults and identity, the constraints and the indexes.
        await ExecuteAsync(admin, $"CREATE SCHEMA {Schema}; CREATE TABLE {Schema}.journal (LIKE journal INCLUDING ALL); " +
                                  $"CREATE TABLE {Schema}.tags (LIKE tags INCLUDING ALL)", ct);
        try
        {
            using var writer = new PostgresJournalWriter(new NpgsqlConnectionStringBuilder(connectionString) { SearchPath = Schema }.ConnectionString);
            return await MeasureAsync("postgres", writer, entries, lanes);
        }
        finally
        {
            await ExecuteAsync(admin, $"DROP SCHEMA {Schema} CASCADE", CancellationToken.None);
        }
    }

    /// <summary>The window's rows with their tags, in the order written, cut into the window's requests (evenly).</summary>
    private static async Task<(List<IReadOnlyList<JournalEntry>> Requests, List<string> TablesSql)> ReadAsync(DbConnection journal, long after,
        int requests, string? tablesSql, CancellationToken ct)
    {
        await using (journal)
        {
            await journal.OpenAsync(ct);
            var total = await ScalarAsync(journal, $"SELECT count(*) FROM journal WHERE ordering > {after}", ct);
            var tags = new Dictionary<long, List<string>>();
            await using (var read = Command(journal, $"SELECT t.ordering_id, t.tag FROM tags t WHERE t.ordering_id IN " +
                                                      $"(SELECT ordering FROM journal WHERE ordering > {after} ORDER BY ordering LIMIT {MostRows})"))
            await using (var rows = await read.ExecuteReaderAsync(ct))
            {
                while (await rows.ReadAsync(ct))
                {
                    var ordering = Convert.ToInt64(rows.GetValue(0));
                    (tags.TryGetValue(ordering, out var list) ? list : tags[ordering] = []).Add(rows.GetString(1));
                }
            }

            var entries = new List<JournalEntry>();
            await using (var read = Command(journal, "SELECT ordering, persistence_id, sequence_number, created, message, manifest, identifier, writer_uuid " +
                                                     $"FROM journal WHERE ordering > {after} ORDER BY ordering LIMIT {MostRows}"))
            await using (var rows = await read.ExecuteReaderAsync(ct))
            {
                while (await rows.ReadAsync(ct))
                {
                    var ordering = Convert.ToInt64(rows.GetValue(0));
                    entries.Add(new JournalEntry(rows.GetString(1), Convert.ToInt64(rows.GetValue(2)), Convert.ToInt64(rows.GetValue(3)),
                        (byte[])rows.GetValue(4), rows.GetString(5), Convert.ToInt32(rows.GetValue(6)), rows.IsDBNull(7) ? null : rows.GetString(7),
                        tags.GetValueOrDefault(ordering) ?? []));
                }
            }

            // Only the first MostRows rows are taken: as many of the requests as wrote them.
            var taken = total == 0 ? 0 : (int)Math.Max(1, Math.Round(requests * (double)entries.Count / total));
            var cut = new List<IReadOnlyList<JournalEntry>>(taken);
            for (var i = 0; i < taken; i++)
            {
                var (from, to) = ((int)((long)i * entries.Count / taken), (int)((long)(i + 1) * entries.Count / taken));
                if (to > from)
                {
                    cut.Add(entries.GetRange(from, to - from));
                }
            }

            var tables = new List<string>();
            if (tablesSql is not null)
            {
                await using var read = Command(journal, tablesSql);
                await using var rows = await read.ExecuteReaderAsync(ct);
                while (await rows.ReadAsync(ct))
                {
                    tables.Add(rows.GetString(0));
                }
            }

            return (cut, tables);
        }
    }

    /// <summary>The requests' rows through <paramref name="writer"/>, <paramref name="lanes"/> writes waiting at once.</summary>
    private static async Task<JournalWriterLimit> MeasureAsync(string store, IJournalRowWriter writer, List<IReadOnlyList<JournalEntry>> requests, int lanes)
    {
        var process = System.Diagnostics.Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, Math.Min(lanes, requests.Count))).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref next); i < requests.Count; i = Interlocked.Increment(ref next))
            {
                await writer.WriteAsync(requests[i]);
            }
        }));
        var seconds = wall.Elapsed.TotalSeconds;
        process.Refresh();
        var count = Math.Max(1, requests.Count);
        var rows = requests.Sum(r => r.Count);
        return new JournalWriterLimit(store, requests.Count, Math.Round(requests.Count / seconds), Math.Round(rows / seconds),
            Math.Round(rows / (double)count, 2), Math.Round(requests.Sum(r => r.Sum(e => e.Tags.Count)) / (double)count, 2),
            Math.Round((process.TotalProcessorTime - cpu).TotalMilliseconds / count, 4));
    }

    private static SqliteConnection Sqlite(string file) =>
        new(new SqliteConnectionStringBuilder { DataSource = file, Pooling = false }.ToString());

    private static DbCommand Command(DbConnection connection, string sql)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        return command;
    }

    private static async Task<long> ScalarAsync(DbConnection connection, string sql, CancellationToken ct)
    {
        await using var command = Command(connection, sql);
        return Convert.ToInt64(await command.ExecuteScalarAsync(ct));
    }

    private static async Task ExecuteAsync(DbConnection connection, string sql, CancellationToken ct)
    {
        await using var command = Command(connection, sql);
        await command.ExecuteNonQueryAsync(ct);
    }
}
