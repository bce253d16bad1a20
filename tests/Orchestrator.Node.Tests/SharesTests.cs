using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Orchestrator.Actors.Hosts;
using Orchestrator.Domain;
using Orchestrator.Hypervisor.Cgroups;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Shares, reservations and limits on real guests: what the scheduler promises against the CPU time their QEMU
/// processes really got, and the per-VM cgroups that enforce it.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class SharesTests(ITestOutputHelper output)
{
    private static readonly CgroupLayout Cgroups = CgroupLayout.Detect();

    [Fact]
    public async Task Burning_guests_on_one_cpu_get_their_entitlement_and_a_change_on_running_guests_moves_it()
    {
        Assert.True(Cgroups.Version != CgroupVersion.None, $"this test needs cgroups: {Cgroups.Problem}");
        using var quiet = await QuietMachine.HoldAsync(output);
        var run = await OrchestratorCommand.RunToolAsync(output, ["bench", "shares", "--window", "5", "--output", "json"], TimeSpan.FromMinutes(5));
        Assert.True(run.ExitCode == 0, $"bench shares failed:\n{run.Error}");

        var result = JsonNode.Parse(run.Out)!.AsObject();
        var vms = result["vms"]!.AsArray().Select(v => v!.AsObject()).ToList();
        double Measured(string phase, string vm) => (double)vms.Single(v => ((string)v["phase"]!).StartsWith(phase, StringComparison.Ordinal) && (string?)v["vm"] == vm)["measured"]!;

        // Every VM got its entitlement within 15 % (CPU time of its QEMU process, not wall-clock speed).
        foreach (var vm in vms)
        {
            Assert.True(Math.Abs((double)vm["relative_error"]!) <= 0.15,
                $"{vm["phase"]} {vm["vm"]}: entitled {vm["entitled"]}, measured {vm["measured"]}");
        }

        // 2:1:1 under contention.
        var ratio = Measured("shares", "share-a") / Measured("shares", "share-b");
        Assert.InRange(ratio, 2 * 0.85, 2 * 1.15);
        // The limited VM never above its limit + 5 %; the reserved one gets its reservation while the others burn.
        Assert.True(Measured("reservation", "share-b") <= 0.100 * 1.05, $"share-b limited to 100m got {Measured("reservation", "share-b")}");
        Assert.True(Measured("reservation", "share-a") >= 0.600 * 0.95, $"share-a reserved 600m got {Measured("reservation", "share-a")}");
        // The change was made on running guests and moved what they get.
        Assert.True(Measured("reservation", "share-c") > Measured("shares", "share-c") * 1.1);
        // Tenant pools weighed 1:3: a alone gets a quarter, b and c share three quarters.
        Assert.InRange(Measured("tenant pools", "share-a"), 0.25 * 0.85, 0.25 * 1.15);
        Assert.InRange(Measured("tenant pools", "share-b") + Measured("tenant pools", "share-c"), 0.75 * 0.85, 0.75 * 1.15);
        Assert.Equal(0, (int)result["cgroups_left"]!);
    }

    [Fact]
    public async Task Each_vm_runs_in_its_own_cgroup_which_goes_with_the_vm_and_with_a_node_restart()
    {
        Assert.True(Cgroups.Version != CgroupVersion.None, $"this test needs cgroups: {Cgroups.Problem}");
        var hostId = $"cg-{Guid.NewGuid():N}"[..16];
        var cgroups = new VmCgroups(Cgroups, HostCgroups.Scope(new HostId(hostId)));
        try
        {
            await using var node = await NodeProcess.StartAsync(output, $"orchestrator.host-id = \"{hostId}\"");
            await node.CreateVmAsync("keep");
            await node.CreateVmAsync("gone");
            var keep = await node.WaitForVmAsync("keep", "Ready");
            var gone = await node.WaitForVmAsync("gone", "Ready");
            var keepId = IdOf(keep);
            var goneId = IdOf(gone);
            Assert.Contains((int)keep["pid"]!, cgroups.Open(keepId).Processes());
            Assert.Contains((int)gone["pid"]!, cgroups.Open(goneId).Processes());

            // Changing a running VM's resources is enforced on its cgroup.
            var patched = await node.Http.PatchAsJsonAsync("v1/vms/keep/resources", new { cpuLimitMillicores = 250, cpuShares = 4096 });
            Assert.Equal(HttpStatusCode.Accepted, patched.StatusCode);
            var shown = await node.WaitForVmAsync("keep", "Ready", vm => (int?)vm["resources"]!["cpuLimitMillicores"] == 250);
            Assert.Equal(4096, (int)shown["resources"]!["cpuShares"]!);
            await node.Eventually(() => Task.FromResult<bool?>(QuotaOf(cgroups, keepId) == "25000"), TimeSpan.FromSeconds(10),
                "the 250m limit as a 25 ms CFS quota");

            var bad = await node.Http.PatchAsJsonAsync("v1/vms/keep/resources", new { cpuLimit = 5 });
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("cpuLimit", await bad.Content.ReadAsStringAsync());
            Assert.Equal(HttpStatusCode.NotFound, (await node.Http.PatchAsJsonAsync("v1/vms/nobody/resources", new { cpuShares = 10 })).StatusCode);

            await node.Http.DeleteAsync("v1/vms/gone");
            await node.Eventually(async () => await node.GetVmAsync("gone") is null, TimeSpan.FromSeconds(30), "gone to be deleted");
            await node.Eventually(() => Task.FromResult<bool?>(!cgroups.List().Contains(goneId)), TimeSpan.FromSeconds(15),
                "the deleted VM's cgroup to be removed");

            // Cgroups outlive a node stop, as its VMs do; the next start keeps the adopted VM's and removes the rest.
            await node.StopAsync();
            var stray = VmId.New();
            cgroups.Open(stray);
            await node.StartAgainAsync();
            var adopted = await node.WaitForVmAsync("keep", "Ready");
            Assert.Equal((int)keep["pid"]!, (int)adopted["pid"]!);
            await node.Eventually(() => Task.FromResult<bool?>(!cgroups.List().Contains(stray)), TimeSpan.FromSeconds(15),
                "the stray cgroup to be removed after the restart");
            Assert.Contains((int)keep["pid"]!, cgroups.Open(keepId).Processes());
            Assert.Equal([keepId], cgroups.List());
        }
        finally
        {
            cgroups.RemoveAll(TimeSpan.FromSeconds(10));
        }
    }

    private static VmId IdOf(JsonObject vm) =>
        VmId.TryParse((string?)vm["id"], out var id) ? id : throw new InvalidOperationException($"no id in {vm}");

    private static string? QuotaOf(VmCgroups cgroups, VmId vm)
    {
        var file = Path.Combine(cgroups.Open(vm).Path, Cgroups.Version == CgroupVersion.V1 ? "cpu.cfs_quota_us" : "cpu.max");
        var text = File.Exists(file) ? File.ReadAllText(file).Trim() : null;
        return text?.Split(' ')[0];
    }
}
