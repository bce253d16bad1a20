using Akka.Actor;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// The native engine's vCPUs: one watched <see cref="VcpuActor"/> per vCPU owns it and drives it. A pause or resume goes
/// to each and waits for each acknowledgement; a vCPU that fails, goes silent, or loses its actor while it still runs
/// fails the VM.
/// </summary>
internal sealed class OwnedVcpus(IVcpuHost host, VcpuSetup setup) : VcpuSupervision(setup)
{
    private readonly Dictionary<int, IActorRef> _actors = [];
    private readonly Dictionary<int, IVcpuHandle> _vcpus = [];

    protected override IReadOnlyCollection<int>? Acknowledging => _actors.Keys;

    /// <summary>One actor per vCPU, owning it; usage starts at zero and fills in from their samples.</summary>
    public override void Start()
    {
        var pins = CpuSet.VcpuPins(Setup.Assignment.EffectiveResources.Cpuset, host.Vcpus.Count);
        foreach (var vcpu in host.Vcpus)
        {
            Setup.Usage.Found(vcpu.Index, vcpu.ThreadId);
            _vcpus[vcpu.Index] = vcpu;
            var actor = VcpuActor.Owning(vcpu, Setup.SampleInterval, Setup.AckTimeout, pins?[vcpu.Index]);
            _actors[vcpu.Index] = Setup.Context.Watch(Setup.Context.ActorOf(actor, $"vcpu-{vcpu.Index}"));
        }
    }

    /// <summary>Each vCPU actor kicks its thread out of KVM_RUN and answers once the thread acknowledged.</summary>
    protected override void RequestPause(bool paused) =>
        TellAll(new VmProtocol.VcpuCommand(paused ? VmProtocol.VcpuOperation.Pause : VmProtocol.VcpuOperation.Resume));

    /// <summary>A running vCPU acknowledges a resume as it is, so all of them are asked.</summary>
    protected override void UndoPartialPause() => TellAll(new VmProtocol.VcpuCommand(VmProtocol.VcpuOperation.Resume));

    protected override VcpuVerdict Interpret(object message, bool stopping)
    {
        switch (message)
        {
            case VmProtocol.VcpuDone done:
                return new VcpuVerdict.Acknowledged(done.Index);
            case VmProtocol.VcpuRefused refused:
                return new VcpuVerdict.PauseEnded($"vCPU {refused.Index} could not {Verb(refused.Operation)}: {refused.Reason}");
            case VmProtocol.VcpuUnresponsive silent:
                return new VcpuVerdict.FailVm(
                    $"vCPU {silent.Index} did not acknowledge {Verb(silent.Operation)} within {silent.Waited.TotalSeconds:0.###} s");
            case VmProtocol.VcpuEnded ended:
                _actors.Remove(ended.Index);
                return ended.End.Kind == VcpuEndKind.Failed && !stopping
                    ? new VcpuVerdict.FailVm($"vCPU {ended.Index} failed: {ended.End.Reason}")
                    : new VcpuVerdict.Gone(ended.Index, ended.End.Reason);
            case Terminated terminated:
                return ActorStopped(terminated.ActorRef);
            default:
                return VcpuVerdict.None;
        }
    }

    /// <summary>
    /// A vCPU actor stops on its own only after its vCPU ended (VcpuEnded, which may arrive after this); any other stop
    /// leaves a vCPU nobody drives.
    /// </summary>
    private VcpuVerdict ActorStopped(IActorRef actor)
    {
        var verdict = VcpuVerdict.None;
        foreach (var (index, _) in _actors.Where(v => v.Value.Equals(actor)).ToList())
        {
            _actors.Remove(index);
            if (!_vcpus[index].Completion.IsCompleted && verdict == VcpuVerdict.None)
            {
                verdict = new VcpuVerdict.FailVm($"the actor of vCPU {index} stopped while its vCPU still ran");
            }
        }

        return verdict;
    }

    private void TellAll(VmProtocol.VcpuCommand command)
    {
        foreach (var actor in _actors.Values)
        {
            actor.Tell(command);
        }
    }

    private static string Verb(VmProtocol.VcpuOperation operation) => operation.ToString().ToLowerInvariant();
}
