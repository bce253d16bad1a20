using Akka.Actor;
using Akka.Event;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// One vCPU of a running VM: owns its host thread id, pins it to its host CPUs when the VM has a cpuset, and reports
/// the thread's CPU time to the VM actor. (With the native KVM engine this actor will own the KVM_RUN thread itself.)
/// </summary>
public sealed class VcpuActor : ReceiveActor, IWithTimers
{
    private readonly int _index;
    private readonly int _pid;
    private readonly int _threadId;
    private readonly TimeSpan _interval;
    private readonly IReadOnlyList<int>? _pin;

    public VcpuActor(int index, int pid, int threadId, TimeSpan interval, IReadOnlyList<int>? pin = null)
    {
        _pin = pin;
        _index = index;
        _pid = pid;
        _threadId = threadId;
        _interval = interval;

        Receive<Sample>(_ =>
        {
            // A /proc read is a few microseconds and never blocks on I/O, so it is fine on the dispatcher. schedstat is in
            // nanoseconds and also says how long the thread waited for a CPU; stat (clock ticks) stands in without it.
            if (ProcStat.ReadThreadSchedStat(_pid, _threadId) is { } sched)
            {
                Context.Parent.Tell(new VmProtocol.VcpuSample(_index, _threadId, sched.OnCpu, sched.Waiting));
            }
            else if (ProcStat.ReadThreadCpuTime(_pid, _threadId) is { } cpu)
            {
                Context.Parent.Tell(new VmProtocol.VcpuSample(_index, _threadId, cpu, null));
            }
            else
            {
                Context.Stop(Self); // the thread is gone: the VM actor sees the process exit separately
            }
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(int index, int pid, int threadId, TimeSpan interval, IReadOnlyList<int>? pin = null) =>
        Akka.Actor.Props.Create(() => new VcpuActor(index, pid, threadId, interval, pin));

    protected override void PreStart()
    {
        if (_pin is not null)
        {
            try
            {
                ThreadAffinity.Set(_threadId, _pin);
            }
            catch (HypervisorException ex)
            {
                Context.GetLogger().Error("vCPU {0} (thread {1}) not pinned: {2}", _index, _threadId, ex.Message);
            }
        }

        Self.Tell(Sample.Instance);
        Timers.StartPeriodicTimer("sample", Sample.Instance, _interval);
    }

    private sealed class Sample
    {
        public static readonly Sample Instance = new();
    }
}
