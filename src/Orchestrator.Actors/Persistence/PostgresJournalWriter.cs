using Npgsql;
using NpgsqlTypes;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Writes journal rows to PostgreSQL on one connection, one statement per batch: the rows and their tag rows go in as
/// arrays, in one round trip and one implicit transaction, whatever the batch's size. Everything queued while a batch
/// is being written goes into the next (group commit, <see cref="GroupCommitWriter{TConnection}"/>).
/// </summary>
/// <remarks>
/// Why: the plugin's own path (linq2db) inserted tagged rows one at a time to learn each row's ordering, a round trip
/// per event: durable placements stayed near 2,000/s on a server that takes 150,000 rows/s in batches. Here the journal
/// rows' generated orderings come back from the insert inside the same statement, which inserts the tag rows with them.
/// </remarks>
public sealed class PostgresJournalWriter : GroupCommitWriter<PostgresJournalWriter.Statement>
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

    public PostgresJournalWriter(string connectionString) : base("PostgreSQL") => _connectionString = connectionString;

    protected override Task<Statement> OpenAsync() => Statement.OpenAsync(_connectionString);

    protected override Task CommitAsync(Statement connection, IReadOnlyList<PendingWrite> batch) => connection.WriteAsync(batch);

    /// <summary>The connection and its prepared insert, reused for every batch.</summary>
    public sealed class Statement : IAsyncDisposable
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

        /// <summary>Writes the batch's rows and their tags in one statement.</summary>
        public async Task WriteAsync(IReadOnlyList<PendingWrite> batch)
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
