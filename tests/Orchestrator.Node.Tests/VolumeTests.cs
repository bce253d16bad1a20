using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Volumes through a real node and real QEMU (issue 18): written by one VM, detached while it runs, read back by another of
/// the same tenant, hot-attached to a running VM; invisible to another tenant; a storage quota that concurrent creates
/// never overshoot.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class VolumeTests(ITestOutputHelper output)
{
    /// <summary>busybox: the /dev node of the disk whose serial is $1 (the volume's, "vol" and its id's first digits).</summary>
    private const string FindVolume =
        "find_volume() { for s in /sys/block/vd*/serial; do [ \"$(cat $s 2>/dev/null)\" = \"$1\" ] && echo /dev/$(basename $(dirname $s)); done; }";

    [Fact]
    public async Task A_volume_written_by_one_vm_is_read_by_another_after_a_live_detach_and_another_tenant_never_sees_it()
    {
        await using var node = await NodeProcess.StartAsync(output);
        var volume = await Created(await node.Http.PostAsJsonAsync("v1/volumes", new { name = "data1", sizeGiB = 1 }));
        var id = (string)volume["id"]!;
        var serial = "vol" + id[..17];
        var file = Path.Combine(node.DataDir, "pools", "local", "volumes", id + ".qcow2");

        // Another tenant: not found, never listed, cannot take it, even by name at create.
        using var bravo = node.ClientWith(await node.TenantKeyAsync("bravo"));
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.GetAsync("v1/volumes/data1")).StatusCode);
        Assert.Equal("[]", await bravo.GetStringAsync("v1/volumes"));
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.DeleteAsync("v1/volumes/data1")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.PostAsJsonAsync("v1/volumes/data1/resize", new { sizeGiB = 2 })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.PostAsync("v1/vms/writer/volumes/data1", null)).StatusCode);
        var sneaky = await bravo.PostAsJsonAsync("v1/vms", new { name = "b1", vcpus = 1, memoryMiB = 128, image = "demo", volumes = new[] { "data1" } });
        Assert.Equal(HttpStatusCode.BadRequest, sneaky.StatusCode);
        Assert.Contains("volumes[0]", await sneaky.Content.ReadAsStringAsync());

        // The writer starts with it and writes a marker to its first sector.
        await CreateVmAsync(node, "writer", ["data1"],
            $"dev=$(find_volume {serial}); printf 'VOLUME-MARK-%s\\n' $((6*7)) | dd of=$dev bs=512 conv=sync 2>/dev/null; sync; echo VOLTEST wrote $dev");
        var writer = await node.WaitForVmAsync("writer", "Ready", vm => Console(vm, "VOLTEST wrote /dev/vd"));
        var writerPid = (int)writer["pid"]!;
        Assert.True(Holds(writerPid, file), $"the writer's QEMU holds {file}");
        Assert.Equal(HttpStatusCode.Conflict, (await node.Http.DeleteAsync("v1/volumes/data1")).StatusCode); // attached

        // Detached while it runs: its QEMU lets go of the file (device_del, then blockdev-del).
        var detached = await node.Http.DeleteAsync("v1/vms/writer/volumes/data1");
        Assert.Equal(HttpStatusCode.OK, detached.StatusCode);
        Assert.Null((string?)JsonNode.Parse(await detached.Content.ReadAsStringAsync())!["attachedTo"]);
        await node.Eventually(() => Task.FromResult<bool?>(!Holds(writerPid, file)), TimeSpan.FromSeconds(60), "the writer's QEMU to let go of the volume");

        // The reader, of the same tenant, starts with it and reads the marker back.
        await CreateVmAsync(node, "reader", ["data1"], $"dev=$(find_volume {serial}); echo VOLREAD $(head -c 16 $dev)");
        var reader = await node.WaitForVmAsync("reader", "Ready", vm => Console(vm, "VOLREAD"));
        Assert.True(Console(reader, "VOLREAD VOLUME-MARK-42"), $"the reader's console: {reader["consoleTail"]}");

        // Back to the running writer, plugged in live.
        Assert.Equal(HttpStatusCode.OK, (await node.Http.DeleteAsync("v1/vms/reader/volumes/data1")).StatusCode);
        await node.Eventually(() => Task.FromResult<bool?>(!Holds((int)reader["pid"]!, file)), TimeSpan.FromSeconds(60), "the reader's QEMU to let go");
        var attached = await node.Http.PostAsync("v1/vms/writer/volumes/data1", null);
        Assert.Equal(HttpStatusCode.OK, attached.StatusCode);
        Assert.Equal("writer", (string?)JsonNode.Parse(await attached.Content.ReadAsStringAsync())!["attachedTo"]);
        await node.Eventually(() => Task.FromResult<bool?>(Holds(writerPid, file)), TimeSpan.FromSeconds(60), "the running writer's QEMU to open the volume");

        // Deleted with its VM: gone from the ledger and from the pool.
        Assert.Equal(HttpStatusCode.Accepted, (await node.Http.DeleteAsync("v1/vms/writer?withVolumes=true")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await node.Http.GetAsync("v1/volumes/data1")).StatusCode);
        await node.Eventually(() => Task.FromResult<bool?>(!File.Exists(file)), TimeSpan.FromSeconds(60), $"{file} to be deleted");
    }

    [Fact]
    public async Task Concurrent_volume_creates_never_overshoot_the_storage_quota()
    {
        await using var node = await NodeProcess.StartAsync(output);
        using var racer = node.ClientWith(await node.TenantKeyAsync("racer", quota: new { storageGiB = 6 }));

        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => racer.PostAsJsonAsync("v1/volumes", new { name = $"v{i}", sizeGiB = 2 })));

        Assert.Equal(3, answers.Count(a => a.StatusCode == HttpStatusCode.Created));
        Assert.Equal(5, answers.Count(a => a.StatusCode == HttpStatusCode.Forbidden));
        var volumes = JsonNode.Parse(await racer.GetStringAsync("v1/volumes"))!.AsArray();
        Assert.Equal(3, volumes.Count);
        Assert.Equal(6, (long)JsonNode.Parse(await racer.GetStringAsync("v1/tenant"))!["usage"]!["storageGiB"]!);
        // A VM's disk counts too: none is left for one.
        var vm = await racer.PostAsJsonAsync("v1/vms", new { name = "web", vcpus = 1, memoryMiB = 128, image = "demo" });
        Assert.Equal(HttpStatusCode.Forbidden, vm.StatusCode);
        Assert.Contains("diskGiB", await vm.Content.ReadAsStringAsync());
        var kept = (string)volumes[0]!["name"]!; // which three won the race is the race's
        var shrink = await racer.PostAsJsonAsync($"v1/volumes/{kept}/resize", new { sizeGiB = 1 });
        Assert.Equal(HttpStatusCode.BadRequest, shrink.StatusCode);
        Assert.Contains("sizeGiB", await shrink.Content.ReadAsStringAsync());
    }

    private static async Task CreateVmAsync(NodeProcess node, string name, string[] volumes, string script)
    {
        var userData = Encoding.UTF8.GetBytes($"#!/bin/sh\n{FindVolume}\n{script}\n");
        await Created(await node.Http.PostAsJsonAsync("v1/vms", new { name, vcpus = 1, memoryMiB = 128, image = "demo", volumes, userData }));
    }

    private static async Task<JsonObject> Created(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{(int)response.StatusCode} {body}");
        return JsonNode.Parse(body)!.AsObject();
    }

    private static bool Console(JsonObject vm, string text) =>
        vm["consoleTail"]?.AsArray().Any(line => ((string?)line)?.Contains(text, StringComparison.Ordinal) == true) == true;

    /// <summary>Whether the process has the file open (its fds, as the kernel lists them).</summary>
    private static bool Holds(int pid, string file)
    {
        try
        {
            return new DirectoryInfo($"/proc/{pid}/fd").EnumerateFileSystemInfos().Any(fd => fd.LinkTarget == file);
        }
        catch (Exception ex) when (ex is DirectoryNotFoundException or UnauthorizedAccessException or IOException)
        {
            return false;
        }
    }
}
