using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Orchestrator.Domain.Storage;
using Orchestrator.Hypervisor.Storage;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Disks and volumes on an rbd pool of a real Ceph cluster (one monitor, one OSD on a file): the demo guest counts its
/// boots on a disk QEMU reads and writes through its rbd driver, a live snapshot freezes a layer in Ceph that a clone
/// boots on, and deletes leave nothing in the pool, even of an image a QEMU still held when its delete came.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class RbdStorageTests(CephFixture fixture, ITestOutputHelper output) : IClassFixture<CephFixture>
{
    [Fact]
    public async Task A_vm_on_an_rbd_pool_keeps_its_boot_count_in_ceph_snapshots_and_clones_there_and_delete_leaves_nothing()
    {
        var ceph = fixture.Cluster;
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

    /// <summary>
    /// A deleted VM's snapshot layers are let go once its host confirms it stopped, but a killed client's watch outlives it
    /// for Ceph's watch timeout, and the host removes the VM's own disk as its QEMU goes: Ceph refuses to remove a watched
    /// image. The remove waits for the watch to go instead of failing and leaving the image behind for good.
    /// </summary>
    [Fact]
    public async Task An_image_still_open_when_its_delete_comes_is_removed_once_it_is_closed()
    {
        var ceph = fixture.Cluster;
        var pool = new RbdStoragePool(new StoragePoolInfo("ceph", "rbd", 50, 1.0, Shared: true), new RbdLocation(ceph.ConfPath, CephCluster.Pool, null));
        var layer = Guid.NewGuid().ToString("N");
        var image = $"disk-{layer}";
        var disk = await pool.EnsureLayerAsync(layer, null, 1, null, CancellationToken.None);
        using var holder = Process.Start(new ProcessStartInfo("qemu-io", ["-f", "qcow2", disk.DriveFile])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        })!;
        try
        {
            await Eventually(async () => await ceph.WatchersAsync(image) > 0, "qemu-io to open the image (a watcher on it)");

            var removing = pool.DeleteLayerAsync(layer, CancellationToken.None);
            await Task.WhenAny(removing, Task.Delay(TimeSpan.FromSeconds(3)));
            Assert.False(removing.IsFaulted, $"the remove failed while the image was open instead of waiting: {removing.Exception?.GetBaseException().Message}");
            Assert.Contains(image, await ceph.ImagesAsync());

            await holder.StandardInput.WriteLineAsync("quit");
            await holder.StandardInput.FlushAsync();
            await holder.WaitForExitAsync();
            await removing.WaitAsync(TimeSpan.FromMinutes(2));
            Assert.DoesNotContain(image, await ceph.ImagesAsync());
        }
        finally
        {
            if (!holder.HasExited)
            {
                holder.Kill();
            }
        }
    }

    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(60); !await condition(); await Task.Delay(200))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"gave up waiting for {what}");
            }
        }
    }

    private static bool Banner(JsonObject vm, string nameAndBoot) =>
        vm["consoleTail"]?.AsArray().Any(line => ((string?)line)?.Contains($"ORCHESTRATOR-GUEST-READY {nameAndBoot}") == true) == true;
}

/// <summary>One Ceph cluster for the class: starting one costs more than the smaller test's own work.</summary>
public sealed class CephFixture : IAsyncLifetime
{
    public CephCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync() => Cluster = await CephCluster.StartAsync();

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}
