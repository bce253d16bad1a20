using Akka.Actor;
using Akka.Event;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Hosts;

/// <summary>What a VM actor's vCPU supervision works with; all of it belongs to the VM actor.</summary>
internal sealed record VcpuSetup(IActorContext Context, VmAssignment Assignment, VcpuUsageMeter Usage, VmExitCause Exit,
    TimeSpan SampleInterval, TimeSpan AckTimeout, ILoggingAdapter Log);

/// <summary>
/// How a VM actor runs and pauses its vCPUs, chosen once its handle is there: QEMU runs its own vCPU threads
/// (<see cref="QemuVcpus"/>: sampled, pinned, paused for the whole VM over QMP), the native engine gives each vCPU to a
/// vCPU actor that drives it (<see cref="OwnedVcpus"/>). Either way one <see cref="VcpuActor"/> per vCPU feeds the usage
/// meter, and pauses run here: one at a time, answered once the regime says it is done, undone when it failed half-way.
/// </summary>
internal abstract class VcpuSupervision(VcpuSetup setup)
{
    private readonly VmPause<IActorRef> _pause = new();

    protected VcpuSetup Setup => setup;

    public bool Paused => _pause.Paused;

    /// <summary>The vCPUs a pause or resume waits for one by one; null when the hypervisor answers for the whole VM.</summary>
    protected abstract IReadOnlyCollection<int>? Acknowledging { get; }

    public static VcpuSupervision For(IVmHandle handle, bool adopted, VcpuSetup setup) =>
        handle is IVcpuHost host ? new OwnedVcpus(host, setup) : new QemuVcpus(handle, adopted, setup);

    /// <summary>Starts the vCPU actors, or finding the threads they are for.</summary>
    public abstract void Start();

    /// <summary>Starts a pause or resume, or answers at once why not (or that the VM already is so).</summary>
    public void SetPaused(bool paused, IActorRef replyTo)
    {
        if (_pause.Request(paused, replyTo, setup.Exit.StopRequested, Acknowledging) is { } answer)
        {
            Reply(answer);
            return;
        }

        RequestPause(paused);
    }

    /// <summary>
    /// Reads a <see cref="VmProtocol.IVcpuSupervisionMessage"/> or a watched actor's end. True when it failed the VM (the
    /// failure is recorded in its exit cause): the VM must be killed now.
    /// </summary>
    public bool Read(object message)
    {
        switch (Interpret(message, setup.Exit.StopRequested))
        {
            case VcpuVerdict.Acknowledged acknowledged:
                Answer(_pause.Acknowledged(acknowledged.Index));
                return false;
            case VcpuVerdict.PauseEnded ended:
                Answer(_pause.Finish(ended.Error));
                return false;
            case VcpuVerdict.Gone gone when _pause.IsWaitingFor(gone.Index):
                Answer(_pause.Finish($"vCPU {gone.Index} ended: {gone.Reason}"));
                return false;
            case VcpuVerdict.FailVm failed when setup.Exit.Fail(failed.Reason):
                // The VM can no longer be paused, resumed or trusted.
                setup.Log.Error("VM {0} ({1}): {2}; killing it", setup.Assignment.Name, setup.Assignment.VmId, failed.Reason);
                Answer(_pause.Finish(failed.Reason));
                return true;
            default:
                return false;
        }
    }

    /// <summary>Fails the pause or resume under way, if any: the VM is going.</summary>
    public void EndPause(string reason) => Answer(_pause.Finish(reason));

    /// <summary>Asks the vCPUs to stop or go on running guest code; the answers come back as messages for <see cref="Interpret"/>.</summary>
    protected abstract void RequestPause(bool paused);

    /// <summary>A pause failed half-way: lets whatever vCPUs did park run again, so the VM is wholly what it counts as.</summary>
    protected abstract void UndoPartialPause();

    /// <summary>What a message about the vCPUs means for the VM.</summary>
    /// <param name="stopping">whether the VM is being stopped or killed: then a vCPU that fails is no news.</param>
    protected abstract VcpuVerdict Interpret(object message, bool stopping);

    private void Answer(PauseAnswer<IActorRef>? answer)
    {
        if (answer is null)
        {
            return;
        }

        if (answer.Error is null)
        {
            setup.Log.Info("VM {0} ({1}) {2}", setup.Assignment.Name, setup.Assignment.VmId, answer.Paused ? "paused" : "resumed");
        }
        else if (answer.Wanted && setup.Exit.Failure is null)
        {
            UndoPartialPause();
        }

        Reply(answer);
    }

    private void Reply(PauseAnswer<IActorRef> answer) =>
        answer.ReplyTo.Tell(new VmPauseResult(setup.Assignment.VmId, answer.Paused, answer.Error));
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
