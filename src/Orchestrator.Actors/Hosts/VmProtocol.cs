using Orchestrator.Domain;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Actors.Hosts;

/// <summary>Between a host agent and its VM actors, and a VM actor and its vCPU actors. Never leaves the node.</summary>
public static class VmProtocol
{
    /// <summary>Ask the guest to power off; kill it after the stop timeout.</summary>
    public sealed record Stop
    {
        public static readonly Stop Instance = new();
        private Stop() { }
    }

    /// <summary>End the process now (delete, or a stale epoch).</summary>
    public sealed record Kill
    {
        public static readonly Kill Instance = new();
        private Kill() { }
    }

    /// <summary>To the host agent, just before the VM actor stops: how its process ended.</summary>
    public sealed record Exited(VmId VmId, Epoch Epoch, ExitKind Kind, string Reason, TimeSpan Uptime);

    /// <summary>To the host agent: the process could not be started at all; restarting would not help.</summary>
    public sealed record StartFailed(VmId VmId, Epoch Epoch, string Reason);

    /// <summary>From the host agent: the volumes the ledger attaches to the VM now; a running VM has them plugged and unplugged to match.</summary>
    public sealed record SyncVolumes(IReadOnlyList<Orchestrator.Domain.Storage.VolumeAssignment> Wanted);

    /// <summary>
    /// From the host agent, when the ledger's copy of the VM (in the assignments it re-reads every register interval)
    /// has it earlier in its start than the VM actor reported. Reports are told, not acknowledged: one lost while the
    /// scheduler moved to another node would leave a ready guest Running in the ledger for good.
    /// </summary>
    public sealed record ReportAgain(Epoch Epoch, VmStatus LedgerStatus);

    /// <summary>From the host agent: the disk layer the ledger has the VM write to now (a snapshot was taken): a running VM switches to it.</summary>
    public sealed record SyncDisk(VmDiskRequest Wanted);

    /// <summary>From the host agent: what to enforce on the VM's cgroup (sent again whenever it changes).</summary>
    public sealed record Enforce(CgroupLimits Limits);

    /// <summary>From the host agent: the cap on the VM's disks, its limits or its share of the host's (sent again whenever it changes).</summary>
    public sealed record Throttle(Orchestrator.Domain.Shares.DiskThrottle Disk);

    /// <summary>
    /// From the host agent: the bandwidth its host holds the VM's NICs to now, each way (null: not shaped); sent again
    /// whenever it changes. The VM only shows it: the host's HTB classes enforce it.
    /// </summary>
    public sealed record Shape(Orchestrator.Domain.Shares.NetRate? Network);

    /// <summary>
    /// To the host agent, every usage interval: CPU the VM's vCPUs used over the last window, and what they wanted
    /// (used plus the time they waited, runnable, for a CPU), in millicores.
    /// </summary>
    public sealed record Usage(VmId VmId, Epoch Epoch, long UsedMillicores, long DemandMillicores);

    /// <summary>About the VM's vCPUs, for the VM actor's vCPU supervision to read (see <see cref="VcpuSupervision"/>).</summary>
    public interface IVcpuSupervisionMessage;

    /// <summary>From a vCPU actor: its thread's CPU time so far, and its time spent waiting for a CPU when known.</summary>
    public sealed record VcpuSample(int Index, int ThreadId, TimeSpan CpuTime, TimeSpan? Waiting);

    /// <summary>What a VM actor asks of one vCPU it owns (native engine).</summary>
    public enum VcpuOperation
    {
        Pause,
        Resume,
        Stop,
    }

    /// <summary>To a vCPU actor that owns its vCPU: do this, then answer <see cref="VcpuDone"/>.</summary>
    public sealed record VcpuCommand(VcpuOperation Operation);

    /// <summary>The vCPU's thread acknowledged: it is out of KVM_RUN and parked (Pause), running (Resume) or ended (Stop).</summary>
    public sealed record VcpuDone(int Index, VcpuOperation Operation) : IVcpuSupervisionMessage;

    /// <summary>The vCPU refused at once (it had already ended): nothing to wait for.</summary>
    public sealed record VcpuRefused(int Index, VcpuOperation Operation, string Reason) : IVcpuSupervisionMessage;

    /// <summary>To the VM actor: the vCPU did not acknowledge in time. Its VM cannot be trusted to stop or run as told.</summary>
    public sealed record VcpuUnresponsive(int Index, VcpuOperation Operation, TimeSpan Waited) : IVcpuSupervisionMessage;

    /// <summary>To the VM actor: the vCPU's thread ended (the guest ended it, it was stopped, or KVM failed it).</summary>
    public sealed record VcpuEnded(int Index, VcpuEnd End) : IVcpuSupervisionMessage;
}
