using System.Text.Json.Nodes;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Three nodes on three separate network namespaces (cluster/netns.sh), one cut off for real. The minority must kill
/// its VMs before the majority boots them again: a sampler of every host's QEMU processes proves no VM ran twice.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class PartitionTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Prefix = "orcpt";
    private const string Subnet = "10.232.0";
    private const int VmCount = 6;
    private readonly string _shared = Directory.CreateTempSubdirectory("orc").FullName;
    private readonly NodeProcess?[] _nodes = new NodeProcess?[3];
    private DoubleRunSampler? _sampler;

    private static void NetNs(params string[] args) => new NetworkNamespaces(Prefix, Subnet).Run(args);

    public async Task InitializeAsync()
    {
        NetNs("down");
        NetNs("up", "3");
        for (var i = 0; i < 3; i++)
        {
            var args = new List<string>
            {
                "--config", Path.Combine(Checkout.Root(), "cluster", "cluster.conf"),
                "--set", $"orchestrator.host-id=h{i + 1}",
                "--seed", $"akka.tcp://orchestrator@{Subnet}.1:4053",
                "--seed", $"akka.tcp://orchestrator@{Subnet}.2:4053",
                "--seed", $"akka.tcp://orchestrator@{Subnet}.3:4053",
            };
            if (i == 0)
            {
                args.Add("--bootstrap");
            }

            _nodes[i] = await NodeProcess.StartAsync(output, $"""
                orchestrator.cluster.hostname = "{Subnet}.{i + 1}"
                orchestrator.cluster.port = 4053
                orchestrator.persistence.sqlite-file = "{_shared}/journal.db"
                orchestrator.secrets.key-file = "{_shared}/secrets.key"
                orchestrator.host.fence-after = 3s
                orchestrator.storage.pools.shared.path = "{_shared}/pool"
                orchestrator.storage.pools.shared.shared = on
                """, extraArgs: args, launcher: ["ip", "netns", "exec", $"{Prefix}-h{i + 1}"], listen: $"{Subnet}.{i + 1}:0");
        }

        await _nodes[0]!.Eventually(async () =>
            JsonNode.Parse(await _nodes[0]!.Http.GetStringAsync("v1/hosts"))!.AsArray().Count(h => (string?)h!["state"] == "Up") == 3
                ? true : (bool?)null, TimeSpan.FromSeconds(60), "three hosts Up");
        _sampler = new DoubleRunSampler(_nodes.Select(n => n!.RunDir).ToList());
    }

    public async Task DisposeAsync()
    {
        if (_sampler is not null)
        {
            await _sampler.DisposeAsync();
        }

        foreach (var node in _nodes)
        {
            if (node is not null)
            {
                await node.DisposeAsync();
            }
        }

        NetNs("down");
        Directory.Delete(_shared, recursive: true);
    }

    [Fact]
    public async Task A_partitioned_host_kills_its_vms_before_the_majority_boots_them_again()
    {
        var majority = _nodes[0]!;
        for (var i = 0; i < VmCount; i++)
        {
            await majority.CreateVmAsync($"svc{i}", restartPolicy: "always");
        }

        var placed = await majority.Eventually(async () =>
        {
            var vms = JsonNode.Parse(await majority.Http.GetStringAsync("v1/vms"))!.AsArray().Select(v => v!.AsObject()).ToList();
            return vms.All(v => (string?)v["state"] == "Ready") && vms.Count == VmCount ? vms : null;
        }, TimeSpan.FromSeconds(180), "all VMs Ready");
        var isolated = placed.Where(v => (string?)v["host"] == "h3").Select(v => (string)v["name"]!).ToList();
        Assert.NotEmpty(isolated);
        var isolatedPids = _nodes[2]!.QemuProcesses().Values.ToList();

        NetNs("partition", "3");
        await majority.Eventually(async () =>
        {
            var vms = JsonNode.Parse(await majority.Http.GetStringAsync("v1/vms"))!.AsArray().Select(v => v!.AsObject()).ToList();
            return vms.All(v => (string?)v["state"] == "Ready" && (string?)v["host"] != "h3") ? true : (bool?)null;
        }, TimeSpan.FromSeconds(90), "the cut-off host's VMs Ready on the majority");
        Assert.All(isolatedPids, pid => Assert.False(ProcessTable.IsAlive(pid), $"QEMU {pid} on the cut-off host still runs"));

        NetNs("heal", "3");
        // The minority downed itself (keep-majority): its node leaves rather than rejoining with stale VMs.
        await majority.Eventually(() => Task.FromResult<bool?>(_nodes[2]!.HasExited), TimeSpan.FromSeconds(60), "the minority node to leave");
        Assert.Empty(_nodes[2]!.QemuProcesses());
        Assert.True(_sampler!.DoubleRuns == 0, _sampler.Describe());
        output.WriteLine($"samples: {_sampler.Samples}, max processes per VM: {_sampler.MaxPerVm}");
    }
}
