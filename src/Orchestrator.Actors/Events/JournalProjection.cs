using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Orchestrator.Actors.Serialization;

namespace Orchestrator.Actors.Events;

/// <summary>
/// A consumer of the journal's ledger events, in the journal's order, that resumes where it left off on whichever node
/// it is started next (the scheduler's children move with it). It saves, as a snapshot of its own persistence id, the
/// offset after which it still owes work plus whatever state it needs; after a move it reads again from that offset.
/// So what it does is at-least-once: an event handled after the last save is handled again, and a subclass makes its
/// effects idempotent by event id (the offset). The first start of all owes the events written since its parent (the
/// scheduler) recovered, before which no event of its was written: it reads the journal from the start for them once.
/// It tells its parent <see cref="ProjectionProtocol.Started"/> once it has saved where it starts; the scheduler writes
/// nothing before, so no event can fall between one incarnation's place and the next one's.
/// </summary>
public abstract class JournalProjection : ReceivePersistentActor, IWithTimers
{
    /// <summary>How often a changed projection saves (and so how much it may redo after a move).</summary>
    public static readonly TimeSpan SaveEvery = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan RetryTail = TimeSpan.FromSeconds(2);

    private readonly string _name;
    private long _handled;
    private DateTimeOffset _since;
    private bool _changed;
    private bool _configured;
    private bool _recovered;
    /// <summary>A snapshot of this projection exists: restored from, or saved by this incarnation.</summary>
    private bool _restored;
    private IKillSwitch? _tail;

    /// <param name="since">on the first start of all, what is owed: the events written from then on.</param>
    protected JournalProjection(string name, DateTimeOffset since)
    {
        _name = name;
        _since = since;
        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is IProjectionSnapshot snapshot)
            {
                _handled = snapshot.After;
                _since = snapshot.Since;
                _restored = true;
                Restore(snapshot);
            }
        });
        Recover<RecoveryCompleted>(_ =>
        {
            _recovered = true;
            Timers.StartPeriodicTimer("save", SaveDue.Instance, SaveEvery);
            if (_restored)
            {
                Context.Parent.Tell(new ProjectionProtocol.Started(_name));
            }
            else
            {
                Save(); // the first start's time, so the next incarnation owes what this one may not get to
            }

            TryStartTail();
        });

        Command<TailStarted>(_ => Sender.Tell(TailAck.Instance));
        Command<Tailed>(tailed =>
        {
            Take(tailed.Event);
            Sender.Tell(TailAck.Instance);
        });
        // An event handed over directly, by a reader that has it already (the tests feed the rule engine so); handled
        // like one from the tail, once, in offset order.
        Command<JournaledEvent>(Take);
        Command<TailEnded>(_ => RestartTail(null));
        Command<TailFailed>(failed => RestartTail(failed.Cause));
        Command<RetryTailDue>(_ => TryStartTail());
        Command<SaveDue>(_ =>
        {
            if (_changed)
            {
                Save();
            }
        });
        // A projection journals nothing, so each save is under sequence number 0 and replaces the one before.
        Command<SaveSnapshotSuccess>(_ =>
        {
            if (!_restored)
            {
                _restored = true;
                Context.Parent.Tell(new ProjectionProtocol.Started(_name));
            }
        });
        Command<SaveSnapshotFailure>(f =>
        {
            Log.Warning(f.Cause, "projection {0}: could not save where it is; trying again", _name);
            _changed = true;
        });
    }

    public override string PersistenceId => "projection-" + _name;

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>What is owed starts with the events written at this time (for the snapshot).</summary>
    protected DateTimeOffset Since => _since;

    /// <summary>One event after the last handled one (each once per incarnation, in journal order).</summary>
    protected abstract void Handle(JournaledEvent journaled);

    /// <summary>What to save: the offset after which work is still owed (at most <paramref name="handled"/>) and state.</summary>
    protected abstract IProjectionSnapshot Snapshot(long handled);

    protected abstract void Restore(IProjectionSnapshot snapshot);

    /// <summary>The subclass has what it needs to handle events (e.g. the webhooks from its parent): reading may begin.</summary>
    protected void Configured()
    {
        _configured = true;
        TryStartTail();
    }

    /// <summary>State changed outside an event (a delivery attempted): save at the next tick.</summary>
    protected void Changed() => _changed = true;

    /// <summary>Save now rather than at the next tick: after an effect that should not be redone after a move.</summary>
    protected void Save()
    {
        SaveSnapshot(Snapshot(_handled));
        _changed = false;
    }

    protected override void PostStop()
    {
        _tail?.Shutdown();
        base.PostStop();
    }

    private void Take(JournaledEvent journaled)
    {
        if (journaled.Offset <= _handled)
        {
            return; // read again after a restart of the tail
        }

        if (journaled.WrittenAt >= _since)
        {
            Handle(journaled);
        }

        _handled = journaled.Offset;
        _changed = true;
    }

    private void TryStartTail()
    {
        if (!_recovered || !_configured || _tail is not null)
        {
            return;
        }

        var feed = EventFeed.Get(Context.System);
        _tail = feed.Read(null, Offset.Sequence(_handled), follow: true)
            .Select(JournaledEvent.From)
            .Where(e => e is not null)
            .Select(e => new Tailed(e!))
            .ViaMaterialized(KillSwitches.Single<Tailed>(), Keep.Right)
            .To(Sink.ActorRefWithAck<Tailed>(Self, TailStarted.Instance, TailAck.Instance, TailEnded.Instance, ex => new TailFailed(ex)))
            .Run(feed.Materializer);
    }

    private void RestartTail(Exception? cause)
    {
        Log.Warning(cause, "projection {0}: its read of the journal ended; reading again after {1} in {2}", _name, _handled, RetryTail);
        _tail?.Shutdown();
        _tail = null;
        Timers.StartSingleTimer("retry-tail", RetryTailDue.Instance, RetryTail);
    }

    private sealed record Tailed(JournaledEvent Event);

    private sealed record TailFailed(Exception Cause);

    private sealed class TailStarted
    {
        public static readonly TailStarted Instance = new();
    }

    private sealed class TailAck
    {
        public static readonly TailAck Instance = new();
    }

    private sealed class TailEnded
    {
        public static readonly TailEnded Instance = new();
    }

    private sealed class RetryTailDue
    {
        public static readonly RetryTailDue Instance = new();
    }

    private sealed class SaveDue
    {
        public static readonly SaveDue Instance = new();
    }
}
