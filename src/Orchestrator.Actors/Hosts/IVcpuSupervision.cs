namespace Orchestrator.Actors.Hosts;

/// <summary>
/// How a VM actor runs its vCPUs, chosen once its handle is there: QEMU runs its own vCPU threads (<see cref="QemuVcpus"/>:
/// sampled, pinned, paused for the whole VM over QMP), the native engine gives each vCPU to a vCPU actor that drives it
/// (<see cref="OwnedVcpus"/>). Both feed the VM's usage meter; what their messages mean for the VM comes back as a
/// <see cref="VcpuVerdict"/> for the VM actor to act on.
/// </summary>
internal interface IVcpuSupervision
{
    /// <summary>The vCPUs a pause or resume waits for one by one; null when the hypervisor answers for the whole VM.</summary>
    IReadOnlyCollection<int>? Acknowledging { get; }

    /// <summary>Starts the vCPU actors, or finding the threads they are for.</summary>
    void Start();

    /// <summary>Asks the vCPUs to stop or go on running guest code; the answers come back as messages for <see cref="Interpret"/>.</summary>
    void RequestPause(bool paused);

    /// <summary>A pause failed half-way: lets whatever vCPUs did park run again, so the VM is wholly what it counts as.</summary>
    void UndoPartialPause();

    /// <summary>What a <see cref="VmProtocol.IVcpuSupervisionMessage"/>, or a watched actor's end, means for the VM.</summary>
    /// <param name="stopping">whether the VM is being stopped or killed: then a vCPU that fails is no news.</param>
    VcpuVerdict Interpret(object message, bool stopping);
}

/// <summary>What a vCPU's news means for its VM.</summary>
internal abstract record VcpuVerdict
{
    /// <summary>Nothing for the VM to do.</summary>
    public static readonly VcpuVerdict None = new Nothing();

    /// <summary>The vCPU acknowledged the pause or resume under way.</summary>
    public sealed record Acknowledged(int Index) : VcpuVerdict;

    /// <summary>The pause or resume under way is over: done when there is no error.</summary>
    public sealed record PauseEnded(string? Error) : VcpuVerdict;

    /// <summary>The vCPU ended on its own terms (stopped, or failed while the VM stops): a pause waiting for it fails.</summary>
    public sealed record Gone(int Index, string Reason) : VcpuVerdict;

    /// <summary>The VM can no longer be paused, resumed or trusted: kill it as crashed.</summary>
    public sealed record FailVm(string Reason) : VcpuVerdict;

    private sealed record Nothing : VcpuVerdict;
}
