// The entry point the node executable calls: `return await OrchestratorCli.RunAsync(args, hooks, ct);`
using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;

namespace Orchestrator.Cli;

/// <summary>What the executable supplies for commands that are not HTTP calls.</summary>
/// <param name="RunNode">Runs a node until it stops; returns the exit code. It owns SIGINT/SIGTERM
/// (the CLI installs no signal handling for <c>node</c>; the Generic Host's console lifetime does it).</param>
public sealed record CliHooks(Func<NodeCommandOptions, CancellationToken, Task<int>> RunNode)
{
    /// <summary><c>simulate</c>, <c>bench</c> and <c>scale</c>; absent where the executable has no simulator.</summary>
    public PlacementToolHooks? PlacementTools { get; init; }

    /// <summary><c>bench failover</c>; absent where the executable can't start nodes.</summary>
    public ClusterToolHooks? ClusterTools { get; init; }
}

public static class OrchestratorCli
{
    public const int ExitOk = 0;
    public const int ExitError = 1;
    public const int ExitUsage = 2;
    public const int ExitInterrupted = 130;

    /// <summary>Parses <paramref name="args"/> and runs the command on the process's console and environment.</summary>
    public static Task<int> RunAsync(string[] args, CliHooks hooks, CancellationToken ct) =>
        RunAsync(args, hooks, CliContext.FromConsole(), ct);

    /// <summary>As above, with the streams, environment and HTTP transport of <paramref name="context"/>.</summary>
    /// <returns>0 ok; 1 error (printed as <c>error: …</c> on stderr); 2 usage error; 130 interrupted.</returns>
    public static async Task<int> RunAsync(string[] args, CliHooks hooks, CliContext context, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(hooks);
        ArgumentNullException.ThrowIfNull(context);

        var root = CliSyntax.Build(new ClientActions(hooks, context));
        PlacementToolCommands.AddTo(root, hooks.PlacementTools);
        ClusterToolCommands.AddTo(root, hooks.ClusterTools);
        var parse = root.Parse(args);

        if (parse.Action is ParseErrorAction)
        {
            foreach (var error in parse.Errors)
            {
                await context.Error.WriteLineAsync("error: " + error.Message);
            }

            await context.Error.WriteLineAsync($"see '{CommandPath(parse.CommandResult)} --help'");
            return ExitUsage;
        }

        var isNode = parse.CommandResult is { Command.Name: "node", Parent: CommandResult { Command: RootCommand } };
        var invocation = new InvocationConfiguration
        {
            Output = context.Out,
            Error = context.Error,
            EnableDefaultExceptionHandler = false,
            // Client commands: Ctrl+C cancels the token (a --wait stops polling). The node handles its own
            // signals so that its graceful shutdown is not cut off after the default 2 s.
            ProcessTerminationTimeout = isNode ? null : TimeSpan.FromSeconds(2),
        };

        try
        {
            return await parse.InvokeAsync(invocation, ct);
        }
        catch (CliException e)
        {
            ClientActions.WriteError(context, e);
            return e.ExitCode;
        }
        catch (OperationCanceledException) when (!isNode)
        {
            await context.Error.WriteLineAsync("interrupted");
            return ExitInterrupted;
        }
    }

    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (var current = result; current is not null; current = current.Parent as CommandResult)
        {
            names.Add(current.Command is RootCommand ? RootCommand.ExecutableName : current.Command.Name);
        }

        names.Reverse();
        return string.Join(' ', names);
    }
}
