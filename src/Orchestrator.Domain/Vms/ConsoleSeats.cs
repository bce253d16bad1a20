namespace Orchestrator.Domain.Vms;

public enum ConsoleRole
{
    /// <summary>Sees the output and types into the guest.</summary>
    Writer,

    /// <summary>Sees the output only; what it types is dropped.</summary>
    Reader,
}

/// <summary>What an attaching session got: its role, why it only reads (when it does), and whom it took the keyboard from.</summary>
public sealed record ConsoleSeat<TSession>(ConsoleRole Role, string? Why, TSession? Displaced);

/// <summary>
/// Who may type into one VM's serial console: one writer at a time. A session whose key may write gets the keyboard
/// when nobody holds it, or takes it with <c>force</c> (the old writer is told and goes on reading); otherwise it reads.
/// A read-only key always reads, force or not. When the writer leaves, the keyboard is free for the next to attach.
/// </summary>
public sealed record ConsoleSeats<TSession>(TSession? Writer)
    where TSession : notnull
{
    public static readonly ConsoleSeats<TSession> Empty = new(default(TSession));

    public const string ReadOnlyKey = "this key is read-only: output only";

    public const string KeyboardTaken = "another session is typing on this console: output only (attach with --force to take over)";

    public const string TakenOver = "another session took over this console with --force: output only now";

    public (ConsoleSeats<TSession> Seats, ConsoleSeat<TSession> Seat) Attach(TSession session, bool canWrite, bool force)
    {
        if (!canWrite)
        {
            return (this, new ConsoleSeat<TSession>(ConsoleRole.Reader, ReadOnlyKey, default));
        }

        if (Writer is null || Writer.Equals(session))
        {
            return (new ConsoleSeats<TSession>(session), new ConsoleSeat<TSession>(ConsoleRole.Writer, null, default));
        }

        return force
            ? (new ConsoleSeats<TSession>(session), new ConsoleSeat<TSession>(ConsoleRole.Writer, null, Writer))
            : (this, new ConsoleSeat<TSession>(ConsoleRole.Reader, KeyboardTaken, default));
    }

    /// <summary>Whether keystrokes from <paramref name="session"/> reach the guest.</summary>
    public bool MayWrite(TSession session) => Writer is not null && Writer.Equals(session);

    /// <summary>The session is gone; the keyboard is free when it held it.</summary>
    public ConsoleSeats<TSession> Detach(TSession session) => MayWrite(session) ? Empty : this;
}
