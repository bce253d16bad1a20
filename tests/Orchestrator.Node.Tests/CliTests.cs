using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>The command-line client against a real node, found through the node's data dir alone.</summary>
[Collection(NodeCollection.Name)]
public sealed class CliTests(SharedNode fixture, ITestOutputHelper output) : IClassFixture<SharedNode>
{
    private readonly NodeProcess _node = fixture.Node;

    private async Task<(int ExitCode, string Out, string Error)> RunCliAsync(params string[] args)
    {
        var run = await OrchestratorCommand.RunAsync(output, [.. args, "--data", _node.DataDir], TimeSpan.FromMinutes(3), start =>
        {
            start.Environment.Remove("ORCHESTRATOR_URL");
            start.Environment.Remove("ORCHESTRATOR_API_KEY");
        });
        return (run.ExitCode, run.Out, run.Error);
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
        var host = JsonNode.Parse(hosts)!.AsArray().Single()!;
        Assert.Equal("Up", (string?)host["state"]);
        // What the probe found here: no /dev/kvm is TCG, saying so; a /dev/kvm is KVM only if a guest booted under it.
        var accelerator = (string)host["accelerator"]!;
        Assert.Contains(accelerator, new[] { "kvm", "tcg" });
        if (!Orchestrator.Hypervisor.Accel.QemuAcceleratorProbe.DeviceOpens("/dev/kvm", out _))
        {
            Assert.Equal("tcg", accelerator);
            Assert.Contains("/dev/kvm", (string)host["acceleratorNote"]!);
        }

        var (shown, details, _) = await RunCliAsync("host", "show", (string)host["id"]!);
        Assert.Equal(0, shown);
        Assert.Matches($@"Accelerator\s+{accelerator} \(", details);
        var (_, images, _) = await RunCliAsync("image", "list");
        Assert.Contains("demo", images);
    }
}
