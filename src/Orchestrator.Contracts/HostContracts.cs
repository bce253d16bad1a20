// The HTTP API's host and capacity shapes (admin keys only), written by the API and read by the CLI.
namespace Orchestrator.Contracts;

/// <param name="Vms">how many VMs the ledger places on the host.</param>
/// <param name="Accelerator">"kvm" or "tcg", as the host's probe found; null from a host that did not say.</param>
/// <param name="AcceleratorNote">why the host fell back from KVM ("" when it did not).</param>
public sealed record HostDto(
    string Id, string State, string Driver, int Cpus, long MemoryMiB, int AllocatedVcpus, long AllocatedMemoryMiB, int Vms,
    long ReservedCpuMillicores, long ReservedMemoryMiB, string? Accelerator, string? CpuModel, string? AcceleratorNote,
    IReadOnlyList<StoragePoolDto>? Pools = null,
    IReadOnlyDictionary<string, string>? Labels = null);

/// <summary>A host's storage pool as it reported it: kind, capacity, overcommit, and whether every host reaches it.</summary>
public sealed record StoragePoolDto(string Id, string Kind, long CapacityGiB, double Overcommit, bool Shared);

/// <summary><c>GET /v1/capacity</c>: the cluster's capacity under the allocation ratios, and what HA admission control keeps free.</summary>
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
    bool HaHeadroomHolds);
