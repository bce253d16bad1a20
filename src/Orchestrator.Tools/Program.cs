using Orchestrator.Cli;
using Orchestrator.Tools;

using var cancel = new CancellationTokenSource();
var context = CliContext.FromConsole();
return await OrchestratorCli.RunAsync(args, ToolsCli.Root(), context, cancel.Token);
