using System.CommandLine;
using Orchestrator.Cli;

namespace Orchestrator.Tools.Tests;

/// <summary>orchestrator-tools' command line, parsed in this process: nothing is benchmarked.</summary>
public sealed class ToolsCliTests
{
    private static async Task<(int ExitCode, string Out, string Error)> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var context = new CliContext { Out = stdout, Error = stderr, GetEnvironmentVariable = _ => null };
        var exit = await OrchestratorCli.RunAsync(args, ToolsCli.Root(), context, CancellationToken.None);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void The_tools_are_the_commands_the_readme_names()
    {
        var root = ToolsCli.Root();

        Assert.Equal(["bench", "simulate", "scale"], root.Subcommands.Select(c => c.Name));
        Assert.Equal(
            ["placement", "durable", "failover", "shares", "boot", "streams", "console", "io", "net", "metrics", "chaos"],
            root.Subcommands.Single(c => c.Name == "bench").Subcommands.Select(c => c.Name));
    }

    [Fact]
    public async Task Usage_lines_name_the_orchestrator_command_people_type()
    {
        var (exit, stdout, _) = await RunAsync("scale", "--help");

        Assert.Equal(0, exit);
        Assert.Contains("orchestrator scale [options]", stdout);
        Assert.Contains("--snapshot-every", stdout);
    }

    [Theory]
    [InlineData("bench", "failover", "--hosts", "2")]
    [InlineData("bench", "durable", "--store", "mysql")]
    [InlineData("bench", "chaos", "--faults", "kill-node,meteor")]
    [InlineData("bench", "chaos", "--faults", "")]
    [InlineData("bench", "chaos", "--hosts", "2")]
    [InlineData("bench", "chaos", "--minutes", "0")]
    [InlineData("scale", "--vms", "0")]
    [InlineData("scale", "--recover")]
    [InlineData("scale", "--recover", "--data", "/no/such/dir", "--nodes", "2")]
    [InlineData("simulate", "--trace", "/no/such/trace.txt")]
    public async Task Bad_input_is_a_usage_error_with_exit_code_2_pointing_at_the_commands_help(params string[] args)
    {
        var (exit, stdout, stderr) = await RunAsync(args);

        Assert.Equal(OrchestratorCli.ExitUsage, exit);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains($"see 'orchestrator {string.Join(' ', args.TakeWhile(a => !a.StartsWith('-')))} --help'", stderr);
        Assert.Equal("", stdout);
    }
}
