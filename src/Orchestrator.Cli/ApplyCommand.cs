// `orchestrator apply -f FILE`: converge the tenant's VMs to a HOCON file (the node plans and carries it out).
using System.CommandLine;

namespace Orchestrator.Cli;

internal static class ApplyCommand
{
    public static Command Build(ICliActions actions)
    {
        var client = new CliSyntax.ClientOptions();
        var file = new Option<FileInfo>("--file", "-f")
        {
            Description = "The apply file (HOCON): vms { NAME { vcpus = 1, memory-mib = 256, image = demo } }.",
            HelpName = "FILE",
            Required = true,
        }.AcceptExistingOnly();
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the plan; change nothing." };
        var prune = new Option<bool>("--prune") { Description = "Also delete the VMs the file does not name." };

        var command = new Command("apply",
            "Create, change and (with --prune) delete VMs until they are what the file says. Applying a file twice changes nothing.")
        {
            file, dryRun, prune,
        };
        client.AddTo(command);
        command.SetAction((parse, ct) => actions.ApplyAsync(
            new ApplyArgs(client.Bind(parse), parse.GetValue(file)!.FullName, parse.GetValue(dryRun), parse.GetValue(prune)),
            ct));
        return command;
    }
}
