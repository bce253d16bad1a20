using Orchestrator.Domain;
using Orchestrator.Domain.Storage;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Storage;

/// <summary>
/// A <c>dir</c> pool: one qcow2 per VM in <c>&lt;path&gt;/disks/&lt;vm id&gt;.qcow2</c>. Thin: a disk takes what its
/// guest wrote (plus qcow2's metadata); an overlay reads the rest from its image's base file, which every VM of that image
/// shares. On a filesystem every host mounts, mark it shared and the disk follows its VM to another host.
/// </summary>
public sealed class DirStoragePool : IStoragePool
{
    private const long GiB = 1L << 30;

    private readonly string _disks;

    public DirStoragePool(StoragePoolInfo info, string path)
    {
        Info = info;
        Path = System.IO.Path.GetFullPath(path);
        _disks = System.IO.Path.Combine(Path, "disks");
    }

    public StoragePoolInfo Info { get; }

    /// <summary>The pool's directory (operator configuration).</summary>
    public string Path { get; }

    public string DiskPath(VmId vmId) => System.IO.Path.Combine(_disks, vmId.Compact + ".qcow2");

    public bool HasDisk(VmId vmId) => File.Exists(DiskPath(vmId));

    public async Task<PooledDisk> EnsureDiskAsync(VmId vmId, int sizeGiB, string? baseImage, CancellationToken cancellationToken)
    {
        if (sizeGiB < 1)
        {
            throw new HypervisorException($"VM {vmId}: a disk of {sizeGiB} GiB is too small (at least 1)");
        }

        var path = DiskPath(vmId);
        if (!File.Exists(path))
        {
            // Disks hold every tenant's data: owner only, like the run directory.
            QemuDriver.EnsureDirectory(Path);
            QemuDriver.EnsureDirectory(_disks);
            // Made under a temporary name and renamed: a start that dies half way leaves no half disk to be mistaken for
            // the VM's own, and two hosts racing on a shared pool both end with one whole file.
            var partial = System.IO.Path.Combine(_disks, $".{vmId.Compact}.{Environment.ProcessId}.{Guid.NewGuid():N}.partial");
            try
            {
                // An overlay is as big as its base (qemu-img refuses nothing smaller); the GiB asked for is what the
                // ledger counts against the pool.
                await QemuImg.CreateQcow2Async(partial, baseImage, baseImage is null ? sizeGiB * GiB : null, cancellationToken);
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

        return new PooledDisk(Info.Id, path, "qcow2");
    }

    public Task DeleteDiskAsync(VmId vmId, CancellationToken cancellationToken)
    {
        File.Delete(DiskPath(vmId));
        return Task.CompletedTask;
    }
}
