using Akka.Actor;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// One vCPU of a running VM: owns its host thread id and reports the thread's CPU time to the VM actor. (With the
/// native KVM engine this actor will own the KVM_RUN thread itself.)
/// </summary>
public sealed class VcpuActor : ReceiveActor, IWithTimers
{
    private readonly int _index;
    private readonly int _pid;
    private readonly int _threadId;
    private readonly TimeSpan _interval;

    public VcpuActor(int index, int pid, int threadId, TimeSpan interval)
    {
        _index = index;
        _pid = pid;
        _threadId = threadId;
        _interval = interval;

        Receive<Sample>(_ =>
        {
            // A /proc read is a few microseconds and never blocks on I/O, so it is fine on the dispatcher.
            if (ProcStat.ReadThreadCpuTime(_pid, _threadId) is { } cpu)
            {
                Context.Parent.Tell(new VmProtocol.VcpuSample(_index, _threadId, cpu));
            }
            else
            {
                Context.Stop(Self); // the thread is gone: the VM actor sees the process exit separately
            }
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(int index, int pid, int threadId, TimeSpan interval) =>
        Akka.Actor.Props.Create(() => new VcpuActor(index, pid, threadId, interval));

    protected override void PreStart()
    {
        Self.Tell(Sample.Instance);
        Timers.StartPeriodicTimer("sample", Sample.Instance, _interval);
    }

    private sealed class Sample
    {
        public static readonly Sample Instance = new();
    }
}
