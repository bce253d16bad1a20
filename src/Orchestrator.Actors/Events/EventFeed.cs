using System.Threading.Channels;
using Akka;
using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Orchestrator.Domain;

namespace Orchestrator.Actors.Events;

/// <summary>
/// The journal's events in the journal's global order (its ordering column, the <see cref="Sequence"/> offset of each
/// envelope), from every persistent actor: one tenant's by tag, or all. Reading after offset N gives each later event
/// once and none twice: the SQL read journal releases an offset only once every lower one is written or known to be a
/// hole, so a stream resumed from its last offset has no gaps.
/// </summary>
public sealed class EventFeed : IExtension
{
    /// <summary>Events a follower may fall behind by before it is cut off (it resumes from its last offset).</summary>
    public const int FollowerBuffer = 10_000;

    private readonly SqlReadJournal _journal;
    private readonly object _gate = new();
    private readonly HashSet<Follower> _followers = [];
    private TaskCompletionSource? _live;
    private long _position;

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
    /// <param name="follow">
    /// keep going with the events written later (a query of its own that polls the journal: for many followers,
    /// <see cref="FollowAsync"/>); false: end with those written by now.
    /// </param>
    public Source<EventEnvelope, NotUsed> Read(TenantId? tenant, Offset from, bool follow) => (tenant, follow) switch
    {
        (null, true) => _journal.AllEvents(from),
        (null, false) => _journal.CurrentAllEvents(from),
        ({ } t, true) => _journal.EventsByTag(EventTags.Tenant(t), from),
        ({ } t, false) => _journal.CurrentEventsByTag(EventTags.Tenant(t), from),
    };

    /// <summary>
    /// The events written from now on, from the node's one live query of the journal, shared by every follower: open
    /// streams cost a channel each, not a query each. The follower has every event after <see cref="Follower.After"/>
    /// (read what came before with <see cref="Read"/>, up to it); one that falls <see cref="FollowerBuffer"/> events
    /// behind has its reader fail with <see cref="FollowerOverflowException"/>.
    /// </summary>
    public async Task<Follower> FollowAsync(CancellationToken ct)
    {
        while (true)
        {
            TaskCompletionSource live;
            lock (_gate)
            {
                if (_live is null)
                {
                    _live = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    _ = RunLiveAsync(_live);
                }

                live = _live;
            }

            await live.Task.WaitAsync(ct);
            lock (_gate)
            {
                if (_live == live)
                {
                    var follower = new Follower(this, _position);
                    _followers.Add(follower);
                    return follower;
                }
            }
        }
    }

    /// <summary>One query from the journal's newest event on, fanned out to the followers; they fail when it ends.</summary>
    private async Task RunLiveAsync(TaskCompletionSource live)
    {
        Exception? failure = null;
        try
        {
            var newest = await _journal.CurrentAllEvents(Offset.FromEnd(1)).RunWith(Sink.LastOrDefault<EventEnvelope>(), Materializer);
            lock (_gate)
            {
                _position = newest is null ? 0 : ((Sequence)newest.Offset).Value;
            }

            live.TrySetResult();
            await _journal.AllEvents(Offset.Sequence(_position)).RunForeach(Publish, Materializer);
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        lock (_gate)
        {
            var ended = failure ?? new InvalidOperationException("the journal's live query ended");
            live.TrySetException(ended);
            _live = null;
            foreach (var follower in _followers)
            {
                follower.Writer.TryComplete(ended);
            }

            _followers.Clear();
        }
    }

    private void Publish(EventEnvelope envelope)
    {
        lock (_gate)
        {
            _position = ((Sequence)envelope.Offset).Value;
            _followers.RemoveWhere(follower =>
                !follower.Writer.TryWrite(envelope) && follower.Writer.TryComplete(new FollowerOverflowException(FollowerBuffer)));
        }
    }

    private void Unfollow(Follower follower)
    {
        lock (_gate)
        {
            _followers.Remove(follower);
        }
    }

    /// <summary>One open stream's share of the live feed: dispose of it when the stream ends.</summary>
    public sealed class Follower : IDisposable
    {
        private readonly EventFeed _feed;
        private readonly Channel<EventEnvelope> _channel = Channel.CreateBounded<EventEnvelope>(
            new BoundedChannelOptions(FollowerBuffer) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait });

        internal Follower(EventFeed feed, long after)
        {
            _feed = feed;
            After = after;
        }

        /// <summary>The offset after which this follower gets every event; those up to it are the journal's to read.</summary>
        public long After { get; }

        public ChannelReader<EventEnvelope> Reader => _channel.Reader;

        internal ChannelWriter<EventEnvelope> Writer => _channel.Writer;

        public void Dispose()
        {
            _feed.Unfollow(this);
            _channel.Writer.TryComplete();
        }
    }
}

/// <summary>A follower fell too far behind the live feed; it resumes from its last offset.</summary>
public sealed class FollowerOverflowException(int buffer)
    : Exception($"the stream fell more than {buffer} events behind; resume from the last event id");

public sealed class EventFeedProvider : ExtensionIdProvider<EventFeed>
{
    public override EventFeed CreateExtension(ExtendedActorSystem system) => new(system);
}
