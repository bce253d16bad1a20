// The dir storage pool and persistent disks against real qemu-img, qemu-io and QEMU booting the demo image.
using System.Diagnostics;
using Orchestrator.Domain;
using Orchestrator.Domain.Storage;
using Orchestrator.Hypervisor.Qemu;
using Orchestrator.Hypervisor.Storage;

namespace Orchestrator.Hypervisor.Tests;

[Collection(QemuCollection.Name)]
public sealed class StoragePoolTests(QemuFixture fixture)
{
    private static DirStoragePool Pool(TempDir dir) =>
        new(new StoragePoolInfo("local", StoragePoolKinds.Dir, 10, 4.0, Shared: false), Path.Combine(dir.Path, "pool"));

    [QemuFact]
    public async Task A_new_disk_reads_as_zeros_is_kept_across_ensures_and_is_gone_once_deleted()
    {
        using var dir = new TempDir();
        var pool = Pool(dir);
        var vmId = VmId.New();

        var disk = await pool.EnsureDiskAsync(vmId, 1, null, CancellationToken.None);
        Assert.Equal(Path.Combine(pool.Path, "disks", vmId.Compact + ".qcow2"), disk.DriveFile);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(disk.DriveFile));
        await QemuIoAsync(disk.DriveFile, "read -P 0 0 1M", expectSuccess: true);
        await QemuIoAsync(disk.DriveFile, "write -P 0x5a 0 64k", expectSuccess: true);

        var again = await pool.EnsureDiskAsync(vmId, 1, null, CancellationToken.None);
        Assert.Equal(disk, again);
        await QemuIoAsync(again.DriveFile, "read -P 0x5a 0 64k", expectSuccess: true); // not recreated: the data stayed

