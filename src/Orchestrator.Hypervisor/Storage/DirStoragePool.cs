using Orchestrator.Domain;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Storage;

/// <summary>
/// A <c>dir</c> pool: one qcow2 per VM in <c>&lt;path&gt;/disks/&lt;vm id&gt;.qcow2</c>, one per volume in
/// <c>&lt;path&gt;/volumes/&lt;volume id&gt;.qcow2</c>. Thin: a disk takes what its
/// guest wrote (plus qcow2's metadata); an overlay reads the rest from its image's base file, which every VM of that image
/// shares. On a filesystem every host mounts, mark it shared and the disk follows its VM to another host.
/// </summary>
public sealed class DirStoragePool : IStoragePool
{
    private const long GiB = 1L << 30;

    private readonly string _disks;
    private readonly string _volumes;

    public DirStoragePool(StoragePoolInfo info, string path)
    {
        Info = info;
        Path = System.IO.Path.GetFullPath(path);
        _disks = System.IO.Path.Combine(Path, "disks");
        _volumes = System.IO.Path.Combine(Path, "volumes");
    }

    public StoragePoolInfo Info { get; }

    /// <summary>The pool's directory (operator configuration).</summary>
    public string Path { get; }

    public string DiskPath(VmId vmId) => LayerPath(vmId.Compact);

    /// <summary>Every layer of every VM's disk chain lives beside the VMs' own files: <c>disks/&lt;layer id&gt;.qcow2</c>.</summary>
    public string LayerPath(string layer) => System.IO.Path.Combine(_disks, CheckedId(layer, "disk layer") + ".qcow2");

    /// <summary>Whether the VM has a disk in this pool (the product never asks: a start makes it, a delete removes it).</summary>
    public bool HasDisk(VmId vmId) => File.Exists(DiskPath(vmId));

    public Task<PooledDisk> EnsureDiskAsync(VmId vmId, int sizeGiB, string? baseImage, CancellationToken cancellationToken) =>
        EnsureLayerAsync(vmId.Compact, null, sizeGiB, baseImage, cancellationToken);

    public async Task<PooledDisk> EnsureLayerAsync(string layer, string? backingLayer, int sizeGiB, string? baseImage,
        CancellationToken cancellationToken, string baseFormat = "qcow2")
    {
        if (sizeGiB < 1)
        {
            throw new HypervisorException($"disk layer {layer}: a disk of {sizeGiB} GiB is too small (at least 1)");
        }

        var path = LayerPath(layer);
        var backing = backingLayer is null ? baseImage : LayerPath(backingLayer);
        if (backingLayer is not null && !File.Exists(backing))
        {
            throw new HypervisorException($"disk layer {layer}: the snapshot layer {backingLayer} it is an overlay on is missing from pool '{Info.Id}'");
        }

        // An overlay is as big as its base (qemu-img refuses nothing smaller); the GiB asked for is what the ledger
        // counts against the pool.
        await CreateOnceAsync(_disks, path, layer,
            partial => QemuImg.CreateQcow2Async(partial, backing, backing is null ? sizeGiB * GiB : null, cancellationToken,
                backingLayer is null ? baseFormat : "qcow2"));
        return new PooledDisk(Info.Id, path, "qcow2");
    }

    public Task DeleteLayerAsync(string layer, CancellationToken cancellationToken)
    {
        File.Delete(LayerPath(layer));
        return Task.CompletedTask;
    }

    /// <summary>
    /// Makes <paramref name="path"/> with <paramref name="create"/> unless it exists. Made under a temporary name and
    /// renamed: a start that dies half way leaves no half file to be mistaken for a whole one, and two hosts racing on a
    /// shared pool both end with one whole file.
    /// </summary>
    private async Task CreateOnceAsync(string directory, string path, string id, Func<string, Task> create)
    {
        if (File.Exists(path))
        {
            return;
        }

        // Disks hold every tenant's data: owner only, like the run directory.
        QemuDriver.EnsureDirectory(Path);
        QemuDriver.EnsureDirectory(directory);
        var partial = System.IO.Path.Combine(directory, $".{id}.{Environment.ProcessId}.{Guid.NewGuid():N}.partial");
        try
        {
            await create(partial);
            File.SetUnixFileMode(partial, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            if (!File.Exists(path))
            {
                File.Move(partial, path);
            }
        }
        finally
        {
            File.Delete(partial);
        }
    }

    public string VolumePath(string volumeId) => System.IO.Path.Combine(_volumes, CheckedVolumeId(volumeId) + ".qcow2");

    public async Task<PooledDisk> EnsureVolumeAsync(string volumeId, int sizeGiB, CancellationToken cancellationToken)
    {
        if (sizeGiB < 1)
        {
            throw new HypervisorException($"volume {volumeId}: {sizeGiB} GiB is too small (at least 1)");
        }

        var path = VolumePath(volumeId);
        // A new volume is blank: it reads as zeros.
        await CreateOnceAsync(_volumes, path, volumeId, partial => QemuImg.CreateQcow2Async(partial, null, sizeGiB * GiB, cancellationToken));
        // Grown since it was made (a volume only grows): qemu-img takes it while no QEMU holds it, which is when it is opened.
        if (await QemuImg.VirtualSizeAsync(path, cancellationToken) < sizeGiB * GiB)
        {
            await QemuImg.RunAsync(["resize", "-q", "-f", "qcow2", path, (sizeGiB * GiB).ToString(System.Globalization.CultureInfo.InvariantCulture)],
                $"grow the volume {volumeId}", cancellationToken);
        }

        return new PooledDisk(Info.Id, path, "qcow2");
    }

    public Task DeleteVolumeAsync(string volumeId, CancellationToken cancellationToken)
    {
        File.Delete(VolumePath(volumeId));
        return Task.CompletedTask;
    }

    /// <summary>A volume id is 32 hex digits (the ledger makes them): anything else never becomes a path.</summary>
    private static string CheckedVolumeId(string volumeId) => CheckedId(volumeId, "volume");

    private static string CheckedId(string id, string what) =>
        VolumeRecord.IsValidId(id) ? id : throw new HypervisorException($"'{FieldError.Echo(id)}' is not a {what} id");

    public Task DeleteDiskAsync(VmId vmId, CancellationToken cancellationToken)
    {
        File.Delete(DiskPath(vmId));
        return Task.CompletedTask;
    }
}
