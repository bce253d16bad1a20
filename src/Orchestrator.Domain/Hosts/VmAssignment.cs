using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Hosts;

/// <summary>
/// What one host must do with one VM: the ledger's view, including the epoch it may run under. Small on purpose: a
/// host's assignments travel together in one cluster message, so the VM's bootstrap (up to 64 KiB of user-data and 16
/// keys) stays in the ledger and the host fetches it when it starts the VM (<see cref="HasBootstrap"/>).
/// </summary>
public sealed record VmAssignment(
    VmId VmId,
    string Name,
    int Vcpus,
    int MemoryMiB,
    string Image,
    RestartPolicy RestartPolicy,
    Epoch Epoch,
    DesiredState Desired,
    bool Deleting,
    VmStatus Status,
    TenantId Tenant = default,
    VmResources? Resources = null,
    TenantCpuPool? Pool = null,
    bool HasBootstrap = false,
    int DiskGiB = 0,
    string? DiskPool = null,
    IReadOnlyList<NicAssignment>? Nics = null,
    IReadOnlyList<Storage.VolumeAssignment>? Volumes = null,
    string? DiskLayer = null,
    string? DiskBacking = null,
    Storage.ImageDisk? ImageDisk = null)
{
    /// <param name="pool">the VM's tenant's CPU pool on each host, when it has one.</param>
    /// <param name="nics">the VM's NICs as its host plugs them (the ledger resolves its networks).</param>
    /// <remarks><see cref="ImageDisk"/> is the imported image the VM's disk is an overlay on (null: a catalog image's own).
    /// <see cref="DiskLayer"/> is the layer file the VM's QEMU writes (null: its own id), on <see cref="DiskBacking"/>
    /// (a snapshot's layer; null: the image).</remarks>
    public static VmAssignment From(VmRecord vm, TenantCpuPool? pool = null, IReadOnlyList<NicAssignment>? nics = null) => new(
        vm.Id, vm.Spec.Name, vm.Spec.Vcpus, vm.Spec.MemoryMiB, vm.Spec.Image, vm.Spec.RestartPolicy,
        vm.Epoch, vm.Desired, vm.Status == VmStatus.Deleting, vm.Status, vm.Tenant, vm.Spec.EffectiveResources, pool,
        vm.Spec.Bootstrap is not null, vm.Spec.EffectiveDiskGiB, vm.Disk?.Pool, nics is { Count: > 0 } ? nics : null,
        DiskLayer: vm.Disk?.Layer, DiskBacking: vm.Disk?.Backing);

    /// <summary>The catalog image whose kernel and initrd boot the VM: its own, or for an imported image the one named at import.</summary>
    public string BootImage => ImageDisk?.Boot ?? Image;

    /// <summary>Shares, reservations and limits to enforce (the tenant pool is <see cref="Tenant"/>).</summary>
    public VmResources EffectiveResources => Resources ?? VmResources.Default;

    /// <summary>
    /// Whether a process for this VM should be running on its host. Not after the host gave up on it (Failed) or
    /// its guest powered off (Stopped): only a new start request, which moves the ledger's status on, revives it.
    /// </summary>
    public bool ShouldRun => !Deleting && Desired == DesiredState.Running && Status is not (VmStatus.Failed or VmStatus.Stopped);
}
