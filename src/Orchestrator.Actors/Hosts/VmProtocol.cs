using Orchestrator.Domain;
using Orchestrator.Domain.Vms;

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

    /// <summary>From a vCPU actor: its thread's CPU time so far.</summary>
    public sealed record VcpuSample(int Index, int ThreadId, TimeSpan CpuTime);
}
