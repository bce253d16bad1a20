using System.Collections.Concurrent;
using System.Data.Common;
using System.Text.RegularExpressions;
using Akka.Persistence.Sql.Config;
using LinqToDB;
using LinqToDB.Interceptors;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// Makes the SQL read journal's per-row tag lookup on SQLite use the tag table's key instead of scanning the table.
/// </summary>
/// <remarks>
/// In tag-table mode the plugin reads each event's tags with a string aggregate over the tag table filtered by the
/// event's ordering; linq2db writes that for SQLite as <c>(SELECT GROUP_CONCAT(CASE WHEN t.ordering_id = x.Ordering
/// THEN t.tag ELSE NULL END, ';') FROM tags t)</c>, the filter moved into the aggregate: every event read scans every
/// tag row. The event feeds (webhook and rule projections, event streams) read every event, so reading N events cost
/// N times the journal's size: at 3,000 simulated VMs the projections were still catching up a minute after the last
/// create, which was most of the node's "idle" CPU, and each slow read held the store's lock the journal writes wait
/// for. Rewritten to the same aggregate with the filter as a WHERE (the tag table's primary key starts with
/// ordering_id), each event's tags are one index lookup. Same rows, same NULL for an event without tags.
/// </remarks>
public sealed partial class SqliteTagAggregateRewrite : CommandInterceptor
{
    private readonly ConcurrentDictionary<string, string> _rewritten = new(StringComparer.Ordinal);

    /// <summary>The read journal's options for the node's SQLite store, with this rewrite.</summary>
    public static MultiDataOptionsSetup ReadJournalSetup(string providerName, string connectionString)
    {
        var setup = new MultiDataOptionsSetup();
        setup.AddDataOptions("akka.persistence.query.journal.sql",
            new DataOptions().UseConnectionString(providerName, connectionString).UseInterceptors(new SqliteTagAggregateRewrite()));
        return setup;
    }

    public override DbCommand CommandInitialized(CommandEventData eventData, DbCommand command)
    {
        var sql = command.CommandText;
        if (sql.Contains("GROUP_CONCAT(CASE", StringComparison.Ordinal))
        {
            command.CommandText = _rewritten.GetOrAdd(sql, Rewrite);
        }

        return command;
    }

    /// <summary>The query with each filter-in-aggregate over a table turned into the aggregate of a filtered table.</summary>
    public static string Rewrite(string sql) => FilterInAggregate().Replace(sql,
        m => $"GROUP_CONCAT({m.Groups["value"].Value}, {m.Groups["separator"].Value})\n\t\tFROM\n\t\t\t{m.Groups["table"].Value}\n\t\tWHERE\n\t\t\t{m.Groups["key"].Value} = {m.Groups["row"].Value}");

    [GeneratedRegex(@"GROUP_CONCAT\(CASE\s+WHEN\s+(?<key>\[\w+\]\.\[\w+\])\s*=\s*(?<row>\[\w+\]\.\[\w+\])\s+THEN\s+(?<value>\[\w+\]\.\[\w+\])\s+ELSE\s+NULL\s+END,\s*(?<separator>'[^']*')\)\s+FROM\s+(?<table>\[\w+\]\s+\[\w+\])(?=\s*\))")]
    private static partial Regex FilterInAggregate();
}
