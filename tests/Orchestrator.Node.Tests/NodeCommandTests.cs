using Orchestrator.Cli;
using Orchestrator.Node.Commands;

namespace Orchestrator.Node.Tests;

/// <summary>`orchestrator node`'s syntax, parsed in this process: no node starts.</summary>
public sealed class NodeCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orch-node-cmd").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private sealed record Run(int ExitCode, string Out, string Error, NodeCommandOptions? Options);

    /// <summary>The node executable's command line with a recorder in place of the node.</summary>
    private static async Task<Run> RunAsync(params string[] args)
    {
        NodeCommandOptions? seen = null;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var context = new CliContext { Out = stdout, Error = stderr, GetEnvironmentVariable = _ => null };
        var root = NodeCli.Root(context, (options, _) =>
        {
            seen = options;
            return Task.FromResult(7);
        });
        var exit = await OrchestratorCli.RunAsync(args, root, context, CancellationToken.None);
        return new Run(exit, stdout.ToString(), stderr.ToString(), seen);
    }

    [Fact]
    public async Task Node_binds_repeated_configs_data_listen_and_demo_vms()
    {
        var a = Path.Combine(_dir, "a.conf");
        var b = Path.Combine(_dir, "b.conf");
        File.WriteAllText(a, "");
        File.WriteAllText(b, "");

        var o = (await RunAsync(
            "node", "--config", a, "--config", b, "--data", Path.Combine(_dir, "data"), "--listen", "0.0.0.0:0", "--demo-vms", "3")).Options!;

        Assert.Equal([a, b], o.ConfigFiles);
        Assert.Equal(Path.Combine(_dir, "data"), o.DataDirectory);
        Assert.Equal(("0.0.0.0", 0, 3), (o.ListenHost, o.ListenPort, o.DemoVms));
        Assert.Equal("http://0.0.0.0:0", o.ListenUrl);
    }

    [Fact]
    public async Task Node_defaults_to_loopback_7480_and_no_demo_vms()
    {
        var o = (await RunAsync("node", "--data", "/tmp/orch-data")).Options!;

        Assert.Empty(o.ConfigFiles);
        Assert.Equal(("127.0.0.1", 7480, 0), (o.ListenHost, o.ListenPort, o.DemoVms));
    }

    [Theory]
    [InlineData("127.0.0.1:7480", "127.0.0.1", 7480)]
    [InlineData("[::1]:0", "::1", 0)]
    [InlineData("localhost:65535", "localhost", 65535)]
    public void Listen_addresses_parse_into_host_and_port(string text, string host, int port)
    {
        Assert.True(NodeCommand.TryParseListen(text, out var h, out var p));
        Assert.Equal((host, port), (h, p));
    }

    [Theory]
    [InlineData("7480")]
    [InlineData(":7480")]
    [InlineData("host:")]
    [InlineData("host:65536")]
    [InlineData("host:-1")]
    [InlineData("::1:7480")]
    public void Bad_listen_addresses_are_refused(string text) =>
        Assert.False(NodeCommand.TryParseListen(text, out _, out _));

    [Theory]
    [InlineData("node", "--listen", "nowhere")]
    [InlineData("node", "--demo-vms", "-1")]
    [InlineData("node", "--config", "/no/such/file.conf")]
    public async Task Bad_local_input_is_a_usage_error_with_exit_code_2_and_reaches_no_action(params string[] args)
    {
        var run = await RunAsync(args);

        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: ", run.Error);
        Assert.Contains("--help'", run.Error);
        Assert.Equal("", run.Out);
        Assert.Null(run.Options);
    }

    [Fact]
    public async Task The_node_command_goes_to_the_hook()
    {
        var run = await RunAsync("node", "--data", "/tmp/x", "--demo-vms", "2");

        Assert.Equal(7, run.ExitCode);
        Assert.Equal(2, run.Options?.DemoVms);
    }

    [Fact]
    public async Task The_client_commands_are_there_beside_node_and_the_help_names_the_tools()
    {
        var run = await RunAsync("--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("node", run.Out);
        Assert.Contains("vm", run.Out);
        Assert.Contains("orchestrator-tools", run.Out);
    }
}
