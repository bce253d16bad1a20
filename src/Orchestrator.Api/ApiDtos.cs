using Orchestrator.Actors.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Api;

/// <summary>The body of <c>POST /v1/vms</c>. Everything optional so that a missing field is named, not a 500.</summary>
public sealed record CreateVmRequest(string? Name, int? Vcpus, int? MemoryMiB, string? Image, string? RestartPolicy);

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
    IReadOnlyList<string>? ConsoleTail)
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
        runtime?.ConsoleTail);
}

public sealed record HostDto(
    string Id, string State, string Driver, int Cpus, long MemoryMiB, int AllocatedVcpus, long AllocatedMemoryMiB, int Vms)
{
    public static HostDto From(HostRecord h) =>
        new(h.Id.Value, h.State.ToString(), h.Driver, h.Cpus, h.MemoryMiB, h.AllocatedVcpus, h.AllocatedMemoryMiB, h.VmCount);
}

public sealed record ImageDto(string Name, string Description)
{
    public static ImageDto From(GuestImage image) => new(image.Name, image.Description);
}
