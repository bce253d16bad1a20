using Orchestrator.Cli;
using Orchestrator.Node;

using var cancel = new CancellationTokenSource();
var hooks = new CliHooks(NodeHost.RunAsync)
{
    ClusterTools = new ClusterToolHooks(Orchestrator.Node.Bench.FailoverBenchmark.RunAsync, Orchestrator.Node.Bench.SharesBenchmark.RunAsync,
        Orchestrator.Node.Bench.BootBench.RunAsync, Orchestrator.Node.Bench.StreamsBench.RunAsync),
    PlacementTools = new PlacementToolHooks(
        Orchestrator.Simulation.SimulateCommand.RunAsync, Orchestrator.Simulation.BenchCommand.RunAsync, (options, ct) => options.Nodes > 1
            ? Orchestrator.Node.Bench.ClusterScaleBenchmark.RunAsync(options, ct)
            : Orchestrator.Simulation.ScaleCommand.RunAsync(options, ct)),
};
return await OrchestratorCli.RunAsync(args, hooks, cancel.Token);
