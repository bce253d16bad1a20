using System.Diagnostics;
using Akka.Actor;

namespace Orchestrator.Simulation;

/// <summary>
/// A closed loop of requests against one actor, as <c>bench durable</c>'s clients: <c>lanes</c> actors, each with one
/// request in flight, each sending its next request when its reply comes. An Ask per request made a temporary actor,
/// a task, a continuation and a timeout timer, and a semaphore woke the sending loop through the thread pool after every
/// reply: about 1.7 KB and a thread hop per request that the bench then counted as the scheduler's cost.
/// </summary>
internal static class ClosedLoopClient
{
    /// <summary>Sends requests 0 to <paramref name="count"/> - 1, <paramref name="lanes"/> at a time; completes after the last reply.</summary>
    /// <param name="request">the request numbered n (called on the lanes' threads, one call per number).</param>
    /// <param name="replied">the reply to request n and its latency in <see cref="Stopwatch"/> ticks (called on the lanes' threads).</param>
    public static async Task RunAsync(ActorSystem system, IActorRef target, int count, int lanes, Func<int, object> request,
        Action<int, object, long> replied)
    {
        var shared = new Shared(target, count, request, replied, Math.Min(lanes, count));
        if (shared.Lanes == 0)
        {
            return;
        }

        var actors = new List<IActorRef>(shared.Lanes);
        for (var i = 0; i < shared.Lanes; i++)
        {
            actors.Add(system.ActorOf(Props.Create(() => new Lane(shared))));
        }

        try
        {
            await shared.Done.Task;
        }
        finally
        {
            foreach (var lane in actors)
            {
                system.Stop(lane);
            }
        }
    }

    private sealed class Shared(IActorRef target, int count, Func<int, object> request, Action<int, object, long> replied, int lanes)
    {
        private int _next = -1;
        private int _lanesLeft = lanes;

        public IActorRef Target { get; } = target;
        public Func<int, object> Request { get; } = request;
        public Action<int, object, long> Replied { get; } = replied;
        public int Lanes { get; } = lanes;
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The next request's number, or -1 when all are taken.</summary>
        public int Take()
        {
            var n = Interlocked.Increment(ref _next);
            return n < count ? n : -1;
        }

        public void LaneDone()
        {
            if (Interlocked.Decrement(ref _lanesLeft) == 0)
            {
                Done.TrySetResult();
            }
        }
    }

    private sealed class Lane : UntypedActor
    {
        private readonly Shared _shared;
        private int _current = -1;
        private long _sentAt;

        public Lane(Shared shared) => _shared = shared;

        protected override void PreStart() => SendNext();

        protected override void OnReceive(object message)
        {
            if (_current < 0)
            {
                Unhandled(message);
                return;
            }

            _shared.Replied(_current, message, Stopwatch.GetTimestamp() - _sentAt);
            SendNext();
        }

        private void SendNext()
        {
            _current = _shared.Take();
            if (_current < 0)
            {
                _shared.LaneDone();
                return;
            }

            var request = _shared.Request(_current);
            _sentAt = Stopwatch.GetTimestamp();
            _shared.Target.Tell(request, Self);
        }
    }
}
