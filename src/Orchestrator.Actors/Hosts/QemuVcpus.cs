using Akka.Actor;
using Akka.Event;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// QEMU's vCPUs: threads of the QEMU process, found over QMP, each given a <see cref="VcpuActor"/> that samples and pins
/// it and never drives it. QEMU pauses and resumes the whole VM with one QMP stop/cont and waits for its threads itself.
/// </summary>
internal sealed class QemuVcpus(IVmHandle handle, bool adopted, VcpuSetup setup) : VcpuSupervision(setup)
{
    protected override IReadOnlyCollection<int>? Acknowledging => null;

    public override void Start()
    {
        handle.QueryVcpusAsync(CancellationToken.None)
            .PipeTo(Setup.Context.Self, success: vcpus => new Found(vcpus), failure: ex => new NotFound(ex.Message));
        if (adopted)
        {
            // Pause is not kept across a node restart: whatever a previous run left paused runs again.
            handle.ResumeAsync(CancellationToken.None).PipeTo(Setup.Context.Self, success: () => new ResumedOnAdopt(null),
                failure: ex => new ResumedOnAdopt(ex));
        }
    }

    protected override void RequestPause(bool paused) =>
        (paused ? handle.PauseAsync(CancellationToken.None) : handle.ResumeAsync(CancellationToken.None))
            .WaitAsync(Setup.AckTimeout)
            .PipeTo(Setup.Context.Self, success: () => new PauseAnswered(null),
                failure: ex => new PauseAnswered(ex is TimeoutException ? $"QEMU did not answer within {Setup.AckTimeout.TotalSeconds:0.###} s" : ex.Message));

    /// <summary>Nothing to undo: QEMU stops or continues the VM as a whole.</summary>
    protected override void UndoPartialPause()
    {
    }

    protected override VcpuVerdict Interpret(object message, bool stopping)
    {
        switch (message)
        {
            case Found found:
                var pins = CpuSet.VcpuPins(Setup.Assignment.EffectiveResources.Cpuset, found.Vcpus.Count);
                foreach (var vcpu in found.Vcpus)
                {
                    Setup.Usage.Found(vcpu.Index, vcpu.ThreadId);
                    Setup.Context.ActorOf(VcpuActor.Props(vcpu.Index, handle.Pid, vcpu.ThreadId, Setup.SampleInterval, pins?[vcpu.Index]),
                        $"vcpu-{vcpu.Index}");
                }

                return VcpuVerdict.None;
            case NotFound notFound:
                Setup.Log.Warning("VM {0}: could not list vCPU threads: {1}", Setup.Assignment.Name, notFound.Reason);
                return VcpuVerdict.None;
            case ResumedOnAdopt { Failure: { } failure }:
                Setup.Log.Warning("VM {0}: could not resume it after adopting it: {1}", Setup.Assignment.Name, failure.Message);
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
