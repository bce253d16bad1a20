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
