using System.Security.Cryptography;
using System.Text;
using Akka.Actor;
using Microsoft.Data.Sqlite;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Actors.Webhooks;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// Webhooks' signing secrets are sealed (AES-GCM, the node's secrets key) before they reach the journal or a
/// snapshot; a secret journaled in clear by an earlier version still loads. The data files are their owner's only.
/// </summary>
public sealed class SecretsAtRestTests : PersistentTestKit
{
    private const string Secret = "0123456789abcdef-plain-webhook-secret";
    private static readonly SecretBox Box = new(RandomNumberGenerator.GetBytes(32));

    private IActorRef StartScheduler(SecretBox? box) =>
        Sys.ActorOf(SchedulerActor.Props(LedgerRules.Create(["demo"]), 1000, new HostLossTimings(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2)),
            webhooks: WebhookSettings.Default with { Secrets = box }));

    private void Stop(IActorRef actor)
    {
        Watch(actor);
        actor.Tell(PoisonPill.Instance);
        ExpectTerminated(actor);
    }

    private string StoredSecret(IActorRef scheduler)
    {
        scheduler.Tell(new SchedulerQueries.ListWebhooks(TenantId.System));
        return ExpectMsg<SchedulerReplies.WebhookList>().Webhooks.Single().Secret;
    }

    private byte[] JournalBytes()
    {
        using var connection = new SqliteConnection(OrchestratorConfig.StoreConnectionString(OrchestratorConfig.Load([]), DataDirectory));
        connection.Open();
        using var read = connection.CreateCommand();
        read.CommandText = "SELECT message FROM journal";
        using var rows = read.ExecuteReader();
        var all = new MemoryStream();
        while (rows.Read())
        {
            all.Write((byte[])rows[0]);
        }

        return all.ToArray();
    }

    [Fact]
    public void A_webhook_secret_is_journaled_sealed_and_opens_to_what_was_given()
    {
        var scheduler = StartScheduler(Box);
        scheduler.Tell(new LedgerCommands.CreateWebhook("wh1", TenantId.System, "https://example.com/hook", Secret, []));
        ExpectMsg<SchedulerReplies.WebhookCreated>();

        var journal = Encoding.UTF8.GetString(JournalBytes());
        Assert.Contains("https://example.com/hook", journal); // the event is there, its secret sealed
        Assert.DoesNotContain(Secret, journal);
        Assert.Contains(SecretBox.Prefix, journal);
        var stored = StoredSecret(scheduler);
        Assert.True(SecretBox.IsSealed(stored));
        Assert.Equal(Secret, Box.Open(stored));
    }

    [Fact]
    public void A_secret_journaled_in_clear_by_an_earlier_version_still_loads_and_is_sealed_from_then_on()
    {
        var before = StartScheduler(null); // as an earlier version journaled it
        before.Tell(new LedgerCommands.CreateWebhook("wh1", TenantId.System, "https://example.com/hook", Secret, []));
        ExpectMsg<SchedulerReplies.WebhookCreated>();
        Assert.Contains(Secret, Encoding.UTF8.GetString(JournalBytes()));
        Stop(before);

        var after = StartScheduler(Box);
        var stored = StoredSecret(after);
        Assert.True(SecretBox.IsSealed(stored));
        Assert.Equal(Secret, Box.Open(stored));
    }

    [Fact]
    public void A_sealed_secret_opens_only_under_its_key_and_unaltered()
    {
        var sealedSecret = Box.Seal(Secret);
        Assert.NotEqual(sealedSecret, Box.Seal(Secret)); // a fresh nonce each time
        Assert.Equal(Secret, Box.Open(sealedSecret));
        Assert.Equal("clear-from-before", Box.Open("clear-from-before"));
        Assert.ThrowsAny<CryptographicException>(() => new SecretBox(RandomNumberGenerator.GetBytes(32)).Open(sealedSecret));
        var bytes = Convert.FromBase64String(sealedSecret[SecretBox.Prefix.Length..]);
        bytes[^1] ^= 1;
        Assert.ThrowsAny<CryptographicException>(() => Box.Open(SecretBox.Prefix + Convert.ToBase64String(bytes)));
    }

    [Fact]
    public void The_key_file_is_created_owner_only_once_and_the_environment_wins()
    {
        var file = Path.Combine(DataDirectory, SecretBox.DefaultFileName);
        var first = SecretBox.Load(file, fromEnvironment: "");
        Assert.Equal(OwnerOnlyFiles.Mode, File.GetUnixFileMode(file));
        var sealedSecret = first.Seal(Secret);
        Assert.Equal(Secret, SecretBox.Load(file, fromEnvironment: "").Open(sealedSecret)); // the same key read back

        var shared = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var fromEnvironment = SecretBox.Load(Path.Combine(DataDirectory, "unused.key"), shared);
        Assert.Equal(Secret, SecretBox.Load(file, shared).Open(fromEnvironment.Seal(Secret)));
        Assert.False(File.Exists(Path.Combine(DataDirectory, "unused.key")));
        Assert.Throws<Akka.Configuration.ConfigurationException>(() => SecretBox.Load(file, "not-a-key"));
    }

    [Fact]
    public void The_sqlite_journal_its_snapshots_and_their_wal_and_shared_memory_files_are_owner_only()
    {
        var scheduler = StartScheduler(Box);
        scheduler.Tell(new LedgerCommands.CreateWebhook("wh1", TenantId.System, "https://example.com/hook", Secret, []));
        ExpectMsg<SchedulerReplies.WebhookCreated>();

        // The journal's file and the snapshots' beside it, each opened here too, so that the WAL and shared-memory files
        // exist whatever the store's own connections did.
        var journal = OrchestratorConfig.StoreConnectionString(OrchestratorConfig.Load([]), DataDirectory);
        using var journalConnection = new SqliteConnection(journal);
        journalConnection.Open();
        using var snapshotConnection = new SqliteConnection(SqliteSnapshotFile.ConnectionString(journal));
        snapshotConnection.Open();
        var databases = Directory.GetFiles(DataDirectory, "*.db");
        Assert.Equal(2, databases.Length);
        foreach (var file in databases.SelectMany(d => new[] { d, d + "-wal", d + "-shm" }))
        {
            Assert.True(File.Exists(file), file);
            Assert.Equal(OwnerOnlyFiles.Mode, File.GetUnixFileMode(file));
        }
    }
}
