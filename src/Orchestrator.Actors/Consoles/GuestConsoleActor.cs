using Akka.Actor;
using Akka.Event;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Consoles;

/// <summary>
/// The serial console of one running VM, a child of its VM actor. Holds the driver's connection to the guest's serial
/// port (which drains the guest's output always, so nobody attached or a slow session never stalls the guest), fans
/// output out to the attached sessions, and lets only the session holding the keyboard (<see cref="ConsoleSeats{T}"/>)
/// type. On attach a session gets the tail of the console log, which the hypervisor writes whether anyone is connected
/// or not: what the guest printed while the node was away is there too.
/// </summary>
public sealed class GuestConsoleActor : ReceiveActor, IWithTimers
{
    /// <summary>How much of the console log a session gets on attach.</summary>
    public const int ScrollbackBytes = 64 * 1024;

    /// <summary>Typed bytes on their way into the guest beyond which more input is dropped (the guest reads slowly).</summary>
    private const int MaxPendingInput = 64 * 1024;

    private static readonly TimeSpan ReconnectDelay = TimeSpan.FromSeconds(1);

    private readonly IVmHandle _handle;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HashSet<IActorRef> _sessions = [];
    private ConsoleSeats<IActorRef> _seats = ConsoleSeats<IActorRef>.Empty;
    private IConsoleConnection? _connection;
    private string? _unavailable;
    private Task _writes = Task.CompletedTask;
    private int _pendingInput;

    public GuestConsoleActor(IVmHandle handle)
    {
        _handle = handle;

        Receive<Connected>(connected =>
        {
            _connection = connected.Connection;
            var self = Self;
            connected.Connection.Closed.PipeTo(self, success: reason => new ConnectionClosed(connected.Connection, reason));
        });
        Receive<ConnectFailed>(failed =>
        {
            if (failed.Cause is NotSupportedException)
            {
                _unavailable = failed.Cause.Message; // this driver has no console: nothing to retry
                return;
            }

            _log.Warning("VM {0}: cannot connect to the serial console ({1}); retrying", _handle.VmId, failed.Cause.Message);
            Timers.StartSingleTimer("reconnect", Reconnect.Instance, ReconnectDelay);
        });
        Receive<ConnectionClosed>(closed =>
        {
            if (!ReferenceEquals(closed.Connection, _connection))
            {
                return;
            }

            _ = closed.Connection.DisposeAsync().AsTask();
            _connection = null;
            // The VM actor stops this actor when the VM exits; until then the console comes back.
            Timers.StartSingleTimer("reconnect", Reconnect.Instance, ReconnectDelay);
        });
        Receive<Reconnect>(_ => Connect());
        Receive<GuestPrinted>(printed =>
        {
            var output = new ConsoleReplies.Output(printed.Data);
            foreach (var session in _sessions)
            {
                session.Tell(output, Self);
            }
        });
        Receive<ConsoleCommands.AttachVm>(Attach);
        Receive<ConsoleCommands.Input>(Type);
        Receive<InputWritten>(written => _pendingInput -= written.Bytes);
        Receive<Terminated>(gone =>
        {
            _sessions.Remove(gone.ActorRef);
            _seats = _seats.Detach(gone.ActorRef);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(IVmHandle handle) => Akka.Actor.Props.Create(() => new GuestConsoleActor(handle));

    protected override void PreStart() => Connect();

    protected override void PostStop()
    {
        // The sessions watch this actor: they learn from Terminated that the console is gone.
        if (_connection is { } connection)
        {
            _ = connection.DisposeAsync().AsTask();
        }
    }

    private void Connect()
    {
        var self = Self;
        var handle = _handle;
        Task.Run(() => handle.ConnectConsoleAsync(bytes => self.Tell(new GuestPrinted(bytes)), CancellationToken.None))
            .PipeTo(self, success: connection => new Connected(connection), failure: ex => new ConnectFailed(ex.GetBaseException()));
    }

    private void Attach(ConsoleCommands.AttachVm attach)
    {
        if (_unavailable is { } why)
        {
            Sender.Tell(new ConsoleReplies.Refused(false, why));
            return;
        }

        var session = Sender;
        var (seats, seat) = _seats.Attach(session, attach.CanWrite, attach.Force);
        _seats = seats;
        if (_sessions.Add(session))
        {
            Context.Watch(session);
        }

        session.Tell(new ConsoleReplies.Attached(_handle.VmId, seat.Role == ConsoleRole.Writer, seat.Why, Scrollback()), Self);
        seat.Displaced?.Tell(new ConsoleReplies.TakenOver(ConsoleSeats<IActorRef>.TakenOver), Self);
    }

    private void Type(ConsoleCommands.Input input)
    {
        if (!_seats.MayWrite(Sender) || _connection is not { } connection)
        {
            return;
        }

        if (_pendingInput + input.Data.Length > MaxPendingInput)
        {
            Sender.Tell(new ConsoleReplies.InputDropped(input.Data.Length), Self);
            return;
        }

        // One write after the other, in the order typed; the count bounds what waits for a guest that reads slowly.
        _pendingInput += input.Data.Length;
        var self = Self;
        var bytes = input.Data.Length;
        _writes = _writes.ContinueWith(async _ =>
        {
            try
            {
                await connection.WriteAsync(input.Data, CancellationToken.None);
            }
            catch (Exception ex) when (ex is HypervisorException or ObjectDisposedException or IOException)
            {
                // The connection is closing; its Closed says so and it comes back.
            }
            finally
            {
                self.Tell(new InputWritten(bytes));
            }
        }, TaskScheduler.Default).Unwrap();
    }

    /// <summary>
    /// The last <see cref="ScrollbackBytes"/> of the console log. A small read of a local file, done in place so the
    /// scrollback reaches the session before any live output does.
    /// </summary>
    private byte[] Scrollback()
    {
        try
        {
            using var log = new FileStream(_handle.ConsoleLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var length = (int)Math.Min(log.Length, ScrollbackBytes);
            log.Seek(-length, SeekOrigin.End);
            var tail = new byte[length];
            log.ReadExactly(tail);
            return tail;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private sealed record Connected(IConsoleConnection Connection);

    private sealed record ConnectFailed(Exception Cause);

    private sealed record ConnectionClosed(IConsoleConnection Connection, string Reason);

    private sealed record GuestPrinted(byte[] Data);

    private sealed record InputWritten(int Bytes);

    private sealed class Reconnect
    {
        public static readonly Reconnect Instance = new();
    }
}
