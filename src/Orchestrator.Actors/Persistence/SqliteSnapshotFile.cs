using Microsoft.Data.Sqlite;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Where the SQLite store keeps its snapshots: a file of their own beside the journal's (orchestrator.db →
/// orchestrator.snapshots.db), in a table of the plugin's shape.
/// </summary>
/// <remarks>
/// Why a file of their own: SQLite has one write lock per file, and a snapshot's row is written under it. In the journal's
/// file every placement waited for that write: 35 ms behind a 3.8 MB snapshot at 10,000 requests/s, 418 ms behind a whole
/// snapshot of 57 MB (`scale --hosts 10000 --vms 1000000`), against a few milliseconds for a batch of events. The
/// snapshots' writes then also filled the journal's WAL, which its checkpoints copy. A snapshot and the journal were never
/// written in one transaction, so nothing is lost by the split: a snapshot still holds only events already journaled.
/// A journal file from before the split keeps its snapshots in its own table; they are read until the first snapshot here
/// (a scheduler's first one after it starts is whole), and deleted with the snapshots before it.
/// </remarks>
public static class SqliteSnapshotFile
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS snapshot (
            persistence_id TEXT NOT NULL,
            sequence_number INTEGER NOT NULL,
            created INTEGER NOT NULL,
            snapshot BLOB NOT NULL,
            manifest TEXT NOT NULL,
            serializer_id INTEGER NOT NULL,
            PRIMARY KEY (persistence_id, sequence_number)
        )
        """;

    /// <summary>The snapshot file beside <paramref name="journalFile"/>: its name with ".snapshots" before the extension.</summary>
    public static string PathFor(string journalFile)
    {
        var directory = Path.GetDirectoryName(journalFile) ?? "";
        return Path.Combine(directory, Path.GetFileNameWithoutExtension(journalFile) + ".snapshots" + Path.GetExtension(journalFile));
    }

    /// <summary>The connection string of the snapshot file beside the journal's <paramref name="journalConnectionString"/>.</summary>
    public static string ConnectionString(string journalConnectionString)
    {
        var builder = new SqliteConnectionStringBuilder(journalConnectionString);
        builder.DataSource = PathFor(builder.DataSource);
        return builder.ToString();
    }

    /// <summary>
    /// Readies the file: 0600 and in WAL mode as the journal's (<see cref="SqliteStoreFile.OwnerOnlyWithWriteAheadLog"/>;
    /// snapshots hold tenants' data too), with the table. Safe to call again.
    /// </summary>
    public static void Prepare(string journalConnectionString) =>
        SqliteStoreFile.OwnerOnlyWithWriteAheadLog(ConnectionString(journalConnectionString), Schema);
}
