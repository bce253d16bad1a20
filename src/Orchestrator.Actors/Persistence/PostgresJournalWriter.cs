using System.Threading.Channels;
using Npgsql;
using NpgsqlTypes;
using Orchestrator.Actors.Telemetry;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Writes journal rows to PostgreSQL on one connection, one statement per batch: the rows and their tag rows go in as
/// arrays, in one round trip and one implicit transaction, whatever the batch's size. Everything queued while a batch
/// is being written goes into the next (group commit).
/// </summary>
/// <remarks>
/// Why: the plugin's own path (linq2db) inserted tagged rows one at a time to learn each row's ordering, a round trip
/// per event: durable placements stayed near 2,000/s on a server that takes 150,000 rows/s in batches. Here the journal
/// rows' generated orderings come back from the insert inside the same statement, which inserts the tag rows with them.
/// </remarks>
public sealed class PostgresJournalWriter : IJournalRowWriter
{
    // ORDER BY n: the journal's ordering (an identity) is given in the order rows reach the insert, so a persistence id's
    // rows keep their sequence numbers' order in it, as the read side pages by ordering.
    private const string Insert = """
        WITH input AS (
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bytea[], $5::text[], $6::integer[], $7::text[])
                WITH ORDINALITY AS i(created, persistence_id, sequence_number, message, manifest, identifier, writer_uuid, n)
        ), written AS (
            INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid)
            SELECT created, false, persistence_id, sequence_number, message, manifest, identifier, writer_uuid FROM input ORDER BY n
            RETURNING ordering, persistence_id, sequence_number
        )
        INSERT INTO tags (ordering_id, tag, sequence_nr, persistence_id)
        SELECT written.ordering, t.tag, written.sequence_number, written.persistence_id
        FROM unnest($8::bigint[], $9::text[]) AS t(n, tag)
        JOIN input ON input.n = t.n
        JOIN written ON written.persistence_id = input.persistence_id AND written.sequence_number = input.sequence_number
        """;

    private readonly string _connectionString;
    private readonly Channel<PendingWrite> _queue = Channel.CreateUnbounded<PendingWrite>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _loop;

    public PostgresJournalWriter(string connectionString)
    {
        _connectionString = connectionString;
        _loop = Task.Run(RunAsync);
    }

    public Task WriteAsync(IReadOnlyList<JournalEntry> entries)
    {
        if (entries.Count == 0)
        {
            return Task.CompletedTask;
        }

        // Continuations run on the writer's thread as it completes the batch: what waits on a write is the journal's
        // reply (a few messages told), and a hop through the thread pool would add a thread's wake-up to every request.
        var pending = new PendingWrite(entries, new TaskCompletionSource());
        return _queue.Writer.TryWrite(pending)
            ? pending.Done.Task
            : Task.FromException(new InvalidOperationException("the PostgreSQL journal writer is stopped"));
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _loop.Wait(TimeSpan.FromSeconds(30));
    }

