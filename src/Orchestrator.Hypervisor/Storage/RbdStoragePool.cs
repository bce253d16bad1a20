using System.Diagnostics;
using System.Globalization;
using Orchestrator.Domain;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Storage;

/// <summary>Where an rbd pool's images are: the Ceph cluster's config file, the Ceph pool, and the client (null: admin).</summary>
public sealed record RbdLocation(string CephConf, string CephPool, string? User);

/// <summary>
/// An <c>rbd</c> pool: each disk layer and volume a qcow2 inside an image of a Ceph pool (<c>disk-&lt;layer id&gt;</c>,
/// <c>vol-&lt;volume id&gt;</c>), opened by QEMU's rbd driver. Every host reaches the same cluster, so the pool is shared:
/// a VM's disk follows it to another host, and Ceph's replication keeps it through a host's loss. qcow2 over rbd keeps
/// this pool's disks the same shape as a <c>dir</c> pool's: thin overlays on an image's base file (which every host has at
/// the same path), live snapshots as new top layers, clones as overlays on a snapshot's frozen layer.
/// </summary>
public sealed class RbdStoragePool(StoragePoolInfo info, RbdLocation location) : IStoragePool
{
    private const long GiB = 1L << 30;

    public StoragePoolInfo Info { get; } = info;

    public RbdLocation Location { get; } = location;

    public string LayerPath(string layer) => Name("disk-" + CheckedId(layer, "disk layer"));

    private string VolumePath(string volumeId) => Name("vol-" + CheckedId(volumeId, "volume"));

    private string Name(string image) => new BlockFiles.Rbd(Location.CephPool, image, Location.CephConf, Location.User).ToString();

    public Task<PooledDisk> EnsureDiskAsync(VmId vmId, int sizeGiB, string? baseImage, CancellationToken cancellationToken) =>
        EnsureLayerAsync(vmId.Compact, null, sizeGiB, baseImage, cancellationToken);

    public async Task<PooledDisk> EnsureLayerAsync(string layer, string? backingLayer, int sizeGiB, string? baseImage, CancellationToken cancellationToken,
        string baseFormat = "qcow2")
    {
        if (sizeGiB < 1)
        {
            throw new HypervisorException($"disk layer {layer}: a disk of {sizeGiB} GiB is too small (at least 1)");
        }

        var image = "disk-" + CheckedId(layer, "disk layer");
        if (backingLayer is not null && !await Exists("disk-" + CheckedId(backingLayer, "disk layer"), cancellationToken))
        {
            throw new HypervisorException($"disk layer {layer}: the snapshot layer {backingLayer} it is an overlay on is missing from pool '{Info.Id}'");
        }

        var backing = backingLayer is null ? baseImage : LayerPath(backingLayer);
        await CreateOnceAsync(image, partial => QemuImg.CreateQcow2Async(partial, backing, backing is null ? sizeGiB * GiB : null, cancellationToken,
            backingLayer is null ? baseFormat : "qcow2"), cancellationToken);
        return new PooledDisk(Info.Id, LayerPath(layer), "qcow2");
    }

    public Task DeleteLayerAsync(string layer, CancellationToken cancellationToken) =>
        RemoveAsync("disk-" + CheckedId(layer, "disk layer"), cancellationToken);

    public Task DeleteDiskAsync(VmId vmId, CancellationToken cancellationToken) => DeleteLayerAsync(vmId.Compact, cancellationToken);

    public async Task<PooledDisk> EnsureVolumeAsync(string volumeId, int sizeGiB, CancellationToken cancellationToken)
    {
        if (sizeGiB < 1)
        {
            throw new HypervisorException($"volume {volumeId}: {sizeGiB} GiB is too small (at least 1)");
        }

        var path = VolumePath(volumeId);
        await CreateOnceAsync("vol-" + volumeId, partial => QemuImg.CreateQcow2Async(partial, null, sizeGiB * GiB, cancellationToken), cancellationToken);
        if (await QemuImg.VirtualSizeAsync(path, cancellationToken) < sizeGiB * GiB)
        {
            await QemuImg.RunAsync(["resize", "-q", "-f", "qcow2", path, (sizeGiB * GiB).ToString(CultureInfo.InvariantCulture)],
                $"grow the volume {volumeId}", cancellationToken);
        }

        return new PooledDisk(Info.Id, path, "qcow2");
    }

