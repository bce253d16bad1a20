using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Serialization;
using Microsoft.Data.Sqlite;
using Orchestrator.Actors.Settings;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// The SQLite snapshot store's own writes and deletes (<see cref="Persistence.SqliteSnapshotStore"/>), on a real file:
/// the plugin's rows, the criteria's bounds, and SQLite's write lock left free while a snapshot is serialized.
/// </summary>
public sealed class SqliteSnapshotStoreTests() : PersistentTestKit(ConfigurationFactory.ParseString($$"""
    akka.actor.serializers.held = "{{typeof(HeldSerializer).AssemblyQualifiedName}}"
    akka.actor.serialization-bindings { "{{typeof(Held).AssemblyQualifiedName}}" = held }
    """))
{
    private IActorRef Store => Akka.Persistence.Persistence.Instance.Apply(Sys).SnapshotStoreFor(null);

    [Fact]
    public void The_journal_can_write_while_a_snapshot_is_being_serialized()
    {
        var metadata = new SnapshotMetadata("held", 7, DateTime.UtcNow);
        Store.Tell(new SaveSnapshot(metadata, new Held("state at 7", Blocks: true)));
        Assert.True(HeldSerializer.Serializing.Wait(TimeSpan.FromSeconds(30)), "the store never serialized the snapshot");
        try
        {
            // What the journal does between two batches: take the write lock and commit. Waiting at most a second, so
            // that a save holding the lock while it serializes fails this rather than the serializer's wait.
            using var connection = Open(busyTimeoutSeconds: 1);
            using var write = connection.CreateCommand();
            write.CommandText = "BEGIN IMMEDIATE; CREATE TABLE written_meanwhile (n INTEGER); COMMIT;";
            write.ExecuteNonQuery();
        }
        finally
        {
            HeldSerializer.MayFinish.Release();
        }

        ExpectMsg<SaveSnapshotSuccess>(s => s.Metadata.SequenceNr == 7);
        Assert.Equal("state at 7", Assert.IsType<Held>(Load("held", SnapshotSelectionCriteria.Latest)!.Snapshot).Value);
    }

    [Fact]
    public void A_snapshot_it_wrote_reads_back_through_the_plugin_s_own_query_too()
    {
        var taken = new DateTime(2026, 12, 6, 12, 0, 0, DateTimeKind.Utc);
        Save(new SnapshotMetadata("kept", 3, taken), "state at 3");

        // A timestamp bound makes the store hand the read to the plugin: the row must be the plugin's own shape.
        var read = Load("kept", new SnapshotSelectionCriteria(long.MaxValue, taken.AddMinutes(1)));
        Assert.NotNull(read);
        Assert.Equal(("kept", 3L, taken.Ticks), (read.Metadata.PersistenceId, read.Metadata.SequenceNr, read.Metadata.Timestamp.Ticks));
        Assert.Equal("state at 3", read.Snapshot);

        // A second save at the same sequence number replaces the first, as the plugin's does.
        Save(new SnapshotMetadata("kept", 3, taken), "state at 3, again");
        Assert.Equal("state at 3, again", Load("kept", SnapshotSelectionCriteria.Latest)!.Snapshot);
        Assert.Equal([3L], Stored("kept"));
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

    /// <summary>The sequence numbers of <paramref name="persistenceId"/>'s stored snapshots, in order.</summary>
    private List<long> Stored(string persistenceId)
    {
        using var connection = Open(busyTimeoutSeconds: 30);
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

    private SqliteConnection Open(int busyTimeoutSeconds)
    {
        var connectionString = new SqliteConnectionStringBuilder(OrchestratorConfig.StoreConnectionString(OrchestratorConfig.Load([]), DataDirectory))
        {
            DefaultTimeout = busyTimeoutSeconds,
        };
        var connection = new SqliteConnection(connectionString.ToString());
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
