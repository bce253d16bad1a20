// Volumes (issue 18) against real qemu-img and QEMU booting the demo image: files named by id only, started with a VM,
// hot-plugged into a running one over QMP and unplugged again, and what one guest wrote read back by another.
using System.Text;
using Orchestrator.Domain;
using Orchestrator.Domain.Storage;
using Orchestrator.Hypervisor.Qemu;
using Orchestrator.Hypervisor.Storage;
using Xunit.Abstractions;

namespace Orchestrator.Hypervisor.Tests;

[Collection(QemuCollection.Name)]
public sealed class VolumeTests(QemuFixture fixture, ITestOutputHelper output)
{
    private const long GiB = 1L << 30;

    private static DirStoragePool Pool(TempDir dir) =>
        new(new StoragePoolInfo("local", StoragePoolKinds.Dir, 10, 4.0, Shared: false), Path.Combine(dir.Path, "pool"));

    private static VolumeAssignment NewVolume(int sizeGiB = 1) => new(Guid.NewGuid().ToString("N"), "local", sizeGiB);

    [QemuFact]
    public async Task A_volume_file_is_named_by_its_id_made_blank_grown_and_gone_once_deleted()
    {
        using var dir = new TempDir();
        var pool = Pool(dir);
        var volume = NewVolume();

        var file = await pool.EnsureVolumeAsync(volume.Id, 1, CancellationToken.None);
        Assert.Equal(Path.Combine(pool.Path, "volumes", volume.Id + ".qcow2"), file.DriveFile);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file.DriveFile));
        Assert.Equal(GiB, await QemuImg.VirtualSizeAsync(file.DriveFile, CancellationToken.None));

        await pool.EnsureVolumeAsync(volume.Id, 3, CancellationToken.None);
        Assert.Equal(3 * GiB, await QemuImg.VirtualSizeAsync(file.DriveFile, CancellationToken.None));

        await pool.DeleteVolumeAsync(volume.Id, CancellationToken.None);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(pool.Path, "volumes")));
        await Assert.ThrowsAsync<HypervisorException>(() => pool.EnsureVolumeAsync("../../etc/passwd", 1, CancellationToken.None));
    }

    [QemuFact]
    public async Task What_one_guest_writes_to_a_volume_another_reads_and_a_running_guest_gets_a_volume_plugged_in_and_out()
    {
        using var dir = new TempDir();
        var pool = Pool(dir);
        await using var driver = new QemuDriver(fixture.Options() with { StoragePools = [pool] });
        var volume = NewVolume();
        var started = new List<VmId>();
        try
        {
            // The writer starts with the volume and writes a marker to its first sector.
            var writer = await BootAsync(driver, started, "writer", [volume],
                $"dev=$(find_volume {volume.Serial}); printf 'VOLUME-MARK-%s\\n' $((6*7)) | dd of=$dev bs=512 conv=sync 2>/dev/null; sync; echo VOLTEST wrote $dev");
            await writer.Events.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text.StartsWith("VOLTEST wrote /dev/vd", StringComparison.Ordinal),
                "the writer's line saying it wrote the volume");
            var cmdline = await File.ReadAllTextAsync($"/proc/{writer.Handle.Pid}/cmdline");
            Assert.Contains(pool.VolumePath(volume.Id), cmdline);
            Assert.Contains(volume.NodeName, await writer.Handle.QueryVolumesAsync(CancellationToken.None));
            await writer.Handle.KillAsync(CancellationToken.None);
            driver.Cleanup(writer.Handle.VmId);

            // The reader boots without it, has it plugged in while running, and reads the marker back.
            var reader = await BootAsync(driver, started, "reader", [], "echo VOLTEST booted");
            await reader.Events.WaitForAsync<VmEvent.ConsoleLine>(l => l.Text == "VOLTEST booted", "the reader's boot line");
            await reader.Events.WaitForBannerAsync("reader"); // its shell reads the console from then on
            Assert.Empty(await reader.Handle.QueryVolumesAsync(CancellationToken.None));

            var clock = System.Diagnostics.Stopwatch.StartNew();
            await reader.Handle.AttachVolumeAsync(volume, CancellationToken.None);
            output.WriteLine($"hot attach (file ready, blockdev-add, device_add): {clock.ElapsedMilliseconds} ms");

            Assert.Equal([volume.NodeName], await reader.Handle.QueryVolumesAsync(CancellationToken.None));
            var said = await TypeAsync(reader.Handle,
                $"for i in 1 2 3 4 5 6 7 8 9 10; do d=$(find_volume {volume.Serial}); [ -n \"$d\" ] && break; sleep 1; done; echo VOLREAD $(head -c 16 $d)",
                "VOLREAD VOLUME-MARK-42");
            Assert.Contains("VOLREAD VOLUME-MARK-42", said);

            clock.Restart();
            await reader.Handle.DetachVolumeAsync(volume.NodeName, CancellationToken.None);
            output.WriteLine($"hot detach (device_del until DEVICE_DELETED, blockdev-del): {clock.ElapsedMilliseconds} ms");

            Assert.Empty(await reader.Handle.QueryVolumesAsync(CancellationToken.None));
            var after = await TypeAsync(reader.Handle, $"echo VOLGONE [$(find_volume {volume.Serial})]", "VOLGONE [");
            Assert.Contains("VOLGONE []", after);
        }
        finally
        {
            foreach (var vm in (await driver.DiscoverAsync(CancellationToken.None)).Where(v => started.Contains(v.VmId)))
            {
                await driver.KillAsync(vm, CancellationToken.None);
            }
        }
    }

    /// <summary>A busybox function that prints the /dev node of the disk with that serial (empty when none).</summary>
    private const string FindVolume =
        "find_volume() { for s in /sys/block/vd*/serial; do [ \"$(cat $s 2>/dev/null)\" = \"$1\" ] && echo /dev/$(basename $(dirname $s)); done; }";

    private async Task<(IVmHandle Handle, EventRecorder Events)> BootAsync(QemuDriver driver, List<VmId> started, string name,
        IReadOnlyList<VolumeAssignment> volumes, string script)
    {
        var id = VmId.New();
        started.Add(id);
        var seed = new GuestSeed(name, [], Encoding.UTF8.GetBytes($"#!/bin/sh\n{FindVolume}\n{script}\n"));
        var handle = await driver.StartAsync(new VmLaunchSpec(id, name, 1, 128, fixture.Image, new Epoch(1), Seed: seed, Volumes: volumes),
            CancellationToken.None);
        return (handle, new EventRecorder(handle));
    }

    /// <summary>Types the line (after defining find_volume) on the guest's console and returns what it printed until <paramref name="until"/> shows.</summary>
    private static async Task<string> TypeAsync(IVmHandle vm, string line, string until)
    {
        var seen = new StringBuilder();
        string Seen()
        {
            lock (seen)
            {
                return seen.ToString();
            }
        }

        await using var console = await vm.ConnectConsoleAsync(bytes =>
        {
            lock (seen)
            {
                seen.Append(Encoding.UTF8.GetString(bytes));
            }
        }, CancellationToken.None);
        // The echo of the typed line holds the text too, after a prompt and with its "$(": what the guest printed has neither.
        await console.WriteAsync(Encoding.UTF8.GetBytes($"{FindVolume}; {line}\r"), CancellationToken.None);
        IEnumerable<string> Printed() => Seen().Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith(until, StringComparison.Ordinal) && !l.Contains("$("));
        await Eventually.HoldsAsync(() => Printed().Any(), $"'{until}' on the console; it printed: {Seen()}");
        return string.Join('\n', Printed());
    }
}