    public Task DeleteVolumeAsync(string volumeId, CancellationToken cancellationToken) =>
        RemoveAsync("vol-" + CheckedId(volumeId, "volume"), cancellationToken);

    /// <summary>
    /// Makes the image with <paramref name="create"/> unless it exists: under a temporary name, then renamed, so that a
    /// start that dies half way leaves no half image to be taken for a whole one, and two hosts racing both end with one.
    /// </summary>
    private async Task CreateOnceAsync(string image, Func<string, Task> create, CancellationToken cancellationToken)
    {
        if (await Exists(image, cancellationToken))
        {
            return;
        }

        var partial = $"partial-{Guid.NewGuid():N}";
        try
        {
            await create(Name(partial));
            var renamed = await RbdAsync(["rename", $"{Location.CephPool}/{partial}", $"{Location.CephPool}/{image}"], cancellationToken);
            if (renamed.ExitCode != 0 && !await Exists(image, cancellationToken))
            {
                throw new HypervisorException($"rbd could not name the image {image} in pool {Location.CephPool}: {renamed.Errors}");
            }
        }
        finally
        {
            if (await Exists(partial, CancellationToken.None))
            {
                await RemoveAsync(partial, CancellationToken.None);
            }
        }
    }

    private async Task<bool> Exists(string image, CancellationToken cancellationToken)
    {
        var info = await RbdAsync(["info", $"{Location.CephPool}/{image}"], cancellationToken);
        return info.ExitCode == 0 ? true
            : info.Errors.Contains("No such file or directory", StringComparison.Ordinal) ? false
            : throw new HypervisorException($"rbd could not look up the image {image} in pool {Location.CephPool}: {info.Errors}");
    }

    /// <summary>
    /// Removes the image for good; nothing when there is none. Ceph refuses while a client still watches the image: a QEMU
    /// that is ending (a deleted VM's layers are let go when the ledger says so, while its host is still stopping it), or
    /// one killed, whose watch Ceph keeps until it times out (30 s by default). The remove is tried again until the watch
    /// is gone or <see cref="WatchedRemoveDeadline"/> has passed; only then does it fail.
    /// </summary>
    private async Task RemoveAsync(string image, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + WatchedRemoveDeadline;
        var pause = TimeSpan.FromMilliseconds(250);
        while (true)
        {
            var removed = await RbdAsync(["rm", "--no-progress", $"{Location.CephPool}/{image}"], cancellationToken);
            if (removed.ExitCode == 0 || removed.Errors.Contains("No such file or directory", StringComparison.Ordinal))
            {
                return;
            }

            if (!removed.Errors.Contains("still has watchers", StringComparison.Ordinal) || DateTime.UtcNow >= deadline)
            {
                throw new HypervisorException($"rbd could not remove the image {image} from pool {Location.CephPool}: {removed.Errors}");
            }

            await Task.Delay(pause, cancellationToken);
            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.FromSeconds(4).Ticks));
        }
    }

    /// <summary>How long a remove waits for the image's last watcher to go: twice Ceph's default watch timeout, and more.</summary>
    private static readonly TimeSpan WatchedRemoveDeadline = TimeSpan.FromSeconds(75);

    /// <summary>Runs the <c>rbd</c> tool with an argument list (never a shell line) against this pool's cluster.</summary>
    private async Task<(int ExitCode, string Errors)> RbdAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(QemuDriver.ResolveBinary("rbd"))
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        startInfo.ArgumentList.Add("--conf");
        startInfo.ArgumentList.Add(Location.CephConf);
        if (Location.User is { } user)
        {
            startInfo.ArgumentList.Add("--id");
            startInfo.ArgumentList.Add(user);
        }

        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo) ?? throw new HypervisorException("rbd did not start");
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.StandardOutput.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        return (process.ExitCode, (await errors).Trim());
    }

    private static string CheckedId(string id, string what) =>
        VolumeRecord.IsValidId(id) ? id : throw new HypervisorException($"'{FieldError.Echo(id)}' is not a {what} id");
}
