using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Hosts;

public static class HostAgentCommands
{
    /// <summary>From the scheduler: the ledger's current view of one VM on this host. The agent converges to it.</summary>
    /// <param name="TraceParent">the span that placed the VM, when its create is traced: the host's start continues it.</param>
    public sealed record Assign(VmAssignment Assignment, string? TraceParent = null) : IOrchestratorMessage;

    /// <summary>Asked by the scheduler (for <c>vm show</c>); answered by the VM's actor with <see cref="VmRuntime"/>.</summary>
    public sealed record GetVmRuntime(VmId VmId) : IOrchestratorMessage;

    /// <summary>
    /// Forwarded by the scheduler: stop (or go on) running the VM's guest code, keeping its memory. Answered by the VM's
    /// actor with <see cref="VmPauseResult"/> once every vCPU acknowledged. Not recorded in the ledger: a VM that
    /// starts again, or is adopted by a restarted node, runs.
    /// </summary>
    public sealed record SetPaused(VmId VmId, bool Paused) : IOrchestratorMessage;

    /// <summary>From the scheduler: a deleted volume's file goes from this host's pool, for good.</summary>
    public sealed record DeleteVolume(string VolumeId, string Pool) : IOrchestratorMessage;

    /// <summary>From the scheduler: a disk layer nothing backs on any more (a deleted snapshot's, a restored VM's old top) goes.</summary>
    public sealed record DeleteDiskLayer(string Layer, string Pool) : IOrchestratorMessage;

    /// <summary>
    /// From the scheduler: for each network with a VM on this host, the underlay addresses of the other hosts holding
    /// one of its VMs, whole (a network not listed has no peers). The host programs its VXLAN forwarding from it.
    /// </summary>
    public sealed record SetNetworkPeers(IReadOnlyList<Orchestrator.Domain.Networks.VxlanPeers> Networks) : IOrchestratorMessage;
}

/// <summary>The answer to a pause or resume: the VM's paused state now, or why it could not be done.</summary>
public sealed record VmPauseResult(VmId VmId, bool Paused, string? Error) : IOrchestratorMessage;

public sealed record VcpuUsage(int Index, int ThreadId, double CpuSeconds);

/// <summary>Live details of a VM from its host. Empty vCPUs when the VM is not running there.</summary>
/// <param name="UsedCpuMillicores">CPU the vCPUs used over the last usage window; null until a window has passed.</param>
/// <param name="DemandCpuMillicores">what they wanted over it: used plus the time they waited for a CPU.</param>
/// <param name="DiskThrottle">the cap QEMU holds on the VM's disks now (its limits, or its share of the host's disk).</param>
/// <param name="Network">the bandwidth its host holds the VM's NICs to now, each way: its guarantee under contention and
/// its ceiling (null: not shaped, or not running).</param>
public sealed record VmRuntime(VmId VmId, int? Pid, IReadOnlyList<VcpuUsage> Vcpus, IReadOnlyList<string> ConsoleTail,
    long? UsedCpuMillicores = null, long? DemandCpuMillicores = null, string? Cgroup = null, bool Paused = false,
    GuestInfo? Guest = null, Orchestrator.Domain.Shares.DiskThrottle? DiskThrottle = null, Orchestrator.Domain.Shares.NetRate? Network = null)
    : IOrchestratorMessage
{
    public static VmRuntime None(VmId id) => new(id, null, [], []);
}
