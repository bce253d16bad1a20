using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Disk snapshots through a real node and real QEMU (issue 18). The demo guest counts its boots in its disk's first sector,
/// so each banner says which disk state a boot found: a snapshot taken at boot=1 brings a restored VM and a clone back to
/// boot=2, where the VM's own disk would have said boot=3.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class SnapshotTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_running_vms_snapshot_stays_as_taken_restores_a_stopped_vm_and_clones_into_a_new_vm_and_what_backs_on_it_stays()
    {
        await using var node = await NodeProcess.StartAsync(output);
        var created = await node.CreateVmAsync("origin");
        var layer = Path.Combine(node.DataDir, "pools", "local", "disks", (string)created["id"]! + ".qcow2");
        var first = await node.WaitForVmAsync("origin", "Ready", vm => Banner(vm, "origin boot="));
        Assert.True(Banner(first, "origin boot=1"), $"its first boot: {first["consoleTail"]}");

        // A live snapshot: answered once QEMU writes to its new layer; the file the VM wrote so far is the snapshot's.
        var clock = Stopwatch.StartNew();
        var taken = await node.Http.PostAsJsonAsync("v1/vms/origin/snapshots", new { name = "s1" });
        var snapshotTime = clock.Elapsed;
        Assert.Equal(HttpStatusCode.Created, taken.StatusCode);
        var snapshot = JsonNode.Parse(await taken.Content.ReadAsStringAsync())!;
        Assert.True((bool)snapshot["ready"]!, $"the snapshot is whole when answered: {snapshot}");
        Assert.Equal("origin", (string?)snapshot["vm"]);
        Assert.Equal((int)first["pid"]!, (int)(await node.GetVmAsync("origin"))!["pid"]!); // taken without a restart
        var frozen = Hash(layer);
        output.WriteLine($"snapshot of a running VM (TCG, no guest agent: crash-consistent): {snapshotTime.TotalMilliseconds:F0} ms");

        // Another tenant sees neither the VM nor its snapshots.
        using var bravo = node.ClientWith(await node.TenantKeyAsync("bravo"));
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.GetAsync("v1/vms/origin/snapshots")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.PostAsJsonAsync("v1/vms/origin/snapshots", new { name = "s2" })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.DeleteAsync("v1/vms/origin/snapshots/s1")).StatusCode);
        Assert.Equal("[]", await bravo.GetStringAsync("v1/snapshots"));

        // The next boot writes to the new layer: 2. The snapshot's file did not change.
        await RestartAsync(node, "origin");
        var second = await node.WaitForVmAsync("origin", "Ready", vm => Banner(vm, "origin boot="));
        Assert.True(Banner(second, "origin boot=2"), $"the boot after the snapshot: {second["consoleTail"]}");
        Assert.Equal(frozen, Hash(layer));

        // Restore: refused while it runs; once stopped, its disk is a new layer on s1, so the next boot finds 1 again and says 2.
        var running = await node.Http.PostAsync("v1/vms/origin/snapshots/s1/restore", null);
        Assert.Equal(HttpStatusCode.Conflict, running.StatusCode);
        Assert.Contains("only while stopped", await running.Content.ReadAsStringAsync());
        Assert.Equal(202, (int)(await node.Http.PostAsync("v1/vms/origin/stop", null)).StatusCode);
        await node.WaitForVmAsync("origin", "Stopped");
        Assert.Equal(HttpStatusCode.OK, (await node.Http.PostAsync("v1/vms/origin/snapshots/s1/restore", null)).StatusCode);
        Assert.Equal(202, (int)(await node.Http.PostAsync("v1/vms/origin/start", null)).StatusCode);
        var restored = await node.WaitForVmAsync("origin", "Ready", vm => Banner(vm, "origin boot=") && (int)vm["pid"]! != (int)second["pid"]!);
        Assert.True(Banner(restored, "origin boot=2"), $"the boot after the restore finds the snapshot's count (else boot=3): {restored["consoleTail"]}");
        Assert.Equal(frozen, Hash(layer));

        // A clone boots on a copy-on-write overlay of s1: the snapshot's count, then its own.
        clock.Restart();
        var clone = await node.Http.PostAsJsonAsync("v1/vms", new { name = "copy", vcpus = 1, memoryMiB = 256, image = "demo", fromSnapshot = "origin/s1" });
        var cloneTime = clock.Elapsed;
        Assert.Equal(HttpStatusCode.Created, clone.StatusCode);
        var copy = await node.WaitForVmAsync("copy", "Ready", vm => Banner(vm, "copy boot="));
        var cloneBoot = clock.Elapsed;
        Assert.True(Banner(copy, "copy boot=2"), $"the clone's first boot finds the snapshot's count: {copy["consoleTail"]}");
        Assert.Equal(frozen, Hash(layer));
        output.WriteLine($"clone from a snapshot: {cloneTime.TotalMilliseconds:F0} ms to create, {cloneBoot.TotalSeconds:F1} s to its ready banner (TCG)");

        // s1 is what origin's disk and the clone are overlays on: not deletable, and the refusal says why.
        var refused = await node.Http.DeleteAsync("v1/vms/origin/snapshots/s1");
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("overlay on it", await refused.Content.ReadAsStringAsync());
        var refusedVm = await node.Http.DeleteAsync("v1/vms/origin");
        Assert.Equal(HttpStatusCode.Conflict, refusedVm.StatusCode);
        Assert.Contains("VM 'copy' is a clone", await refusedVm.Content.ReadAsStringAsync());

        // Gone the clone, origin goes with its snapshots: no layer of either is left in the pool.
        foreach (var name in new[] { "copy", "origin" })
        {
            Assert.Equal(202, (int)(await node.Http.DeleteAsync($"v1/vms/{name}")).StatusCode);
            await node.Eventually(async () => await node.GetVmAsync(name) is null ? (bool?)true : null, TimeSpan.FromSeconds(60), $"VM {name} to be deleted");
        }

        await node.Eventually(() => Task.FromResult<bool?>(Directory.GetFiles(Path.GetDirectoryName(layer)!, "*.qcow2").Length == 0 ? true : null),
            TimeSpan.FromSeconds(30), "every disk layer to be gone from the pool");
        Assert.Equal("[]", await node.Http.GetStringAsync("v1/snapshots"));
    }

    private static async Task RestartAsync(NodeProcess node, string name)
    {
        var before = (int)(await node.GetVmAsync(name))!["pid"]!;
        Assert.Equal(202, (int)(await node.Http.PostAsync($"v1/vms/{name}/stop", null)).StatusCode);
        await node.WaitForVmAsync(name, "Stopped");
        Assert.Equal(202, (int)(await node.Http.PostAsync($"v1/vms/{name}/start", null)).StatusCode);
        await node.WaitForVmAsync(name, "Ready", vm => (int?)vm["pid"] is { } pid && pid != before);
    }

    private static string Hash(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return Convert.ToHexString(SHA256.HashData(file));
    }

    private static bool Banner(JsonObject vm, string nameAndBoot) =>
        vm["consoleTail"]?.AsArray().Any(line => ((string?)line)?.Contains($"ORCHESTRATOR-GUEST-READY {nameAndBoot}") == true) == true;
}
