using System.CommandLine;
using Orchestrator.Cli;

namespace Orchestrator.Node.Commands;

/// <summary>The <c>orchestrator</c> executable's command line: the client's commands and <c>node</c>.</summary>
public static class NodeCli
{
    public const string Description =
        "Orchestrator: VMs on a cluster of Linux hosts. `node` runs a node; the other commands talk to one over HTTP. " +
        "Benchmarks and simulations (`bench`, `simulate`, `scale`) are in orchestrator-tools; in a checkout, ./orchestrator runs them too.";

    /// <param name="runNode">what <c>node</c> does (<see cref="NodeHost.RunAsync"/>; tests pass a recorder).</param>
    public static RootCommand Root(CliContext context, Func<NodeCommandOptions, CancellationToken, Task<int>> runNode)
    {
        var root = OrchestratorCli.CreateRoot(context);
        root.Description = Description;
        root.Subcommands.Insert(0, NodeCommand.Build(runNode));
        return root;
    }
}
