using System.Threading.Channels;
using Akka.Actor;
using Orchestrator.Domain;

namespace Orchestrator.Actors.Consoles;

/// <summary>What a console session hands its client (a WebSocket): raw serial bytes, or a short notice.</summary>
public abstract record ConsoleFrame
{
    private ConsoleFrame() { }

    public sealed record Bytes(byte[] Data) : ConsoleFrame;

    /// <param name="Kind">attached, taken-over, dropped, input-dropped, ended.</param>
    public sealed record Notice(string Kind, string Message) : ConsoleFrame;
}

/// <summary>How an attach ended: attached (typing or reading), or refused.</summary>
public sealed record ConsoleAttachOutcome(VmId? VmId, bool Writing, string? Why, bool NotFound, string? Refusal);

/// <summary>
/// One client's console session, on the node that serves the client. Attaches through the scheduler, then exchanges
/// bytes with the VM's <see cref="GuestConsoleActor"/> directly. Output goes into a bounded channel the client drains:
/// a client that falls behind loses output (and is told how much), so it never grows this node's memory nor slows the
/// console for anyone else. Stopping this actor detaches.
/// </summary>
public sealed class ConsoleSessionActor : ReceiveActor, IWithTimers
{
    /// <summary>Frames (each at most a few KiB) a client may fall behind by before output is dropped.</summary>
    public const int ClientBuffer = 256;

    private static readonly TimeSpan AttachTimeout = TimeSpan.FromSeconds(15);

    private readonly IActorRef _scheduler;
    private readonly ConsoleCommands.Attach _attach;
    private readonly ChannelWriter<ConsoleFrame> _client;
    private readonly TaskCompletionSource<ConsoleAttachOutcome> _outcome;
    private IActorRef? _console;
    private long _dropped;

    public ConsoleSessionActor(IActorRef scheduler, ConsoleCommands.Attach attach, ChannelWriter<ConsoleFrame> client,
        TaskCompletionSource<ConsoleAttachOutcome> outcome)
    {
        _scheduler = scheduler;
        _attach = attach;
        _client = client;
        _outcome = outcome;

        Receive<ConsoleReplies.Attached>(attached =>
        {
            _console = Sender;
            Context.Watch(_console);
            Timers.Cancel("attach");
            _outcome.TrySetResult(new ConsoleAttachOutcome(attached.VmId, attached.Writing, attached.Why, false, null));
            Become(Attached);
            Send(new ConsoleFrame.Notice("attached", attached.Writing ? "write" : attached.Why ?? "read"));
            Send(new ConsoleFrame.Bytes(attached.Scrollback));
        });
        Receive<ConsoleReplies.Refused>(refused => Refuse(refused.NotFound, refused.Reason));
        Receive<AttachTimedOut>(_ => Refuse(false, "the VM's host did not answer"));
        Receive<Typed>(_ => { }); // not attached yet: nothing to type into
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(IActorRef scheduler, ConsoleCommands.Attach attach, ChannelWriter<ConsoleFrame> client,
        TaskCompletionSource<ConsoleAttachOutcome> outcome) =>
        Akka.Actor.Props.Create(() => new ConsoleSessionActor(scheduler, attach, client, outcome));

    protected override void PreStart()
    {
        _scheduler.Tell(_attach, Self);
        Timers.StartSingleTimer("attach", AttachTimedOut.Instance, AttachTimeout);
    }

    protected override void PostStop()
    {
        _outcome.TrySetResult(new ConsoleAttachOutcome(null, false, null, false, "the session ended"));
        _client.TryComplete();
    }

    private void Attached()
    {
        Receive<ConsoleReplies.Output>(output => Send(new ConsoleFrame.Bytes(output.Data)));
        Receive<ConsoleReplies.TakenOver>(taken => Send(new ConsoleFrame.Notice("taken-over", taken.Message)));
        Receive<ConsoleReplies.InputDropped>(dropped =>
            Send(new ConsoleFrame.Notice("input-dropped", $"{dropped.Bytes} typed bytes dropped: the guest reads its console slowly")));
        Receive<Typed>(typed => _console!.Tell(new ConsoleCommands.Input(typed.Data), Self));
        Receive<Terminated>(_ =>
        {
            Send(new ConsoleFrame.Notice("ended", "the console went away: the VM stopped, or its host's node stopped"));
            Context.Stop(Self);
        });
    }

    private void Refuse(bool notFound, string reason)
    {
        _outcome.TrySetResult(new ConsoleAttachOutcome(null, false, null, notFound, reason));
        Context.Stop(Self);
    }

    /// <summary>Hands a frame to the client, or counts it lost when the client's buffer is full; the loss is told once there is room.</summary>
    private void Send(ConsoleFrame frame)
    {
        if (_dropped > 0 && _client.TryWrite(new ConsoleFrame.Notice("dropped", $"{_dropped} bytes of output dropped: this client reads too slowly")))
        {
            _dropped = 0;
        }

        if (_dropped > 0 || !_client.TryWrite(frame))
        {
            _dropped += frame is ConsoleFrame.Bytes bytes ? bytes.Data.Length : 0;
        }
    }

    /// <summary>From the client (same node): keystrokes for the guest.</summary>
    public sealed record Typed(byte[] Data);

    private sealed class AttachTimedOut
    {
        public static readonly AttachTimedOut Instance = new();
    }
}
