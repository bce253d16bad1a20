using System.Net;
using System.Net.Http.Json;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>A VM's disk bandwidth limit through a real node, as its own guest measures what it can write.</summary>
[Collection(NodeCollection.Name)]
public sealed class DiskLimitTests(ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public async Task A_guest_writes_to_its_disk_at_its_bandwidth_limit_and_at_the_new_one_once_changed_while_it_runs()
    {
        using var quiet = await QuietMachine.HoldAsync(output);
        await using var node = await NodeProcess.StartAsync(output);
        var created = await node.Http.PostAsJsonAsync("v1/vms", new
        {
            name = "writer", vcpus = 1, memoryMiB = 128, image = "demo", userData = GuestDiskWriter.UserData, diskBps = 4 * MiB,
        });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var ready = await node.WaitForVmAsync("writer", "Ready");
        var console = Path.Combine(node.RunDir, "vms", (string)ready["id"]!, "console.log");

        // The first chunks may ride QEMU's burst allowance: from the third on, the steady rate.
        var (first, last) = await GuestDiskWriter.MeasureAsync(() => GuestDiskWriter.ReadConsoleAsync(console), afterSeq: 2, count: 4, TimeSpan.FromSeconds(120), default);
        output.WriteLine($"limit 4 MiB/s: the guest wrote {first / MiB:0.00} MiB/s");
        Assert.InRange(first, 4 * MiB * 0.85, 4 * MiB * 1.15);

        var patched = await node.Http.PatchAsync("v1/vms/writer/resources", JsonContent.Create(new { diskBps = 8 * MiB }));
        Assert.Equal(HttpStatusCode.Accepted, patched.StatusCode);
        Assert.Equal(8 * MiB, (long)(await node.GetVmAsync("writer"))!["resources"]!["diskBps"]!);

        // The running guest shows the change once a chunk goes clearly faster than the old limit; the chunks after that are measured.
        var (second, _) = await GuestDiskWriter.MeasureAsync(() => GuestDiskWriter.ReadConsoleAsync(console), afterSeq: last, count: 4, TimeSpan.FromSeconds(120), default,
            startWhen: s => s.Bytes / s.Seconds > 4 * MiB * 1.4);
        output.WriteLine($"limit 8 MiB/s, set on the running VM: the guest wrote {second / MiB:0.00} MiB/s");
        Assert.InRange(second, 8 * MiB * 0.85, 8 * MiB * 1.15);
        // vm show: the cap its host holds on the disks now (alone on the host: its limit).
        Assert.Equal(8 * MiB, (long?)(await node.GetVmAsync("writer"))!["resources"]!["entitledDiskBps"]);
    }
}
