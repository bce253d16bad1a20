using System.Data;
using System.Data.Common;
using Akka.Actor;
using Akka.Persistence;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Reads a persistence id's events for recovery straight from Akka.Persistence.Sql's journal table: one query, streamed
/// through a data reader, each row deserialized and handed on in order. SQLite and PostgreSQL side by side, on the same
/// tables their writers (<see cref="SqliteJournalWriter"/>, <see cref="PostgresJournalWriter"/>) fill.
/// </summary>
/// <remarks>
/// Why: the plugin's replay (linq2db, Akka.Streams, a row object and a Try per event, in pages of 1,000) read about
/// 15 µs per event, several times what the store and the deserializer need. What comes back is the plugin's own:
/// the same rows (not deleted, sequence numbers from..to, in their order, at most max) and the same
/// <see cref="Persistent"/> for each (the payload without its tags: they are the read side's; the row's serializer
/// manifest as its manifest; no sender; the row's writer and timestamp). A row that will not deserialize fails the whole
/// replay, naming the row: recovery must never go on without an event.
/// </remarks>
public abstract class JournalReplay
{
    private readonly Akka.Serialization.Serialization _serialization;
    private readonly string? _defaultSerializer;

    protected JournalReplay(Akka.Serialization.Serialization serialization, string? defaultSerializer)
    {
        _serialization = serialization;
        _defaultSerializer = defaultSerializer;
    }

    /// <summary>The replay for the journal's store, or null where the plugin's own path stays (another store).</summary>
    /// <param name="defaultSerializer">the journal's <c>serializer</c> setting: it reads rows written with no serializer id.</param>
    public static JournalReplay? For(string provider, string connectionString, Akka.Serialization.Serialization serialization, string? defaultSerializer) =>
        provider.StartsWith("SQLite", StringComparison.OrdinalIgnoreCase) ? new SqliteJournalReplay(connectionString, serialization, defaultSerializer)
        : provider.StartsWith("PostgreSQL", StringComparison.OrdinalIgnoreCase) ? new PostgresJournalReplay(connectionString, serialization, defaultSerializer)
        : null;

    /// <summary>
    /// Hands the persistence id's events from <paramref name="fromSequenceNr"/> to <paramref name="toSequenceNr"/>
    /// (at most <paramref name="max"/>) to <paramref name="recoveryCallback"/>, one at a time and in order, on the reading
    /// thread. Fails with the cause, after the events before it, if the store or a row fails.
    /// </summary>
    public abstract Task ReplayAsync(
        string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<IPersistentRepresentation> recoveryCallback,
        CancellationToken cancellationToken);

    /// <summary>
    /// The persistence id's highest sequence number above <paramref name="fromSequenceNr"/> (0: any), deleted rows included
    /// (the plugin keeps the last deleted one for this), or 0 if it has none.
    /// </summary>
    public abstract Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken cancellationToken);

    // The plugin's queries, in its native (not delete-compatibility) mode; the statements name the columns its schemas have.
    protected const string ReplayColumns = "sequence_number, created, message, manifest, identifier, writer_uuid";

    protected const string HighestSequenceNr = "SELECT MAX(sequence_number) FROM journal WHERE persistence_id = @persistenceId";

    protected const string HighestSequenceNrAbove = HighestSequenceNr + " AND sequence_number > @fromSequenceNr";

    /// <summary>Builds the event of one row (columns as <see cref="ReplayColumns"/>), as the plugin's replay builds it.</summary>
    /// <remarks>The columns are read in their order: PostgreSQL's reader streams them (sequential access).</remarks>
    protected IPersistentRepresentation ToPersistent(string persistenceId, DbDataReader row)
    {
        var sequenceNr = row.GetInt64(0);
        var created = row.GetInt64(1);
        var message = row.IsDBNull(2) ? [] : row.GetFieldValue<byte[]>(2);
        var manifest = row.IsDBNull(3) ? "" : row.GetString(3);
        int? serializerId = row.IsDBNull(4) ? null : row.GetInt32(4);
        var writerUuid = row.IsDBNull(5) ? null : row.GetString(5);
        object payload;
        try
        {
            payload = serializerId is { } id
                ? _serialization.Deserialize(message, id, manifest)
                : DeserializeByType(message, manifest);
        }
        catch (Exception ex)
        {
            throw new JournalReplayException(
                $"journal row '{persistenceId}' sequence number {sequenceNr} (serializer {serializerId?.ToString() ?? "none"}, " +
                $"manifest '{manifest}') will not deserialize: {ex.Message}; recovery stops here rather than go on without it", ex);
        }

        return new Persistent(payload, sequenceNr, persistenceId, manifest, isDeleted: false, ActorRefs.NoSender, writerUuid, created);
    }

    /// <summary>A row with no serializer id (older plugins wrote some): its manifest names the type, as the plugin reads it.</summary>
    private object DeserializeByType(byte[] message, string manifest)
    {
        var type = Type.GetType(manifest, throwOnError: true)!;
        var serializer = _serialization.FindSerializerForType(type, _defaultSerializer);
        return Akka.Serialization.Serialization.WithTransport(_serialization.System, (serializer, message, type), s => s.serializer.FromBinary(s.message, s.type));
    }
}

