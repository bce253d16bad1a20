using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>The command-line client against a real node, found through the node's data dir alone.</summary>
[Collection(NodeCollection.Name)]
public sealed class CliTests(ITestOutputHelper output) : IAsyncLifetime
{
    private NodeProcess _node = null!;

    public async Task InitializeAsync() => _node = await NodeProcess.StartAsync(output);

    public async Task DisposeAsync() => await _node.DisposeAsync();

    private async Task<(int ExitCode, string Out, string Error)> RunCliAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "orchestrator.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.ArgumentList.Add("--data");
        start.ArgumentList.Add(_node.DataDir);
        start.Environment.Remove("ORCHESTRATOR_URL");
        start.Environment.Remove("ORCHESTRATOR_API_KEY");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        output.WriteLine($"$ orchestrator {string.Join(' ', args)} → {process.ExitCode}\n{await stdout}{await stderr}");
        return (process.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task Vm_create_with_wait_returns_once_the_guest_is_ready()
    {
        var (exit, stdout, stderr) = await RunCliAsync("vm", "create", "web1", "--vcpus", "1", "--memory", "256", "--image", "demo", "--wait");
        Assert.Equal(0, exit);
        Assert.Contains("web1 ready in", stdout + stderr);
        Assert.Equal("Ready", (string?)(await _node.GetVmAsync("web1"))!["state"]);

        var (listExit, json, _) = await RunCliAsync("vm", "list", "--output", "json");
        Assert.Equal(0, listExit);
        var vm = Assert.Single(JsonNode.Parse(json)!.AsArray());
        Assert.Equal("web1", (string?)vm!["name"]);
    }

    [Fact]
    public async Task A_refused_create_prints_the_field_and_exits_non_zero()
    {
        var (exit, _, stderr) = await RunCliAsync("vm", "create", "bad", "--vcpus", "0", "--memory", "256", "--image", "demo");
        Assert.Equal(1, exit);
        Assert.Contains("vcpus", stderr);
    }

    [Fact]
    public async Task Host_and_image_lists_show_this_node()
    {
        var (exit, hosts, _) = await RunCliAsync("host", "list", "--output", "json");
        Assert.Equal(0, exit);
        Assert.Equal("Up", (string?)JsonNode.Parse(hosts)!.AsArray().Single()!["state"]);
        var (_, images, _) = await RunCliAsync("image", "list");
        Assert.Contains("demo", images);
    }
}
