using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Serialization;
using Microsoft.Data.Sqlite;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Settings;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// The SQLite snapshot store (<see cref="SqliteSnapshotStore"/>) on real files: snapshots in a file of their own beside the
/// journal's, the criteria's bounds, the journal's older snapshots still read, and no write lock held while a snapshot is
/// serialized.
/// </summary>
public sealed class SqliteSnapshotStoreTests() : PersistentTestKit(ConfigurationFactory.ParseString($$"""
    akka.actor.serializers.held = "{{typeof(HeldSerializer).AssemblyQualifiedName}}"
    akka.actor.serialization-bindings { "{{typeof(Held).AssemblyQualifiedName}}" = held }
    """))
{
    private IActorRef Store => Akka.Persistence.Persistence.Instance.Apply(Sys).SnapshotStoreFor(null);

    [Fact]
    public void Both_files_take_writes_while_a_snapshot_is_being_serialized()
    {
        var metadata = new SnapshotMetadata("held", 7, DateTime.UtcNow);
        Store.Tell(new SaveSnapshot(metadata, new Held("state at 7", Blocks: true)));
        Assert.True(HeldSerializer.Serializing.Wait(TimeSpan.FromSeconds(30)), "the store never serialized the snapshot");
        try
        {
            // What the journal does between two batches, and another snapshot's save: take the file's write lock and commit.
            // Waiting at most a second, so that a save holding a lock while it serializes fails this rather than the
            // serializer's wait.
            foreach (var connectionString in new[] { JournalFile, SnapshotFile })
            {
                using var connection = Open(connectionString, busyTimeoutSeconds: 1);
                using var write = connection.CreateCommand();
                write.CommandText = "BEGIN IMMEDIATE; CREATE TABLE written_meanwhile (n INTEGER); COMMIT;";
                write.ExecuteNonQuery();
            }
        }
        finally
        {
            HeldSerializer.MayFinish.Release();
        }

        ExpectMsg<SaveSnapshotSuccess>(s => s.Metadata.SequenceNr == 7);
        Assert.Equal("state at 7", Assert.IsType<Held>(Load("held", SnapshotSelectionCriteria.Latest)!.Snapshot).Value);
    }

    [Fact]
    public void Snapshots_go_to_their_own_file_and_read_back_within_the_criteria_s_bounds()
    {
        var taken = new DateTime(2026, 12, 6, 12, 0, 0, DateTimeKind.Utc);
        Save(new SnapshotMetadata("kept", 3, taken), "state at 3");
        Save(new SnapshotMetadata("kept", 5, taken.AddHours(1)), "state at 5");

        Assert.Equal([3L, 5], Stored("kept"));
        Assert.DoesNotContain("snapshot", Tables(JournalFile)); // none in the journal's file, which has no table for them

        var read = Load("kept", new SnapshotSelectionCriteria(long.MaxValue, taken.AddMinutes(1)));
        Assert.NotNull(read);
        Assert.Equal(("kept", 3L, taken.Ticks), (read.Metadata.PersistenceId, read.Metadata.SequenceNr, read.Metadata.Timestamp.Ticks));
        Assert.Equal("state at 3", read.Snapshot);
        Assert.Equal("state at 5", Load("kept", new SnapshotSelectionCriteria(5))!.Snapshot);
        Assert.Null(Load("kept", new SnapshotSelectionCriteria(2)));
        Assert.Null(Load("kept", new SnapshotSelectionCriteria(long.MaxValue, taken.AddMinutes(-1))));
        Assert.Null(Load("kept", new SnapshotSelectionCriteria(long.MaxValue, DateTime.MaxValue, 6, null)));

        // A second save at the same sequence number replaces the first, as the plugin's does.
        Save(new SnapshotMetadata("kept", 5, taken.AddHours(1)), "state at 5, again");
        Assert.Equal("state at 5, again", Load("kept", SnapshotSelectionCriteria.Latest)!.Snapshot);
        Assert.Equal([3L, 5], Stored("kept"));
    }

    [Fact]
    public void A_snapshot_the_journal_s_file_holds_from_before_is_read_until_one_is_saved_and_deleted_with_those_before_it()
    {
        // A file of today's has no snapshot table in the journal's file: the store reads none there.
        Assert.Null(Load("older", SnapshotSelectionCriteria.Latest));
        Assert.DoesNotContain("snapshot", Tables(JournalFile));

        var serializer = Sys.Serialization.FindSerializerFor("state at 4");
        using (var connection = Open(JournalFile, busyTimeoutSeconds: 30))
        {
            CreateTableOfBefore(connection);
            using var insert = connection.CreateCommand();
            insert.CommandText = """
                INSERT INTO snapshot (persistence_id, sequence_number, created, snapshot, manifest, serializer_id)
                VALUES ('older', 4, $created, $payload, $manifest, $serializer)
                """;
            insert.Parameters.AddWithValue("$created", DateTime.UtcNow.Ticks);
            insert.Parameters.AddWithValue("$payload", serializer.ToBinary("state at 4"));
            insert.Parameters.AddWithValue("$manifest", Akka.Serialization.Serialization.ManifestFor(serializer, "state at 4"));
            insert.Parameters.AddWithValue("$serializer", serializer.Identifier);
            insert.ExecuteNonQuery();
        }

        Assert.Equal("state at 4", Load("older", SnapshotSelectionCriteria.Latest)!.Snapshot);

        Save(new SnapshotMetadata("older", 9, DateTime.UtcNow), "state at 9");
        Assert.Equal("state at 9", Load("older", SnapshotSelectionCriteria.Latest)!.Snapshot);

        Delete("older", new SnapshotSelectionCriteria(8)); // as the scheduler does after a whole snapshot
        Assert.Empty(Stored("older", JournalFile));
        Assert.Equal([9L], Stored("older"));
    }

    [Fact]
    public void Deleting_removes_exactly_the_snapshots_the_criteria_select()
    {
        var start = new DateTime(2026, 12, 6, 0, 0, 0, DateTimeKind.Utc);
        for (var n = 1; n <= 6; n++)
        {
            Save(new SnapshotMetadata("a", n, start.AddHours(n)), $"a{n}");
        }

        Save(new SnapshotMetadata("b", 2, start.AddHours(2)), "b2");

        Delete("a", new SnapshotSelectionCriteria(maxSequenceNr: 3, maxTimeStamp: DateTime.MaxValue, minSequenceNr: 2, minTimestamp: null));
        Assert.Equal([1L, 4, 5, 6], Stored("a"));

        Delete("a", new SnapshotSelectionCriteria(long.MaxValue, start.AddHours(5), 0, start.AddHours(4)));
        Assert.Equal([1L, 6], Stored("a"));

        Delete("a", new SnapshotSelectionCriteria(5)); // the scheduler's own: everything up to a sequence number
        Assert.Equal([6L], Stored("a"));
        Assert.Equal([2L], Stored("b")); // another persistence id's, untouched
    }

    private void Save(SnapshotMetadata metadata, object snapshot)
    {
        Store.Tell(new SaveSnapshot(metadata, snapshot));
        ExpectMsg<SaveSnapshotSuccess>();
    }

    private void Delete(string persistenceId, SnapshotSelectionCriteria criteria)
    {
        Store.Tell(new DeleteSnapshots(persistenceId, criteria));
        ExpectMsg<DeleteSnapshotsSuccess>();
    }

    private SelectedSnapshot? Load(string persistenceId, SnapshotSelectionCriteria criteria)
    {
        Store.Tell(new LoadSnapshot(persistenceId, criteria, long.MaxValue));
        return ExpectMsg<LoadSnapshotResult>().Snapshot;
    }

    private string JournalFile => OrchestratorConfig.StoreConnectionString(OrchestratorConfig.Load([]), DataDirectory);

    private string SnapshotFile => SqliteSnapshotFile.ConnectionString(JournalFile);

    /// <summary>The sequence numbers of <paramref name="persistenceId"/>'s stored snapshots, in order, in the snapshots' file or another.</summary>
    private List<long> Stored(string persistenceId, string? file = null)
    {
        using var connection = Open(file ?? SnapshotFile, busyTimeoutSeconds: 30);
        using var select = connection.CreateCommand();
        select.CommandText = "SELECT sequence_number FROM snapshot WHERE persistence_id = $id ORDER BY sequence_number";
        select.Parameters.AddWithValue("$id", persistenceId);
        using var rows = select.ExecuteReader();
        var stored = new List<long>();
        while (rows.Read())
        {
            stored.Add(rows.GetInt64(0));
        }

        return stored;
    }

    /// <summary>The snapshot table in the journal's file, as the plugin created it there before snapshots had a file of their own.</summary>
    internal static void CreateTableOfBefore(SqliteConnection journal)
    {
        using var create = journal.CreateCommand();
        create.CommandText = """
            CREATE TABLE [snapshot]
            (
                [persistence_id]  NVarChar(255) NOT NULL,
                [sequence_number] INTEGER       NOT NULL,
                [created]         INTEGER       NOT NULL,
                [snapshot]        VarBinary         NULL,
                [manifest]        NVarChar(500)     NULL,
                [serializer_id]   INTEGER           NULL,

                CONSTRAINT [PK_snapshot] PRIMARY KEY ([persistence_id], [sequence_number])
            );
            CREATE INDEX snapshot_sequence_number_idx ON snapshot (sequence_number);
            CREATE INDEX snapshot_created_idx ON snapshot (created);
            """;
        create.ExecuteNonQuery();
    }

    private static List<string> Tables(string connectionString)
    {
        using var connection = Open(connectionString, busyTimeoutSeconds: 30);
        using var select = connection.CreateCommand();
        select.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table'";
        using var rows = select.ExecuteReader();
        var tables = new List<string>();
        while (rows.Read())
        {
            tables.Add(rows.GetString(0));
        }

        return tables;
    }

    private static SqliteConnection Open(string connectionString, int busyTimeoutSeconds)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder(connectionString) { DefaultTimeout = busyTimeoutSeconds }.ToString());
        connection.Open();
        return connection;
    }

    /// <summary>A snapshot whose serializing can be held up, to see what the store holds meanwhile.</summary>
    public sealed record Held(string Value, bool Blocks = false);

    public sealed class HeldSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
    {
        /// <summary>Released when a blocking snapshot starts serializing; it then waits for <see cref="MayFinish"/>.</summary>
        public static readonly SemaphoreSlim Serializing = new(0);

        public static readonly SemaphoreSlim MayFinish = new(0);

        public override int Identifier => 4_711;

        public override string Manifest(object o) => "held";

        public override byte[] ToBinary(object obj)
        {
            var held = (Held)obj;
            if (held.Blocks)
            {
                Serializing.Release();
                MayFinish.Wait(TimeSpan.FromSeconds(60));
            }

            return System.Text.Encoding.UTF8.GetBytes(held.Value);
        }

        public override object FromBinary(byte[] bytes, string manifest) => new Held(System.Text.Encoding.UTF8.GetString(bytes));
    }
}
