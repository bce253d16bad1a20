using System.CommandLine;
using System.CommandLine.Help;

namespace Orchestrator.Tools;

/// <summary>The <c>orchestrator-tools</c> command line: <c>bench</c>, <c>simulate</c> and <c>scale</c>.</summary>
public static class ToolsCli
{
    /// <summary>
    /// A root named <c>orchestrator</c>, not after this executable: people reach these commands as
    /// <c>./orchestrator bench …</c> (the front script runs this executable for them), so usage lines say so.
    /// </summary>
    public static Command Root()
    {
        var root = new Command("orchestrator", "Orchestrator's tools: benchmarks, the trace simulator and the scale test.")
        {
            new HelpOption(),
        };
        var bench = new Command("bench", "Benchmarks that print figures.");
        root.Subcommands.Add(bench);
        PlacementToolCommands.AddTo(root, bench);
        ClusterToolCommands.AddTo(bench);
        ChaosToolCommands.AddTo(bench);
        return root;
    }
}