    private async Task RunAsync()
    {
        Statement? statement = null;
        var batch = new List<PendingWrite>();
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
                    statement ??= await Statement.OpenAsync(_connectionString);
                    var rows = await statement.WriteAsync(batch);
                    OrchestratorMetrics.JournalBatchSize.Record(rows);
                    foreach (var pending in batch)
                    {
                        pending.Done.TrySetResult();
                    }
                }
                catch (Exception ex)
                {
                    // One statement, one transaction: none of this batch is in the journal. A broken connection is
                    // opened afresh for the next batch.
                    if (statement is not null)
                    {
                        await statement.DisposeAsync();
                        statement = null;
                    }

                    foreach (var pending in batch)
                    {
                        pending.Done.TrySetException(ex);
                    }
                }
            }
        }
        finally
        {
            // Stopped (or, were it ever to happen, broken): later writes fail at once instead of waiting forever.
            _queue.Writer.TryComplete();
            while (_queue.Reader.TryRead(out var left))
            {
                left.Done.TrySetException(new InvalidOperationException("the PostgreSQL journal writer is stopped"));
            }

            if (statement is not null)
            {
                await statement.DisposeAsync();
            }
        }
    }

    private sealed record PendingWrite(IReadOnlyList<JournalEntry> Entries, TaskCompletionSource Done);

    /// <summary>The connection and its prepared insert, reused for every batch.</summary>
    private sealed class Statement : IAsyncDisposable
    {
        private readonly NpgsqlConnection _connection;
        private readonly NpgsqlCommand _insert;

        private Statement(NpgsqlConnection connection, NpgsqlCommand insert)
        {
            _connection = connection;
            _insert = insert;
        }

        public static async Task<Statement> OpenAsync(string connectionString)
        {
            var connection = new NpgsqlConnection(connectionString);
            try
            {
                await connection.OpenAsync();
                await RequireColumnsAsync(connection, "journal", JournalTables.JournalColumns);
                await RequireColumnsAsync(connection, "tags", JournalTables.TagColumns);
                var insert = new NpgsqlCommand(Insert, connection);
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea });
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer });
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
                insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
                await insert.PrepareAsync();
                return new Statement(connection, insert);
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
        }

        /// <summary>Writes the batch's rows and their tags in one statement; returns how many rows.</summary>
        public async Task<int> WriteAsync(List<PendingWrite> batch)
        {
            var count = 0;
            var tagCount = 0;
            foreach (var pending in batch)
            {
                count += pending.Entries.Count;
                foreach (var entry in pending.Entries)
                {
                    tagCount += entry.Tags.Count;
                }
            }

            var created = new long[count];
            var persistenceIds = new string[count];
            var sequenceNrs = new long[count];
            var messages = new byte[count][];
            var manifests = new string[count];
            var identifiers = new int[count];
            var writers = new string?[count];
            var tagRows = new long[tagCount];
            var tags = new string[tagCount];
            var row = 0;
            var tag = 0;
            foreach (var pending in batch)
            {
                foreach (var entry in pending.Entries)
                {
                    created[row] = entry.Created;
                    persistenceIds[row] = entry.PersistenceId;
                    sequenceNrs[row] = entry.SequenceNr;
                    messages[row] = entry.Message;
                    manifests[row] = entry.Manifest;
                    identifiers[row] = entry.SerializerId;
                    writers[row] = entry.WriterUuid;
                    row++;
                    foreach (var name in entry.Tags)
                    {
                        tagRows[tag] = row; // WITH ORDINALITY counts from 1: the row just filled
                        tags[tag] = name;
                        tag++;
                    }
                }
            }

            var parameters = _insert.Parameters;
            parameters[0].Value = created;
            parameters[1].Value = persistenceIds;
            parameters[2].Value = sequenceNrs;
            parameters[3].Value = messages;
            parameters[4].Value = manifests;
            parameters[5].Value = identifiers;
            parameters[6].Value = writers;
            parameters[7].Value = tagRows;
            parameters[8].Value = tags;
            await _insert.ExecuteNonQueryAsync();
            return count;
        }

        public async ValueTask DisposeAsync()
        {
            await _insert.DisposeAsync();
            await _connection.DisposeAsync();
        }

        private static async Task RequireColumnsAsync(NpgsqlConnection connection, string table, string[] columns)
        {
            await using var command = new NpgsqlCommand(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = table });
            var present = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            await using (var reader = await command.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    present.Add(reader.GetString(0));
                }
            }

            var missing = columns.Where(c => !present.Contains(c)).ToList();
            if (missing.Count > 0)
            {
                throw new InvalidOperationException(
                    $"the PostgreSQL journal table '{table}' lacks column(s) {string.Join(", ", missing)}: it was not made by " +
                    "Akka.Persistence.Sql's default PostgreSQL schema, which this journal writes");
            }
        }
    }
}
