using Orchestrator.Actors.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Api;

/// <summary>The body of <c>POST /v1/vms</c>. Everything optional so that a missing field is named, not a 500.</summary>
public sealed record CreateVmRequest(
    string? Name,
    int? Vcpus,
    int? MemoryMiB,
    string? Image,
    string? RestartPolicy,
    int? CpuShares = null,
    int? CpuReservationMillicores = null,
    int? CpuLimitMillicores = null,
    int? MemoryReservationMiB = null,
    int? MemoryLimitMiB = null,
    string? Cpuset = null,
    Dictionary<string, string>? Labels = null,
    string? Driver = null,
    string? Accelerator = null)
{
    /// <summary>Null when the request names none (the VM gets the defaults).</summary>
    public VmResources? Resources =>
        CpuShares is null && CpuReservationMillicores is null && CpuLimitMillicores is null && MemoryReservationMiB is null
        && MemoryLimitMiB is null && Cpuset is null
            ? null
            : new VmResources(CpuShares, CpuReservationMillicores ?? 0, CpuLimitMillicores, MemoryReservationMiB ?? 0, MemoryLimitMiB, Cpuset);
}

/// <summary>
/// A VM's resources as shown: what the tenant set (shares is the effective weight), what the scheduler entitles it to
/// now (reservations, then shares, capped by limits and by demand), and what its vCPUs used and wanted (used plus time
/// spent waiting for a CPU) over the last window.
/// </summary>
public sealed record VmResourcesDto(
    int CpuShares,
    int CpuReservationMillicores,
    int? CpuLimitMillicores,
    int MemoryReservationMiB,
    int? MemoryLimitMiB,
    string? Cpuset,
    long? EntitledCpuMillicores,
    long? UsedCpuMillicores,
    long? DemandCpuMillicores)
{
    public static VmResourcesDto From(VmRecord vm, VmRuntime? runtime)
    {
        var r = vm.Spec.EffectiveResources;
        return new VmResourcesDto(r.SharesFor(vm.Spec.Vcpus), r.CpuReservationMillicores, r.CpuLimitMillicores, r.MemoryReservationMiB,
            r.MemoryLimitMiB, r.Cpuset, vm.EntitledCpuMillicores, runtime?.UsedCpuMillicores, runtime?.DemandCpuMillicores);
    }
}

public sealed record VcpuDto(int Index, int ThreadId, double CpuSeconds);

public sealed record VmDto(
    string Id,
    string Name,
    string Tenant,
    int Vcpus,
    int MemoryMiB,
    string Image,
    string RestartPolicy,
    string DesiredState,
    string State,
    string? Reason,
    string? Host,
    long Epoch,
    int? Pid,
    int Restarts,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ReadyAt,
    IReadOnlyList<VcpuDto> VcpuThreads,
    IReadOnlyList<string>? ConsoleTail,
    VmResourcesDto Resources,
    IReadOnlyDictionary<string, string> Labels,
    bool Paused,
    string? Driver,
    string? Accelerator)
{
    public static VmDto From(VmRecord vm, VmRuntime? runtime = null) => new(
        vm.Id.Compact,
        vm.Spec.Name,
        vm.Tenant.Value,
        vm.Spec.Vcpus,
        vm.Spec.MemoryMiB,
        vm.Spec.Image,
        vm.Spec.RestartPolicy.ToWire(),
        vm.Desired.ToString(),
        vm.Status.ToString(),
        vm.Reason,
        vm.Host?.Value,
        vm.Epoch.Value,
        vm.Pid,
        vm.Restarts,
        vm.CreatedAt,
        vm.ReadyAt,
        runtime?.Vcpus.Select(v => new VcpuDto(v.Index, v.ThreadId, Math.Round(v.CpuSeconds, 3))).ToList() ?? [],
        runtime?.ConsoleTail,
        VmResourcesDto.From(vm, runtime),
        vm.Spec.EffectiveLabels,
        runtime?.Paused ?? false,
        vm.Spec.Driver,
        vm.Spec.Accelerator);
}

/// <param name="Accelerator">"kvm" or "tcg", as the host's probe found; null from a host that did not say.</param>
/// <param name="AcceleratorNote">why the host fell back from KVM ("" when it did not).</param>
public sealed record HostDto(
    string Id, string State, string Driver, int Cpus, long MemoryMiB, int AllocatedVcpus, long AllocatedMemoryMiB, int Vms,
    long ReservedCpuMillicores, long ReservedMemoryMiB, string? Accelerator, string? CpuModel, string? AcceleratorNote)
{
    public static HostDto From(HostRecord h) =>
        new(h.Id.Value, h.State.ToString(), h.Driver, h.Cpus, h.MemoryMiB, h.AllocatedVcpus, h.AllocatedMemoryMiB, h.VmCount,
            h.ReservedCpuMillicores, h.ReservedMemoryMiB, h.Accelerator?.Kind, h.Accelerator?.CpuModel, h.Accelerator?.Note);
}

/// <summary>The cluster's capacity under the allocation ratios, and what HA admission control keeps free.</summary>
public sealed record CapacityDto(
    int HostsUp,
    long Vcpus,
    long AllocatedVcpus,
    long MemoryMiB,
    long AllocatedMemoryMiB,
    long ReservedCpuMillicores,
    long ReservedMemoryMiB,
    int HaHeadroomHosts,
    long HaNeededVcpus,
    long HaNeededMemoryMiB,
    long HaSpareVcpus,
    long HaSpareMemoryMiB,
    bool HaHeadroomHolds)
{
    public static CapacityDto From(IReadOnlyList<HostRecord> hosts, Domain.Placement.PlacementPolicy policy)
    {
        var up = hosts.Where(h => h.State == HostState.Up).ToList();
        var headroom = Domain.Placement.Placement.Headroom(up, policy);
        return new CapacityDto(
            up.Count,
            up.Sum(h => (long)Domain.Placement.Placement.VcpuCapacity(h, policy)),
            up.Sum(h => (long)h.AllocatedVcpus),
            up.Sum(h => Domain.Placement.Placement.MemoryCapacity(h, policy)),
            up.Sum(h => h.AllocatedMemoryMiB),
            up.Sum(h => h.ReservedCpuMillicores),
            up.Sum(h => h.ReservedMemoryMiB),
            headroom.Hosts,
            headroom.NeededVcpus,
            headroom.NeededMemoryMiB,
            headroom.SpareVcpus,
            headroom.SpareMemoryMiB,
            headroom.Holds);
    }
}

public sealed record ImageDto(string Name, string Description)
{
    public static ImageDto From(GuestImage image) => new(image.Name, image.Description);
}
