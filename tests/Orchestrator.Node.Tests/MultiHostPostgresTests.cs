using System.Diagnostics;
using System.Text.Json.Nodes;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// The cluster as it is deployed across machines (<see cref="MultiHostCluster"/>: a network namespace per host, one
/// PostgreSQL on the underlay, host leases on): a partition, the scheduler's node lost (a host loss too), and a whole host
/// frozen and thawed. Each test prints how long the cluster took from the fault to every VM Ready again.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class MultiHostPostgresTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int VmCount = 4; // spread over three hosts: every host runs one or two
    private MultiHostCluster _cluster = null!;

    public async Task InitializeAsync() =>
        _cluster = await MultiHostCluster.StartAsync(output, new NetworkNamespaces("orcmh", "10.236.0"), hosts: 3);

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }

    private void AssertNoDoubleRun()
    {
        Assert.True(_cluster.Sampler.DoubleRuns == 0, _cluster.Sampler.Describe());
        output.WriteLine($"samples: {_cluster.Sampler.Samples}, max processes per VM: {_cluster.Sampler.MaxPerVm}");
    }

    [Fact]
    public async Task A_partitioned_host_is_fenced_its_vms_run_on_the_majority_and_it_leaves_after_the_heal()
    {
        var majority = _cluster.Node(1);
        await MultiHostCluster.CreateReadyVmsAsync(majority, "svc", VmCount);
        var stale = _cluster.Node(3).QemuProcesses().Values.ToList();
        Assert.NotEmpty(stale);

        var clock = Stopwatch.StartNew();
        _cluster.Network.Run("partition", "3"); // cut off from the other hosts and from PostgreSQL alike
        await MultiHostCluster.WaitForVmsAsync(majority, MultiHostCluster.AllReadyAwayFrom("h3", VmCount),
            TimeSpan.FromSeconds(120), "the cut-off host's VMs Ready on the majority");
        output.WriteLine($"failover: partition of h3 → all {VmCount} VMs Ready on the majority: {clock.Elapsed.TotalSeconds:F1} s");
        Assert.All(stale, pid => Assert.False(ProcessTable.IsAlive(pid), $"QEMU {pid} on the cut-off host still runs"));

        _cluster.Network.Run("heal", "3");
        var minority = _cluster.Node(3);
        await majority.Eventually(() => Task.FromResult<bool?>(minority.HasExited), TimeSpan.FromSeconds(60), "the minority node to leave");
        Assert.Empty(minority.QemuProcesses());
        Assert.Equal(VmCount, (await MultiHostCluster.VmsAsync(majority)).Count);
        AssertNoDoubleRun();
    }

    [Fact]
    public async Task Killing_the_scheduler_s_node_moves_the_scheduler_and_loses_no_acknowledged_vm()
    {
        var client = _cluster.Node(2);
        var before = await MultiHostCluster.CreateReadyVmsAsync(client, "db", VmCount);
        var moved = before.Where(v => (string?)v["host"] == "h1").Select(v => (string)v["name"]!).ToList();
        Assert.NotEmpty(moved);
        var stale = _cluster.Node(1).QemuProcesses().Values.ToList();

        var clock = Stopwatch.StartNew();
        _cluster.Node(1).Kill(); // the oldest member: the singleton lives there, and so do some of the VMs
        var after = await MultiHostCluster.WaitForVmsAsync(client, MultiHostCluster.AllReadyAwayFrom("h1", VmCount),
            TimeSpan.FromSeconds(150), "the scheduler to move and h1's VMs to be Ready elsewhere");
        output.WriteLine($"failover: kill -9 of the scheduler's node h1 → all {VmCount} VMs Ready ({moved.Count} moved): {clock.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(before.Select(v => (string)v["id"]!).Order(), after.Select(v => (string)v["id"]!).Order());
        Assert.All(after.Where(v => moved.Contains((string)v["name"]!)), vm => Assert.Equal(2, (long)vm["epoch"]!));
        Assert.All(stale, pid => Assert.False(ProcessTable.IsAlive(pid), $"QEMU {pid} of the killed host still runs"));

        await client.CreateVmAsync("after-failover");
        await client.WaitForVmAsync("after-failover", "Ready");
        AssertNoDoubleRun();
    }

    [Fact]
    public async Task A_whole_host_frozen_past_the_replacement_delay_kills_its_stale_guests_when_it_thaws()
    {
        var majority = _cluster.Node(1);
        var frozenNode = _cluster.Node(3);
        var before = await MultiHostCluster.CreateReadyVmsAsync(majority, "app", VmCount);
        var stale = frozenNode.QemuProcesses().Values.ToList();
        Assert.NotEmpty(stale);
        var freezer = _cluster.Freezer(3);
        Assert.All(stale, pid => Assert.Contains(pid, freezer.Pids)); // the guests froze with their host, not just its node

        await freezer.FreezeAsync();
        var thawed = false;
        TimeSpan samplerThaw = default, staleGoneOnSampler = default;
        try
        {
            // The majority re-places the frozen host's VMs (its lease expired and was revoked) while they still exist
            // there, frozen.
            await MultiHostCluster.WaitForVmsAsync(majority, vms => vms.All(v => (string?)v["host"] != "h3"),
                TimeSpan.FromSeconds(120), "the frozen host's VMs re-placed");
            await majority.CreateVmAsync("during-freeze", restartPolicy: "always"); // acknowledged while h3 is frozen
            output.WriteLine($"while frozen: {await HoldWhileReplacedCopiesStartAsync(majority, stale.Count)}");

            var thawedAt = DateTime.UtcNow;
            var thawedOnSampler = _cluster.Sampler.Now;
            var clock = Stopwatch.StartNew();
            freezer.Thaw();
            thawed = true;
            while (stale.Any(ProcessTable.IsAlive) && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                Thread.Sleep(1);
            }

            var overlap = clock.Elapsed;
            staleGoneOnSampler = _cluster.Sampler.Now;
            samplerThaw = thawedOnSampler;
            Assert.All(stale, pid => Assert.False(ProcessTable.IsAlive(pid), $"stale QEMU {pid} still runs 30 s after its host thawed"));
            output.WriteLine($"overlap: the stale guests ran {overlap.TotalMilliseconds:F1} ms after the thaw before all {stale.Count} were dead");
            output.WriteLine("guard: " + string.Join("\n  ", File.ReadLines(Path.Combine(frozenNode.RunDir, "guard.log"))
                .Where(line => line.Contains("fencing", StringComparison.Ordinal) || line.Contains("killed", StringComparison.Ordinal))));
            output.WriteLine($"thawed at {thawedAt:HH:mm:ss.fff}Z");
        }
        finally
        {
            if (!thawed)
            {
                freezer.Thaw();
            }
        }

        var after = await MultiHostCluster.WaitForVmsAsync(majority, MultiHostCluster.AllReadyAwayFrom("h3", VmCount + 1),
            TimeSpan.FromSeconds(120), "every VM Ready away from the thawed host");
        Assert.Equal(before.Select(v => (string)v["id"]!).Order(), after.Where(v => (string)v["name"]! != "during-freeze").Select(v => (string)v["id"]!).Order());
        await majority.Eventually(() => Task.FromResult<bool?>(frozenNode.HasExited), TimeSpan.FromSeconds(60), "the thawed node to leave");
        Assert.Empty(frozenNode.QemuProcesses());
        // A VM may have run twice only in the overlap, between the thaw and its stale copy's death: never after.
        var sampler = _cluster.Sampler;
        Assert.True(sampler.DoubleRuns == 0 || sampler.LastDoubleRunAt <= staleGoneOnSampler && sampler.FirstDoubleRunAt >= samplerThaw,
            sampler.Describe());
        output.WriteLine($"samples: {sampler.Samples}, with a VM running twice (in the overlap): {sampler.DoubleRuns}");
    }

    /// <summary>
    /// Keeps the host frozen while the re-placed copies try to start elsewhere, until they are all Ready or 20 s
    /// passed: on a shared pool a frozen copy still holds its disk's lock, so its new copy cannot open the disk yet.
    /// Says what it saw.
    /// </summary>
    private async Task<string> HoldWhileReplacedCopiesStartAsync(NodeProcess majority, int moved)
    {
        var clock = Stopwatch.StartNew();
        var states = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            var replaced = (await MultiHostCluster.VmsAsync(majority)).Where(v => (long)v["epoch"]! > 1).ToList();
            states = string.Join(", ", replaced.Select(v => $"{v["name"]} {v["state"]} on {v["host"]}"));
            if (replaced.Count == moved && replaced.All(v => (string?)v["state"] == "Ready"))
            {
                break;
            }

            await Task.Delay(500);
        }

        return $"{states} after {clock.Elapsed.TotalSeconds:F1} s";
    }
}
