// Per-vCPU control for drivers whose vCPUs are threads of this process (the native KVM engine). A VcpuActor owns one
// IVcpuHandle: Pause/Resume/Stop go in as messages, each returned task is the acknowledgement (Paused/Resumed/Stopped),
// and a task that does not complete within the actor's timeout is a failure its VM actor handles.
namespace Orchestrator.Hypervisor;

/// <summary>A VM handle whose vCPUs can be driven one by one (implemented next to <see cref="IVmHandle"/>).</summary>
public interface IVcpuHost
{
    /// <summary>The vCPUs in index order; index 0 is the boot processor.</summary>
    IReadOnlyList<IVcpuHandle> Vcpus { get; }
}

/// <summary>One vCPU: a dedicated host thread looping on KVM_RUN.</summary>
public interface IVcpuHandle
{
    int Index { get; }

    /// <summary>The host thread id (gettid) of the vCPU thread; 0 until the thread has started.</summary>
    int ThreadId { get; }

    VcpuState State { get; }

    /// <summary>A snapshot of the exit counters (readable from any thread at any time).</summary>
    VcpuCounters Counters { get; }

    /// <summary>Completes (never faults) when the vCPU thread has ended for good, saying why.</summary>
    Task<VcpuEnd> Completion { get; }

    /// <summary>
    /// Stops running guest code: completes once the thread is out of KVM_RUN and parked. Allowed in Running (and
    /// Paused: completes at once); faults with <see cref="HypervisorException"/> once the vCPU has ended. Cancelling
    /// the token abandons the wait, not the request.
    /// </summary>
    Task PauseAsync(CancellationToken cancellationToken);

    /// <summary>Runs guest code again: completes once the thread has left its parked state. Allowed in Paused (and
    /// Running: completes at once); faults once the vCPU has ended.</summary>
    Task ResumeAsync(CancellationToken cancellationToken);

    /// <summary>Ends the vCPU thread: completes once it has left KVM_RUN for good. Allowed in every state (completes at
    /// once when already ended). Stopping one vCPU does not end the VM; the VM's own kill does that.</summary>
    Task StopAsync(CancellationToken cancellationToken);
}

public enum VcpuState
{
    Starting,
    Running,
    Paused,
    Stopped,
    Failed,
}

public enum VcpuEndKind
{
    /// <summary>On request (<see cref="IVcpuHandle.StopAsync"/>, or the VM being killed).</summary>
    Stopped,

    /// <summary>The guest ended it: reset, power-off or halt.</summary>
    Guest,

    /// <summary>KVM refused to run it (entry failure, internal error) or the engine failed.</summary>
    Failed,
}

public sealed record VcpuEnd(VcpuEndKind Kind, string Reason);

/// <summary>Exit counters of one vCPU: every return from KVM_RUN, by kind, and the kicks that forced one.</summary>
public sealed record VcpuCounters(long Exits, long IoExits, long MmioExits, long InterruptedExits, long Kicks);
