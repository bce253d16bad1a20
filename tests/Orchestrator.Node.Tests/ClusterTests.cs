using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Three real node processes on loopback sharing one SQLite journal, with the small-cluster timings of
/// cluster/cluster.conf. A sampler watches every host's QEMU processes for the whole test: no VM may ever run twice.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class ClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int VmCount = 4; // spread over three hosts: every host runs one or two
    private readonly string _shared = Directory.CreateTempSubdirectory("orc").FullName;
    // A fourth slot for a host that joins later; it is a seed of the others only once it runs.
    private readonly NodeProcess?[] _nodes = new NodeProcess?[4];
    private readonly int[] _ports = [Checkout.FreePort(), Checkout.FreePort(), Checkout.FreePort(), Checkout.FreePort()];
    private DoubleRunSampler _sampler = null!;

    private static string ClusterConf =>
        Path.Combine(Checkout.Root(), "cluster", "cluster.conf");

    private string Address(int i) => $"akka.tcp://orchestrator@127.0.0.1:{_ports[i]}";

    public async Task InitializeAsync()
    {
        _nodes[0] = await StartNodeAsync(0, bootstrap: true);
        // The others start side by side and join the first.
        var second = StartNodeAsync(1);
        var third = StartNodeAsync(2);
        try
        {
            await Task.WhenAll(second, third);
        }
        finally
        {
            _nodes[1] = second.IsCompletedSuccessfully ? second.Result : null;
            _nodes[2] = third.IsCompletedSuccessfully ? third.Result : null;
        }

        await _nodes[0]!.Eventually(async () => UpHosts(await Hosts(_nodes[0]!)) == 3 ? true : (bool?)null,
            TimeSpan.FromSeconds(60), "three hosts Up");
        _sampler = new DoubleRunSampler(_nodes.Take(3).Select(n => n!.RunDir).ToList());
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

        Directory.Delete(_shared, recursive: true);
    }

    private Task<NodeProcess> StartNodeAsync(int i, bool bootstrap = false, string? dataDir = null)
    {
        var args = new List<string> { "--config", ClusterConf, "--set", $"orchestrator.host-id=h{i + 1}" };
        for (var s = 0; s < 3; s++)
        {
            if (s != i || bootstrap)
            {
                args.AddRange(["--seed", Address(s)]);
            }
        }

        if (bootstrap)
        {
            args.Add("--bootstrap");
        }

        return NodeProcess.StartAsync(output, $"""
            orchestrator.cluster.port = {_ports[i]}
            orchestrator.persistence.sqlite-file = "{_shared}/journal.db"
            orchestrator.secrets.key-file = "{_shared}/secrets.key"
            orchestrator.host.fence-after = 3s
            orchestrator.storage.pools.shared.path = "{_shared}/pool"
            orchestrator.storage.pools.shared.shared = on
            """, dataDir, args, waitForScheduler: i == 0 || !bootstrap);
    }

    private static async Task<JsonArray> Hosts(NodeProcess node) =>
        JsonNode.Parse(await node.Http.GetStringAsync("v1/hosts"))!.AsArray();

    private static int UpHosts(JsonArray hosts) => hosts.Count(h => (string?)h!["state"] == "Up");

    private static async Task<JsonArray> Vms(NodeProcess node) =>
        JsonNode.Parse(await node.Http.GetStringAsync("v1/vms"))!.AsArray();

    private async Task<List<JsonObject>> CreateReadyVmsAsync(NodeProcess via, string prefix)
    {
        for (var i = 0; i < VmCount; i++)
        {
            await via.CreateVmAsync($"{prefix}{i}", restartPolicy: "always");
        }

        return await via.Eventually(async () =>
        {
            var vms = (await Vms(via)).Select(v => v!.AsObject()).Where(v => ((string)v["name"]!).StartsWith(prefix)).ToList();
            return vms.Count == VmCount && vms.All(v => (string?)v["state"] == "Ready") ? vms : null;
        }, TimeSpan.FromSeconds(180), $"{VmCount} VMs Ready");
    }

    /// <remarks>
    /// The host is frozen (SIGSTOP), not killed: to the others that is a host lost like any other, and on top the frozen
    /// node, thawed, must learn that it was removed and leave without resuming a VM whose epoch moved on. Then it comes
    /// back on its data dir like a restarted host.
    /// </remarks>
    [Fact]
    public async Task A_lost_host_s_vms_restart_on_survivors_the_thawed_host_resumes_none_and_it_rejoins_for_new_work()
    {
        var before = await CreateReadyVmsAsync(_nodes[0]!, "web");
        var onH3 = before.Where(v => (string?)v["host"] == "h3").Select(v => (string)v["name"]!).ToHashSet();
        Assert.NotEmpty(onH3); // spread placement put some on every host
        var h3 = _nodes[2]!;
        var h3Processes = h3.QemuProcesses().Values.ToList();

        NodeProcess.Signal(h3.Pid, "STOP");
        List<JsonObject> after;
        try
        {
            after = await _nodes[0]!.Eventually(async () =>
            {
                var vms = (await Vms(_nodes[0]!)).Select(v => v!.AsObject()).ToList();
                return vms.Count == VmCount && vms.All(v => (string?)v["state"] == "Ready" && (string?)v["host"] != "h3") ? vms : null;
            }, TimeSpan.FromSeconds(90), "every VM Ready on the survivors");
        }
        finally
        {
            NodeProcess.Signal(h3.Pid, "CONT");
        }

        foreach (var vm in after.Where(v => onH3.Contains((string)v["name"]!)))
        {
            Assert.Equal(2, (long)vm["epoch"]!);
            // Its disk on the shared pool followed it: the guest booted a second time on the same disk.
            var name = (string)vm["name"]!;
            await _nodes[0]!.WaitForVmAsync(name, "Ready", v => v["consoleTail"]?.AsArray()
                .Any(line => ((string?)line)?.Contains($"ORCHESTRATOR-GUEST-READY {name} boot=2") == true) == true);
        }

        Assert.Equal("Down", (string?)(await Hosts(_nodes[0]!)).Single(h => (string?)h!["id"] == "h3")!["state"]);
        // Thawed, it learns it was removed and leaves; meanwhile it must not start anything, and its fence guard killed
        // the guests it had.
        await h3.Eventually(() => Task.FromResult<bool?>(h3.HasExited), TimeSpan.FromSeconds(60), "the thawed node to leave");
        Assert.Empty(h3.QemuProcesses());
        Assert.All(h3Processes, pid => Assert.False(ProcessTable.IsAlive(pid), $"QEMU {pid} of the lost host still runs"));
        Assert.Equal(VmCount, (await Vms(_nodes[0]!)).Count);

        // The host comes back on its data dir: it rejoins, runs nothing stale, and takes new work (spread prefers the
        // empty host).
        await h3.StartAgainAsync();
        await _nodes[0]!.Eventually(async () => UpHosts(await Hosts(_nodes[0]!)) == 3 ? true : (bool?)null,
            TimeSpan.FromSeconds(60), "h3 Up again");
        await _nodes[0]!.CreateVmAsync("fresh");
        var fresh = await _nodes[0]!.WaitForVmAsync("fresh", "Ready");
        Assert.Equal("h3", (string?)fresh["host"]);

        Assert.True(_sampler.DoubleRuns == 0, _sampler.Describe());
        output.WriteLine($"samples: {_sampler.Samples}, max processes per VM: {_sampler.MaxPerVm}");
    }

    [Fact]
    public async Task An_anti_affinity_group_keeps_its_members_apart_through_a_host_loss_and_takes_the_next_host_that_joins()
    {
        var node = _nodes[0]!;
        var group = await node.Http.PostAsJsonAsync("v1/groups", new { name = "web", policy = "anti-affinity" });
        Assert.Equal(HttpStatusCode.Created, group.StatusCode);
        for (var i = 0; i < 3; i++)
        {
            var created = await node.Http.PostAsJsonAsync("v1/vms",
                new { name = $"web{i}", vcpus = 1, memoryMiB = 128, image = "demo", restartPolicy = "always", group = "web" });
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var placed = await node.Eventually(async () =>
        {
            var vms = (await Vms(node)).Select(v => v!.AsObject()).ToList();
            return vms.Count == 3 && vms.All(v => (string?)v["state"] == "Ready") ? vms : null;
        }, TimeSpan.FromSeconds(120), "three members Ready");
        Assert.Equal(["h1", "h2", "h3"], placed.Select(v => (string)v["host"]!).Order());
        var lost = (string)placed.Single(v => (string?)v["host"] == "h3")["name"]!;

        // h3 dies: its member may go to neither survivor (each runs one), so it waits and says why.
        _nodes[2]!.Kill();
        var waiting = await node.Eventually(async () =>
        {
            var vm = await node.GetVmAsync(lost);
            return (string?)vm?["state"] == "Pending" ? vm : null;
        }, TimeSpan.FromSeconds(90), $"{lost} Pending after its host was lost");
        Assert.Contains("anti-affinity group 'web'", (string?)waiting["reason"]);

        // A fourth host joins: the member is placed there, and the group still holds (three hosts, three members).
        _nodes[3] = await StartNodeAsync(3);
        await node.WaitForVmAsync(lost, "Ready");
        var after = (await Vms(node)).Select(v => v!.AsObject()).ToList();
        Assert.Equal(["h1", "h2", "h4"], after.Select(v => (string)v["host"]!).Order());
        Assert.True(_sampler.DoubleRuns == 0, _sampler.Describe());
    }
}
