using Orchestrator.Domain;
using Orchestrator.Domain.Storage;

namespace Orchestrator.Hypervisor.Storage;

/// <summary>
/// Where a VM's persistent disk lives: what QEMU opens (a file for <c>dir</c>; an rbd: URI for Ceph when it comes) and in
/// which format.
/// </summary>
public sealed record PooledDisk(string PoolId, string DriveFile, string Format);

/// <summary>
/// One storage pool of a host. Disks are named by VM id only (never by anything a tenant typed), created on a VM's first
/// start and kept until the VM is deleted. A kind of pool (dir, rbd) is one implementation of this.
/// </summary>
public interface IStoragePool
{
    StoragePoolInfo Info { get; }

    /// <summary>
    /// The VM's disk, created when it does not exist yet: a copy-on-write overlay on <paramref name="baseImage"/> when
    /// given (a qcow2 shared by every VM of that image), else a blank disk of <paramref name="sizeGiB"/> that reads as zeros.
    /// An existing disk is returned as it is: its data is what the VM keeps.
    /// </summary>
    Task<PooledDisk> EnsureDiskAsync(VmId vmId, int sizeGiB, string? baseImage, CancellationToken cancellationToken);

    /// <summary>Removes the VM's disk for good (nothing of it is left to read); nothing when it has none.</summary>
    Task DeleteDiskAsync(VmId vmId, CancellationToken cancellationToken);

    /// <summary>
    /// The volume's file, created blank (reads as zeros) of <paramref name="sizeGiB"/> when it does not exist yet, grown when
    /// it is smaller. Named by the volume's id only. Called before a QEMU opens it (its start, or a hot attach).
    /// </summary>
    Task<PooledDisk> EnsureVolumeAsync(string volumeId, int sizeGiB, CancellationToken cancellationToken);

    /// <summary>Removes the volume's file for good; nothing when there is none.</summary>
    Task DeleteVolumeAsync(string volumeId, CancellationToken cancellationToken);

    /// <summary>What QEMU opens for the disk layer <paramref name="layer"/> (a VM's top, or a snapshot's frozen file): ids only.</summary>
    string LayerPath(string layer);

    /// <summary>
    /// The disk layer, created when it does not exist yet: an overlay on the layer <paramref name="backingLayer"/> of this pool
    /// (a snapshot's) when given, else on <paramref name="baseImage"/>, else blank of <paramref name="sizeGiB"/>.
    /// </summary>
    /// <param name="baseFormat">the format of <paramref name="baseImage"/> (qcow2, or raw for an imported raw image).</param>
    Task<PooledDisk> EnsureLayerAsync(string layer, string? backingLayer, int sizeGiB, string? baseImage, CancellationToken cancellationToken,
        string baseFormat = "qcow2");

    /// <summary>Removes a disk layer's file for good; nothing when there is none.</summary>
    Task DeleteLayerAsync(string layer, CancellationToken cancellationToken);
}
