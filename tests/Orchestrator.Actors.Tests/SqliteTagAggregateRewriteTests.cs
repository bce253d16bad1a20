using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Microsoft.Data.Sqlite;
using Orchestrator.Actors.Persistence;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// <see cref="SqliteTagAggregateRewrite"/>: the read journal's tag query, as linq2db writes it for SQLite, rewritten to
/// the same rows found through the tag table's key; and the node's read journal reading tags through it.
/// </summary>
public sealed class SqliteTagAggregateRewriteTests
{
    /// <summary>The plugin's query as linq2db writes it for SQLite (captured from a node), less the journal's columns.</summary>
    private const string PluginQuery = """
        SELECT
        	[x_1].[Ordering],
        	(
        		SELECT
        			GROUP_CONCAT(CASE
        				WHEN [t1].[ordering_id] = [x_1].[Ordering] THEN [t1].[tag]
        				ELSE NULL
        			END, ';')
        		FROM
        			[tags] [t1]
        	)
        FROM
        	(
        		SELECT
        			[x].[ordering] as [Ordering]
        		FROM
        			[journal] [x]
        		WHERE
        			[x].[ordering] > @Offset AND [x].[ordering] <= @MaxOffset AND
        			[x].[deleted] = 0
        		ORDER BY
        			[x].[ordering]
        		LIMIT @take
        	) [x_1]
        """;

    [Fact]
    public void The_rewritten_query_finds_each_events_tags_by_key_and_returns_the_same_rows()
    {
        using var dir = new TempDir();
        using var connection = new SqliteConnection($"Data Source={Path.Combine(dir.Path, "tags.db")}");
        connection.Open();
        Execute(connection, """
            CREATE TABLE journal (ordering INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, deleted Bit NOT NULL);
            CREATE TABLE tags (ordering_id INTEGER NOT NULL, tag NVarChar(64) NOT NULL, CONSTRAINT PK_tags PRIMARY KEY (ordering_id, tag));
            """);
        for (var i = 1; i <= 200; i++)
        {
            Execute(connection, $"INSERT INTO journal (ordering, deleted) VALUES ({i}, {(i == 7 ? 1 : 0)})");
            // Two tags, one, or none (every fifth event has none).
            foreach (var tag in i % 5 == 0 ? [] : i % 2 == 0 ? new[] { "tenant:a", "host:h1" } : ["tenant:b"])
            {
                Execute(connection, $"INSERT INTO tags (ordering_id, tag) VALUES ({i}, '{tag}')");
            }
        }

        var rewritten = SqliteTagAggregateRewrite.Rewrite(PluginQuery);

        Assert.DoesNotContain("CASE", rewritten, StringComparison.Ordinal);
        Assert.Equal(Read(connection, PluginQuery), Read(connection, rewritten));
        Assert.Equal(100, Read(connection, rewritten).Count);
        Assert.Contains(Read(connection, rewritten), row => row.Tags is null); // an event without tags still reads NULL
        var plan = string.Join('\n', Read(connection, "EXPLAIN QUERY PLAN " + rewritten, plan: true).Select(r => r.Tags));
        Assert.Contains("SEARCH t1 USING", plan, StringComparison.Ordinal); // by key, where the plugin's query scanned
        Assert.DoesNotContain("SCAN t1", plan, StringComparison.Ordinal);
    }

    [Fact]
    public void A_query_without_the_aggregate_is_left_as_it_is()
    {
        const string sql = "SELECT [r].[ordering] FROM [journal] [r] WHERE [r].[ordering] > @Offset ORDER BY [r].[ordering] LIMIT @take";
        Assert.Equal(sql, SqliteTagAggregateRewrite.Rewrite(sql));
    }

    [Fact]
    public async Task The_nodes_read_journal_reads_events_with_their_tags_through_it()
    {
        using var dir = new TempDir();
        var config = TestConfig.Persistent(dir.Path);
        var query = config.GetConfig("akka.persistence.query.journal.sql");
        var setup = BootstrapSetup.Create().WithConfig(config)
            .And(SqliteTagAggregateRewrite.ReadJournalSetup(query.GetString("provider-name"), query.GetString("connection-string")));
        using var system = ActorSystem.Create("rewrite", setup);
        var writer = system.ActorOf(Props.Create(() => new SqliteJournalTests.Recorder("tagged")));
        var written = new List<Task<object>>();
        for (var i = 0; i < 20; i++)
        {
            written.Add(writer.Ask<object>(new SqliteJournalTests.Recorder.Record($"event-{i}", i % 2 == 0 ? ["even", "all"] : ["all"]), TimeSpan.FromSeconds(10)));
        }

        Assert.All(await Task.WhenAll(written), reply => Assert.IsType<SqliteJournalTests.Recorder.Written>(reply));
        var journal = PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);
        var all = await journal.CurrentAllEvents(Offset.NoOffset())
            .RunAggregate(new List<EventEnvelope>(), (list, e) => { list.Add(e); return list; }, system.Materializer());

        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"event-{i}"), all.Select(e => (string)e.Event));
        Assert.Equal(Enumerable.Range(0, 20).Select(i => i % 2 == 0 ? "all,even" : "all"),
            all.Select(e => string.Join(',', e.Tags.Order(StringComparer.Ordinal))));
        await system.Terminate();
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static List<(long Ordering, string? Tags)> Read(SqliteConnection connection, string sql, bool plan = false)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("@Offset", 0);
        command.Parameters.AddWithValue("@MaxOffset", 150);
        command.Parameters.AddWithValue("@take", 100);
        using var reader = command.ExecuteReader();
        var rows = new List<(long, string?)>();
        while (reader.Read())
        {
            // A query plan's rows: (id, parent, notused, detail); the tags, sorted, so that their order does not matter.
            rows.Add(plan
                ? (reader.GetInt64(0), reader.GetString(3))
                : (reader.GetInt64(0), reader.IsDBNull(1) ? null : string.Join(';', reader.GetString(1).Split(';').Order(StringComparer.Ordinal))));
        }

        return rows;
    }
}
