// `orchestrator events`: the node's event stream, as lines for people or JSON lines for scripts.
using System.CommandLine;

namespace Orchestrator.Cli;

/// <param name="Types">Only these event types (empty: all).</param>
/// <param name="Vm">Only this VM's events.</param>
/// <param name="After">Start after this event id; null: from the first event.</param>
public sealed record EventsArgs(ClientArgs Client, bool Follow, IReadOnlyList<string> Types, string? Vm, long? After);

public static partial class CliSyntax
{
    private static Command EventsCommand(ICliActions actions)
    {
        var client = new ClientOptions();
        var follow = new Option<bool>("--follow", "-f")
        {
            Description = "Keep printing events as they happen, resuming where it left off if the connection drops (Ctrl-C ends).",
        };
        var types = new Option<string[]>("--type")
        {
            Description = "Only these event types, e.g. VmReady,VmFailed (repeatable).",
            HelpName = "TYPE[,TYPE]",
        };
        var vm = new Option<string>("--vm") { Description = "Only the events of this VM.", HelpName = "NAME" };
        var after = new Option<long?>("--after") { Description = "Start after this event id (default: the first event).", HelpName = "ID" };
        after.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<long?>() < 0)
            {
                result.AddError("--after must be an event id (0 or more)");
            }
        });

        var command = new Command("events", "Show the events of your VMs (all events for an admin key): one line each, or JSON lines with -o json.")
        {
            follow, types, vm, after,
        };
        client.AddTo(command);
        command.SetAction((parse, ct) => actions.EventsAsync(
            new EventsArgs(
                client.Bind(parse),
                parse.GetValue(follow),
                (parse.GetValue(types) ?? [])
                    .SelectMany(t => t.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                    .Distinct(StringComparer.Ordinal)
                    .ToList(),
                parse.GetValue(vm),
                parse.GetValue(after)),
            ct));
        return command;
    }
}
