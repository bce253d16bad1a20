namespace Orchestrator.Cli;

/// <summary>
/// What a CLI run talks to: its output streams, its environment and its HTTP transport.
/// <see cref="FromConsole"/> for the real process; tests and end-to-end checks build their own.
/// </summary>
public sealed class CliContext
{
    public required TextWriter Out { get; init; }

    public required TextWriter Error { get; init; }

    /// <summary>Whether <see cref="Out"/> is a terminal: colours and wrapping to its width only then.</summary>
    public bool OutIsTerminal { get; init; }

    /// <summary>Whether <see cref="Error"/> is a terminal: the <c>--wait</c> spinner only then.</summary>
    public bool ErrorIsTerminal { get; init; }

    public Func<string, string?> GetEnvironmentVariable { get; init; } = Environment.GetEnvironmentVariable;

    /// <summary>The HTTP transport; null for the default sockets handler.</summary>
    public HttpMessageHandler? HttpHandler { get; init; }

    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    public static CliContext FromConsole() => new()
    {
        Out = Console.Out,
        Error = Console.Error,
        OutIsTerminal = !Console.IsOutputRedirected,
        ErrorIsTerminal = !Console.IsErrorRedirected,
    };
}