public sealed class VolumeArgumentsTests
{
    [Fact]
    public void A_volume_reaches_qemu_by_its_id_only_on_a_hot_plug_port_of_its_own()
    {
        var spec = new VmLaunchSpec(VmId.New(), "tenant-name", 1, 128, new GuestImage("demo", "/k", "/i", ""), Epoch.Zero);
        var volume = new VolumeAssignment("0123456789abcdef0123456789abcdef", "local", 2);
        var file = new PooledDisk("local", "/pools/a,b/volumes/" + volume.Id + ".qcow2", "qcow2");

        var argv = QemuDriver.BuildArguments("qemu", spec, VmPaths.For("/run/o/vms", spec.VmId.Compact), new QemuDriverOptions { RunDirectory = "/run/o" },
            null, [(volume, file)]);

        Assert.Contains("driver=qcow2,node-name=vn0123456789abcdef0123456789ab,discard=unmap,file.driver=file," +
                        "file.filename=/pools/a,,b/volumes/0123456789abcdef0123456789abcdef.qcow2", argv);
        Assert.Contains("virtio-blk-pci,drive=vt0123456789abcdef0123456789ab,id=vd0123456789abcdef0123456789ab,serial=vol0123456789abcdef0,bus=vslot0",
            argv);
        Assert.Equal(VolumeRecord.MaxPerVm, argv.Count(a => a.StartsWith("pcie-root-port,id=vslot", StringComparison.Ordinal)));
        Assert.DoesNotContain(argv, a => a.Contains("tenant-name", StringComparison.Ordinal));
        Assert.True(volume.NodeName.Length <= 31, "QEMU's node names have at most 31 characters");
    }
}
