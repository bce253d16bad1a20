using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Disks and volumes on an rbd pool of a real Ceph cluster (one monitor, one OSD on a file): the demo guest counts its
/// boots on a disk QEMU reads and writes through its rbd driver, a live snapshot freezes a layer in Ceph that a clone
/// boots on, and deletes leave nothing in the pool.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class RbdStorageTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_vm_on_an_rbd_pool_keeps_its_boot_count_in_ceph_snapshots_and_clones_there_and_delete_leaves_nothing()
    {
        await using var ceph = await CephCluster.StartAsync();
        await using var node = await NodeProcess.StartAsync(output, $$"""
            orchestrator.storage.pools.ceph {
              kind = rbd
              ceph-conf = "{{ceph.ConfPath}}"
              ceph-pool = {{CephCluster.Pool}}
              capacity-gib = 50
            }
            """);

        var volume = await node.Http.PostAsJsonAsync("v1/volumes", new { name = "data1", sizeGiB = 1 });
        Assert.Equal(HttpStatusCode.Created, volume.StatusCode);
        var volumeId = (string)JsonNode.Parse(await volume.Content.ReadAsStringAsync())!["id"]!;
        var created = await node.Http.PostAsJsonAsync("v1/vms", new { name = "keeper", vcpus = 1, memoryMiB = 256, image = "demo", volumes = new[] { "data1" } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var id = (string)JsonNode.Parse(await created.Content.ReadAsStringAsync())!["id"]!;

        var first = await node.WaitForVmAsync("keeper", "Ready", vm => Banner(vm, "keeper boot="), seconds: 120);
        Assert.True(Banner(first, "keeper boot=1"), $"its first boot: {first["consoleTail"]}");
        Assert.Equal("ceph", (string?)first["disk"]!["pool"]);
        Assert.Null((string?)first["disk"]!["pinnedTo"]); // Ceph is reached from every host: the disk follows its VM
        var images = await ceph.ImagesAsync();
        Assert.Contains($"disk-{id}", images);
        Assert.Contains($"vol-{volumeId}", images);
        Assert.DoesNotContain(images, image => image.StartsWith("partial-", StringComparison.Ordinal));

        // The count lives in Ceph: a stop and start (a new QEMU) finds 1 and says 2.
        Assert.Equal(202, (int)(await node.Http.PostAsync("v1/vms/keeper/stop", null)).StatusCode);
        await node.WaitForVmAsync("keeper", "Stopped");
        Assert.Equal(202, (int)(await node.Http.PostAsync("v1/vms/keeper/start", null)).StatusCode);
        var second = await node.WaitForVmAsync("keeper", "Ready", vm => Banner(vm, "keeper boot=") && (int)vm["pid"]! != (int)first["pid"]!, seconds: 120);
        Assert.True(Banner(second, "keeper boot=2"), $"the second boot reads its count back from Ceph: {second["consoleTail"]}");

        // A live snapshot makes a new top layer in Ceph; a clone boots on the frozen one and finds its count.
        var taken = await node.Http.PostAsJsonAsync("v1/vms/keeper/snapshots", new { name = "s1" });
        Assert.Equal(HttpStatusCode.Created, taken.StatusCode);
        var clone = await node.Http.PostAsJsonAsync("v1/vms", new { name = "copy", vcpus = 1, memoryMiB = 256, image = "demo", fromSnapshot = "keeper/s1" });
        Assert.Equal(HttpStatusCode.Created, clone.StatusCode);
        var copy = await node.WaitForVmAsync("copy", "Ready", vm => Banner(vm, "copy boot="), seconds: 120);
        Assert.True(Banner(copy, "copy boot=3"), $"the clone's first boot finds the snapshot's count: {copy["consoleTail"]}");
        Assert.True((await ceph.ImagesAsync()).Count >= 4, "disk, volume, the snapshot's frozen layer and the clone's are images in the pool");

        foreach (var vm in new[] { "copy", "keeper" })
        {
            Assert.Equal(202, (int)(await node.Http.DeleteAsync($"v1/vms/{vm}")).StatusCode);
            await node.Eventually(async () => await node.GetVmAsync(vm) is null ? (bool?)true : null, TimeSpan.FromSeconds(90), $"VM {vm} to be deleted");
        }

        Assert.Equal(HttpStatusCode.NoContent, (await node.Http.DeleteAsync("v1/volumes/data1")).StatusCode);
        try
        {
            await node.Eventually(async () => (await ceph.ImagesAsync()).Count == 0 ? (bool?)true : null, TimeSpan.FromSeconds(120),
                "every image to be gone from the pool");
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"left in the pool: {string.Join(", ", await ceph.ImagesAsync())}; {ex.Message}", ex);
        }
    }

    private static bool Banner(JsonObject vm, string nameAndBoot) =>
        vm["consoleTail"]?.AsArray().Any(line => ((string?)line)?.Contains($"ORCHESTRATOR-GUEST-READY {nameAndBoot}") == true) == true;
}
