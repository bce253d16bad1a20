using Akka.Configuration;
using Microsoft.Data.Sqlite;
using Orchestrator.Actors.Settings;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Readies the SQLite journal's file before the persistence plugin first opens it: the settings only name the file,
/// whoever starts the actor system (the node, the durable benchmarks) touches it.
/// </summary>
public static class SqliteStoreFile
{
    /// <summary>
    /// With the sqlite provider: the file exists and is 0600 (the journal holds tenants' data), and is in WAL mode; and so
    /// is the snapshots' file beside it (<see cref="SqliteSnapshotFile"/>).
    /// Any other provider: nothing to do.
    /// </summary>
    public static void Prepare(Config config, string dataDir)
    {
        if (config.GetString("orchestrator.persistence.provider", "sqlite") != "sqlite")
        {
            return;
        }

        var connection = OrchestratorConfig.StoreConnectionString(config, dataDir);
        OwnerOnlyWithWriteAheadLog(connection);
        SqliteSnapshotFile.Prepare(connection);
    }

    /// <summary>
    /// The plugin's journal tables in tag-table mode with the default mapping, as its own creation makes them (the same
    /// statements, which its queries and the writers here expect), each only if it is not there.
    /// </summary>
    private const string JournalSchema = """
        CREATE TABLE IF NOT EXISTS [journal]
        (
            [ordering]        INTEGER        NOT NULL PRIMARY KEY AUTOINCREMENT,
            [created]         INTEGER        NOT NULL,
            [deleted]         Bit            NOT NULL,
            [persistence_id]  NVarChar(255)  NOT NULL,
            [sequence_number] INTEGER        NOT NULL,
            [message]         VarBinary      NOT NULL,
            [manifest]        NVarChar(500)      NULL,
            [identifier]      INTEGER            NULL,
            [writer_uuid]     NVarChar(128)      NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS journal_uq ON journal (persistence_id, sequence_number);
        CREATE INDEX IF NOT EXISTS journal_created_idx ON journal (created);
        CREATE INDEX IF NOT EXISTS journal_sequence_number_idx ON journal (sequence_number);
        CREATE TABLE IF NOT EXISTS [tags]
        (
            [ordering_id]    INTEGER       NOT NULL,
            [tag]            NVarChar(64)  NOT NULL,
            [sequence_nr]    INTEGER       NOT NULL,
            [persistence_id] NVarChar(255) NOT NULL,

            CONSTRAINT [PK_tags] PRIMARY KEY ([ordering_id], [tag])
        );
        CREATE INDEX IF NOT EXISTS tags_persistence_id_sequence_nr_idx ON tags (persistence_id, sequence_nr);
        CREATE INDEX IF NOT EXISTS tags_tag_idx ON tags (tag);
        """;

    /// <summary>
    /// The journal's tables in the file <paramref name="connectionString"/> names, where there are none yet
    /// (<see cref="GroupCommitJournal"/> creates them itself on SQLite). Safe to call again, and beside the writer.
    /// </summary>
    internal static void CreateJournalTables(string connectionString)
    {
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = JournalSchema;
        command.ExecuteNonQuery();
    }

    /// <summary>
    /// The file <paramref name="connectionString"/> names exists and is 0600, before SQLite first opens it (SQLite gives
    /// the -wal and -shm files it creates the database's mode; those an older version left wider are narrowed here), and
    /// is in WAL mode: readers (queries, backups) run beside the one writer; the setting sticks to the file. Then
    /// <paramref name="sql"/>, if any, on the same connection.
    /// </summary>
    internal static void OwnerOnlyWithWriteAheadLog(string connectionString, string sql = "")
    {
        var file = new SqliteConnectionStringBuilder(connectionString).DataSource;
        OwnerOnlyFiles.Ensure(file);
        OwnerOnlyFiles.Restrict(file + "-wal");
        OwnerOnlyFiles.Restrict(file + "-shm");
        OwnerOnlyFiles.Restrict(file + "-journal");
        using var connection = new SqliteConnection(connectionString);
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode=WAL;" + sql;
        command.ExecuteNonQuery();
    }
}