/// <summary>A journal row that recovery cannot read: the persistent actor's recovery fails with it.</summary>
public sealed class JournalReplayException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// The SQLite replay: a read-only connection of its own, on a thread of its own (Microsoft.Data.Sqlite reads
/// synchronously). Under WAL it reads a consistent snapshot beside the writer and never takes the write lock.
/// </summary>
public sealed class SqliteJournalReplay : JournalReplay
{
    private readonly string _connectionString;

    public SqliteJournalReplay(string connectionString, Akka.Serialization.Serialization serialization, string? defaultSerializer)
        : base(serialization, defaultSerializer)
    {
        // Busy handling: a statement's first step (where a reader can meet a checkpoint or WAL recovery holding the file)
        // is retried by Microsoft.Data.Sqlite for the connection's default timeout, as the plugin's reads were.
        _connectionString = new SqliteConnectionStringBuilder(connectionString) { Mode = SqliteOpenMode.ReadOnly, Cache = SqliteCacheMode.Private }
            .ToString();
    }

    public override Task ReplayAsync(
        string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<IPersistentRepresentation> recoveryCallback,
        CancellationToken cancellationToken) =>
        // A long replay holds its thread for its whole read: not one of the pool's.
        Task.Factory.StartNew(
            () => Replay(persistenceId, fromSequenceNr, toSequenceNr, max, recoveryCallback, cancellationToken),
            cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    public override Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken cancellationToken) =>
        // Off the journal's thread, which calls this: its writes go on meanwhile.
        Task.Run(() => HighestSequenceNrOf(persistenceId, fromSequenceNr), cancellationToken);

    private long HighestSequenceNrOf(string persistenceId, long fromSequenceNr)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = fromSequenceNr == 0 ? HighestSequenceNr : HighestSequenceNrAbove;
        command.Parameters.AddWithValue("@persistenceId", persistenceId);
        command.Parameters.AddWithValue("@fromSequenceNr", fromSequenceNr);
        return command.ExecuteScalar() is long highest ? highest : 0L;
    }

    private void Replay(
        string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<IPersistentRepresentation> recoveryCallback,
        CancellationToken cancellationToken)
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT {ReplayColumns} FROM journal
            WHERE persistence_id = @persistenceId AND sequence_number >= @from AND sequence_number <= @to AND deleted = 0
            ORDER BY sequence_number LIMIT @max
            """;
        command.Parameters.AddWithValue("@persistenceId", persistenceId);
        command.Parameters.AddWithValue("@from", fromSequenceNr);
        command.Parameters.AddWithValue("@to", toSequenceNr);
        command.Parameters.AddWithValue("@max", max);
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            cancellationToken.ThrowIfCancellationRequested();
            recoveryCallback(ToPersistent(persistenceId, reader));
        }
    }

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            connection.Open();
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }
}

/// <summary>The PostgreSQL replay: one statement on a connection from the pool, its rows streamed as they arrive.</summary>
public sealed class PostgresJournalReplay : JournalReplay
{
    private readonly string _connectionString;

    public PostgresJournalReplay(string connectionString, Akka.Serialization.Serialization serialization, string? defaultSerializer)
        : base(serialization, defaultSerializer)
    {
        _connectionString = connectionString;
    }

    public override async Task ReplayAsync(
        string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<IPersistentRepresentation> recoveryCallback,
        CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"""
            SELECT {ReplayColumns} FROM journal
            WHERE persistence_id = @persistenceId AND sequence_number >= @from AND sequence_number <= @to AND deleted = false
            ORDER BY sequence_number LIMIT @max
            """, connection);
        command.Parameters.AddWithValue("persistenceId", persistenceId);
        command.Parameters.AddWithValue("from", fromSequenceNr);
        command.Parameters.AddWithValue("to", toSequenceNr);
        command.Parameters.AddWithValue("max", max);
        // Sequential: a row's columns are read in order straight off the wire, none buffered whole.
        await using var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            recoveryCallback(ToPersistent(persistenceId, reader));
        }
    }

    public override async Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(fromSequenceNr == 0 ? HighestSequenceNr : HighestSequenceNrAbove, connection);
        command.Parameters.AddWithValue("persistenceId", persistenceId);
        command.Parameters.AddWithValue("fromSequenceNr", fromSequenceNr);
        return await command.ExecuteScalarAsync(cancellationToken) is long highest ? highest : 0L;
    }
}
