// Runs a command line: parse, report usage errors, invoke, map failures to exit codes. Executables compose the tree:
// the node adds `node` to the client's commands (CreateRoot), the tools executable brings its own.
using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;

namespace Orchestrator.Cli;

/// <summary>
/// A command that runs in the foreground until stopped and handles SIGINT/SIGTERM itself (the node: the Generic Host's
/// console lifetime shuts it down gracefully, which the CLI's cancellation after 2 s would cut off).
/// </summary>
public sealed class ForegroundCommand(string name, string? description = null) : Command(name, description);

public static class OrchestratorCli
{
    public const int ExitOk = 0;
    public const int ExitError = 1;
    public const int ExitUsage = 2;
    public const int ExitInterrupted = 130;

    /// <summary>The client's commands (vm, host, tenant, …) on <paramref name="context"/>; an executable adds its own to it.</summary>
    public static RootCommand CreateRoot(CliContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return CliSyntax.Build(new ClientActions(context));
    }

    /// <summary>The client's commands only, on <paramref name="context"/>.</summary>
    public static Task<int> RunAsync(string[] args, CliContext context, CancellationToken ct) =>
        RunAsync(args, CreateRoot(context), context, ct);

    /// <summary>Parses <paramref name="args"/> against <paramref name="root"/> and runs the command it names.</summary>
    /// <returns>0 ok; 1 error (printed as <c>error: …</c> on stderr); 2 usage error; 130 interrupted.</returns>
    public static async Task<int> RunAsync(string[] args, Command root, CliContext context, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(context);

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

        var foreground = parse.CommandResult.Command is ForegroundCommand;
        var invocation = new InvocationConfiguration
        {
            Output = context.Out,
            Error = context.Error,
            EnableDefaultExceptionHandler = false,
            // Client commands: Ctrl+C cancels the token (a --wait stops polling). A foreground command handles its own
            // signals so that its graceful shutdown is not cut off after the default 2 s.
            ProcessTerminationTimeout = foreground ? null : TimeSpan.FromSeconds(2),
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
        catch (OperationCanceledException) when (!foreground)
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