        await pool.DeleteDiskAsync(vmId, CancellationToken.None);
        Assert.False(pool.HasDisk(vmId));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(pool.Path, "disks")));
    }

    [QemuFact]
    public async Task A_disk_on_an_image_base_reads_the_base_and_writes_only_to_itself()
    {
        using var dir = new TempDir();
        var pool = Pool(dir);
        var baseImage = Path.Combine(dir.Path, "base.qcow2");
        await QemuImg.CreateQcow2Async(baseImage, null, 1L << 30, CancellationToken.None);
        await QemuIoAsync(baseImage, "write -P 0x11 0 64k", expectSuccess: true);
        var baseBytes = await File.ReadAllBytesAsync(baseImage);

        var one = await pool.EnsureDiskAsync(VmId.New(), 1, baseImage, CancellationToken.None);
        var two = await pool.EnsureDiskAsync(VmId.New(), 1, baseImage, CancellationToken.None);
        await QemuIoAsync(one.DriveFile, "write -P 0x22 0 64k", expectSuccess: true);

        await QemuIoAsync(one.DriveFile, "read -P 0x22 0 64k", expectSuccess: true);
        await QemuIoAsync(two.DriveFile, "read -P 0x11 0 64k", expectSuccess: true); // its own view of the shared base
        Assert.Equal(baseBytes, await File.ReadAllBytesAsync(baseImage));
    }

    [QemuFact]
    public async Task A_layer_on_a_snapshot_layer_reads_it_writes_only_to_itself_and_names_are_ids_only()
    {
        using var dir = new TempDir();
        var pool = Pool(dir);
        var vmId = VmId.New();
        var snapshotLayer = await pool.EnsureDiskAsync(vmId, 1, null, CancellationToken.None);
        await QemuIoAsync(snapshotLayer.DriveFile, "write -P 0x33 0 64k", expectSuccess: true);
        var frozen = await File.ReadAllBytesAsync(snapshotLayer.DriveFile);

        var top = Guid.NewGuid().ToString("N");
        var restored = await pool.EnsureLayerAsync(top, vmId.Compact, 1, null, CancellationToken.None);
        Assert.Equal(pool.LayerPath(top), restored.DriveFile);
        await QemuIoAsync(restored.DriveFile, "read -P 0x33 0 64k", expectSuccess: true); // the snapshot's data
        await QemuIoAsync(restored.DriveFile, "write -P 0x44 0 64k", expectSuccess: true);
        Assert.Equal(frozen, await File.ReadAllBytesAsync(snapshotLayer.DriveFile)); // the snapshot's file never changes

        var missing = await Assert.ThrowsAsync<HypervisorException>(() =>
            pool.EnsureLayerAsync(Guid.NewGuid().ToString("N"), Guid.NewGuid().ToString("N"), 1, null, CancellationToken.None));
        Assert.Contains("is missing", missing.Message);
        Assert.Throws<HypervisorException>(() => pool.LayerPath("../../etc/passwd"));

        await pool.DeleteLayerAsync(top, CancellationToken.None);
        Assert.False(File.Exists(restored.DriveFile));
    }

    [QemuFact]
    public async Task A_guest_counts_its_boots_on_its_disk_and_a_second_qemu_cannot_open_the_disk_it_holds()
    {
        using var dir = new TempDir();
        var pool = Pool(dir);
        await using var driver = new QemuDriver(fixture.Options() with { StoragePools = [pool] });
        var spec = Specs.For(fixture.Image, "counter") with { Disk = new VmDiskRequest(1) };
        var first = await driver.StartAsync(spec, CancellationToken.None);
        try
        {
            await new EventRecorder(first).WaitForAsync<VmEvent.ConsoleLine>(
                l => l.Text == "ORCHESTRATOR-GUEST-READY counter boot=1", "the first boot's banner with boot=1");
            var cmdline = await File.ReadAllTextAsync($"/proc/{first.Pid}/cmdline");
            Assert.Contains(pool.DiskPath(spec.VmId), cmdline);
            Assert.DoesNotContain("counter", cmdline);

            // QEMU's image locking: a second copy that tries to open the disk read-write is refused while the first runs.
            var (code, output) = await RunAsync(QemuDriver.ResolveBinary("qemu-system-x86_64"),
                "-nodefaults", "-display", "none", "-S", "-machine", "q35", "-accel", "tcg",
                "-drive", $"file={pool.DiskPath(spec.VmId)},if=none,id=d0,format=qcow2", "-device", "virtio-blk-pci,drive=d0");
            Assert.NotEqual(0, code);
            Assert.Contains("lock", output);

            await first.KillAsync(CancellationToken.None);
            driver.Cleanup(spec.VmId);
            Assert.True(pool.HasDisk(spec.VmId)); // the run directory went; the disk stays

            var second = await driver.StartAsync(spec with { Epoch = spec.Epoch.Next() }, CancellationToken.None);
            await new EventRecorder(second).WaitForAsync<VmEvent.ConsoleLine>(
                l => l.Text == "ORCHESTRATOR-GUEST-READY counter boot=2", "the second boot's banner with boot=2");
            await second.KillAsync(CancellationToken.None);
        }
        finally
        {
            // Only this test's VM: the run directory is the fixture's, whose shared guest the other tests use.
            foreach (var vm in (await driver.DiscoverAsync(CancellationToken.None)).Where(v => v.VmId == spec.VmId))
            {
                await driver.KillAsync(vm, CancellationToken.None);
            }

            await driver.DeleteDiskAsync(spec.VmId, CancellationToken.None);
            Assert.False(pool.HasDisk(spec.VmId));
        }
    }

    private static async Task QemuIoAsync(string file, string command, bool expectSuccess)
    {
        var (code, output) = await RunAsync(QemuDriver.ResolveBinary("qemu-io"), "-f", "qcow2", "-c", command, file);
        var failed = code != 0 || output.Contains("fail", StringComparison.OrdinalIgnoreCase);
        Assert.True(failed != expectSuccess, $"qemu-io '{command}' on {file}: exit {code}: {output}");
    }

    private static async Task<(int Code, string Output)> RunAsync(string binary, params string[] arguments)
    {
        var start = new ProcessStartInfo(binary, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(bound.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
