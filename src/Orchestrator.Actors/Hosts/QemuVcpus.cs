using Akka.Actor;
using Akka.Event;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// QEMU's vCPUs: threads of the QEMU process, found over QMP, each given a <see cref="VcpuActor"/> that samples and pins
/// it and never drives it. QEMU pauses and resumes the whole VM with one QMP stop/cont and waits for its threads itself.
/// </summary>
internal sealed class QemuVcpus(IVmHandle handle, bool adopted, IActorContext context, VcpuUsageMeter usage, string? cpuset,
    TimeSpan sampleInterval, TimeSpan ackTimeout, ILoggingAdapter log, string vmName) : IVcpuSupervision
{
    public IReadOnlyCollection<int>? Acknowledging => null;

    public void Start()
    {
        handle.QueryVcpusAsync(CancellationToken.None)
            .PipeTo(context.Self, success: vcpus => new Found(vcpus), failure: ex => new NotFound(ex.Message));
        if (adopted)
        {
            // Pause is not kept across a node restart: whatever a previous run left paused runs again.
            handle.ResumeAsync(CancellationToken.None).PipeTo(context.Self, success: () => new ResumedOnAdopt(null),
                failure: ex => new ResumedOnAdopt(ex));
        }
    }

    public void RequestPause(bool paused) =>
        (paused ? handle.PauseAsync(CancellationToken.None) : handle.ResumeAsync(CancellationToken.None))
            .WaitAsync(ackTimeout)
            .PipeTo(context.Self, success: () => new PauseAnswered(null),
                failure: ex => new PauseAnswered(ex is TimeoutException ? $"QEMU did not answer within {ackTimeout.TotalSeconds:0.###} s" : ex.Message));

    /// <summary>Nothing to undo: QEMU stops or continues the VM as a whole.</summary>
    public void UndoPartialPause()
    {
    }

    public VcpuVerdict Interpret(object message, bool stopping)
    {
        switch (message)
        {
            case Found found:
                var pins = CpuSet.VcpuPins(cpuset, found.Vcpus.Count);
                foreach (var vcpu in found.Vcpus)
                {
                    usage.Found(vcpu.Index, vcpu.ThreadId);
                    context.ActorOf(VcpuActor.Props(vcpu.Index, handle.Pid, vcpu.ThreadId, sampleInterval, pins?[vcpu.Index]),
                        $"vcpu-{vcpu.Index}");
                }

                return VcpuVerdict.None;
            case NotFound notFound:
                log.Warning("VM {0}: could not list vCPU threads: {1}", vmName, notFound.Reason);
                return VcpuVerdict.None;
            case ResumedOnAdopt { Failure: { } failure }:
                log.Warning("VM {0}: could not resume it after adopting it: {1}", vmName, failure.Message);
                return VcpuVerdict.None;
            case PauseAnswered answered:
                return new VcpuVerdict.PauseEnded(answered.Error);
            default:
                return VcpuVerdict.None;
        }
    }

    private sealed record Found(IReadOnlyList<VcpuInfo> Vcpus) : VmProtocol.IVcpuSupervisionMessage;

    private sealed record NotFound(string Reason) : VmProtocol.IVcpuSupervisionMessage;

    private sealed record ResumedOnAdopt(Exception? Failure) : VmProtocol.IVcpuSupervisionMessage;

    private sealed record PauseAnswered(string? Error) : VmProtocol.IVcpuSupervisionMessage;
}
