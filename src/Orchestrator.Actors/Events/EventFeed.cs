using Akka;
using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Orchestrator.Domain;

namespace Orchestrator.Actors.Events;

/// <summary>The tags persistent actors put on their events, so that a read model never scans the whole journal.</summary>
public static class EventTags
{
    private const string TenantPrefix = "tenant:";

    public static string Tenant(TenantId tenant) => TenantPrefix + tenant.Value;

    public static string Host(HostId host) => "host:" + host.Value;

    /// <summary>The tenant an event belongs to, by its tag; null for events of no tenant (hosts).</summary>
    public static TenantId? TenantOf(IEnumerable<string>? tags)
    {
        foreach (var tag in tags ?? [])
        {
            if (tag.StartsWith(TenantPrefix, StringComparison.Ordinal))
            {
                return new TenantId(tag[TenantPrefix.Length..]);
            }
        }

        return null;
    }
}

/// <summary>
/// The journal's events in the journal's global order (its ordering column, the <see cref="Sequence"/> offset of each
/// envelope), from every persistent actor: one tenant's by tag, or all. Reading after offset N gives each later event
/// once and none twice: the SQL read journal releases an offset only once every lower one is written or known to be a
/// hole, so a stream resumed from its last offset has no gaps.
/// </summary>
public sealed class EventFeed : IExtension
{
    private readonly SqlReadJournal _journal;

    public EventFeed(ExtendedActorSystem system)
    {
        // Waits (up to 5 s) for the write journal to start: get it off a request thread the first time.
        _journal = PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(SqlReadJournal.Identifier);
        Materializer = system.Materializer(namePrefix: "event-feed");
    }

    /// <summary>What runs the feed's streams.</summary>
    public IMaterializer Materializer { get; }

    public static EventFeed Get(ActorSystem system) => system.WithExtension<EventFeed, EventFeedProvider>();

    /// <param name="tenant">whose events (those tagged with the tenant); null: every event.</param>
    /// <param name="from">
    /// <see cref="Offset.Sequence"/>: strictly after that offset; <see cref="Offset.FromEnd"/>: the last n;
    /// <see cref="Offset.NoOffset"/>: from the first.
    /// </param>
    /// <param name="follow">keep going with the events written later; false: end with those written by now.</param>
    public Source<EventEnvelope, NotUsed> Read(TenantId? tenant, Offset from, bool follow) => (tenant, follow) switch
    {
        (null, true) => _journal.AllEvents(from),
        (null, false) => _journal.CurrentAllEvents(from),
        ({ } t, true) => _journal.EventsByTag(EventTags.Tenant(t), from),
        ({ } t, false) => _journal.CurrentEventsByTag(EventTags.Tenant(t), from),
    };
}

public sealed class EventFeedProvider : ExtensionIdProvider<EventFeed>
{
    public override EventFeed CreateExtension(ExtendedActorSystem system) => new(system);
}
