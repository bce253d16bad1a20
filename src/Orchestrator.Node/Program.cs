using Orchestrator.Cli;
using Orchestrator.Node;
using Orchestrator.Node.Commands;

using var cancel = new CancellationTokenSource();
var context = CliContext.FromConsole();
return await OrchestratorCli.RunAsync(args, NodeCli.Root(context, NodeHost.RunAsync), context, cancel.Token);
