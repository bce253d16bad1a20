using System.Net;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// The simulated driver through a real node: hosts whose VMs exist only in memory speak the host agent's protocol, so
/// the scheduler places, starts, stops and deletes their VMs as anywhere else (what `scale --nodes` builds on).
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class SimulatedDriverTests(ITestOutputHelper output) : IAsyncLifetime
{
    private NodeProcess _node = null!;

    public async Task InitializeAsync() => _node = await NodeProcess.StartAsync(output, """
        orchestrator.host-id = "sim"
        orchestrator.host.driver = simulated
        orchestrator.host.simulated-hosts = 4
        orchestrator.host.cpus = 2
        orchestrator.host.memory-mib = 4096
        """);

    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task Simulated_hosts_take_vms_through_their_whole_life_and_run_nothing()
    {
        var hosts = await _node.Eventually(async () =>
        {
            var listed = JsonNode.Parse(await _node.Http.GetStringAsync("v1/hosts"))!.AsArray();
            return listed.Count == 4 ? listed : null;
        }, TimeSpan.FromSeconds(30), "the four simulated hosts to register");
        Assert.Equal(["sim-s00001", "sim-s00002", "sim-s00003", "sim-s00004"], hosts.Select(h => (string)h!["id"]!).Order());
        Assert.All(hosts, h => Assert.Equal("simulated", (string?)h!["driver"]));

        for (var i = 0; i < 3; i++)
        {
            await _node.CreateVmAsync($"sim{i}", vcpus: 1);
        }

        foreach (var name in new[] { "sim0", "sim1", "sim2" })
        {
            var ready = await _node.WaitForVmAsync(name, "Ready");
            Assert.StartsWith("sim-s0000", (string?)ready["host"]);
        }

        Assert.Empty(_node.QemuProcesses());

        Assert.Equal(202, (int)(await _node.Http.PostAsync("v1/vms/sim0/stop", null)).StatusCode);
        await _node.WaitForVmAsync("sim0", "Stopped");
        Assert.Equal(202, (int)(await _node.Http.PostAsync("v1/vms/sim0/start", null)).StatusCode);
        await _node.WaitForVmAsync("sim0", "Ready");

        Assert.Equal(HttpStatusCode.Conflict, (await _node.Http.PostAsync("v1/vms/sim1/pause", null)).StatusCode);
        Assert.Equal(202, (int)(await _node.Http.DeleteAsync("v1/vms/sim1")).StatusCode);
        await _node.Eventually(async () => await _node.GetVmAsync("sim1") is null ? true : (bool?)null, TimeSpan.FromSeconds(30),
            "sim1 to be deleted");
    }
}
