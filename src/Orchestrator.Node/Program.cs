using Orchestrator.Cli;
using Orchestrator.Node;

using var cancel = new CancellationTokenSource();
return await OrchestratorCli.RunAsync(args, new CliHooks(NodeHost.RunAsync), cancel.Token);
