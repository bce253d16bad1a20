using Akka.Actor;
using Akka.Event;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// One vCPU of a running VM. Always: owns its host thread id, pins it to its host CPUs when the VM has a cpuset, and
/// reports the thread's CPU time to the VM actor. With the native KVM engine it also owns the vCPU itself (the thread
/// looping on KVM_RUN): Pause, Resume and Stop come in as <see cref="VmProtocol.VcpuCommand"/>s and are answered once
/// the thread acknowledged them; a thread that does not acknowledge within the timeout is reported to the VM actor as
/// unresponsive, and so is a thread that ends.
/// </summary>
public sealed class VcpuActor : ReceiveActor, IWithTimers
{
    private readonly int _index;
    private readonly int _pid;
    private readonly TimeSpan _interval;
    private readonly IReadOnlyList<int>? _pin;
    private readonly IVcpuHandle? _vcpu;
    private readonly TimeSpan _ackTimeout;
    private int _threadId;

    // Public: Props.Create builds actors through their public constructors; use Props or Owning.
    public VcpuActor(int index, int pid, int threadId, TimeSpan interval, IReadOnlyList<int>? pin, IVcpuHandle? vcpu, TimeSpan ackTimeout)
    {
        _pin = pin;
        _index = index;
        _pid = pid;
        _threadId = threadId;
        _interval = interval;
        _vcpu = vcpu;
        _ackTimeout = ackTimeout;

        Receive<Sample>(_ => SampleCpuTime());
        Receive<VmProtocol.VcpuCommand>(OnCommand);
        Receive<Acknowledged>(ack => ack.ReplyTo.Tell(new VmProtocol.VcpuDone(_index, ack.Operation)));
        Receive<NotAcknowledged>(OnNotAcknowledged);
        Receive<Ended>(ended =>
        {
            Context.Parent.Tell(new VmProtocol.VcpuEnded(_index, ended.End));
            Context.Stop(Self);
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>A vCPU thread of another process (QEMU): sampled and pinned, never driven.</summary>
    public static Props Props(int index, int pid, int threadId, TimeSpan interval, IReadOnlyList<int>? pin = null) =>
        Akka.Actor.Props.Create(() => new VcpuActor(index, pid, threadId, interval, pin, null, TimeSpan.Zero));

    /// <summary>A vCPU of this process (native engine) that this actor drives and whose end it reports.</summary>
    public static Props Owning(IVcpuHandle vcpu, TimeSpan interval, TimeSpan ackTimeout, IReadOnlyList<int>? pin = null) =>
        Akka.Actor.Props.Create(() => new VcpuActor(vcpu.Index, Environment.ProcessId, vcpu.ThreadId, interval, pin, vcpu, ackTimeout));

    protected override void PreStart()
    {
        if (_vcpu is not null)
        {
            _vcpu.Completion.PipeTo(Self, success: end => new Ended(end));
        }

        if (_pin is not null && _threadId != 0)
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

    private void SampleCpuTime()
    {
        if (_threadId == 0 && _vcpu is not null)
        {
            _threadId = _vcpu.ThreadId; // an owned thread may not have said its id yet
        }

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
        else if (_vcpu is null)
        {
            Context.Stop(Self); // the thread is gone: the VM actor sees the process exit separately
        }
    }

    private void OnCommand(VmProtocol.VcpuCommand command)
    {
        if (_vcpu is null)
        {
            Sender.Tell(new VmProtocol.VcpuRefused(_index, command.Operation, "this vCPU is a thread of another process (QEMU): pause the VM instead"));
            return;
        }

        Task acknowledged;
        try
        {
            acknowledged = command.Operation switch
            {
                VmProtocol.VcpuOperation.Pause => _vcpu.PauseAsync(CancellationToken.None),
                VmProtocol.VcpuOperation.Resume => _vcpu.ResumeAsync(CancellationToken.None),
                _ => _vcpu.StopAsync(CancellationToken.None),
            };
        }
        catch (HypervisorException ex)
        {
            Sender.Tell(new VmProtocol.VcpuRefused(_index, command.Operation, ex.Message));
            return;
        }

        var replyTo = Sender;
        var operation = command.Operation;
        // The request stays with the vCPU thread when the wait is abandoned: the VM actor decides what a silent vCPU means.
        acknowledged.WaitAsync(_ackTimeout).PipeTo(Self,
            success: () => new Acknowledged(operation, replyTo),
            failure: ex => new NotAcknowledged(operation, replyTo, ex));
    }

    private void OnNotAcknowledged(NotAcknowledged failed)
    {
        if (failed.Cause is TimeoutException)
        {
            Context.GetLogger().Error("vCPU {0} (thread {1}) did not acknowledge {2} within {3}", _index, _threadId,
                failed.Operation.ToString().ToLowerInvariant(), _ackTimeout);
            Context.Parent.Tell(new VmProtocol.VcpuUnresponsive(_index, failed.Operation, _ackTimeout));
            if (!Equals(failed.ReplyTo, Context.Parent))
            {
                failed.ReplyTo.Tell(new VmProtocol.VcpuRefused(_index, failed.Operation, $"no acknowledgement within {_ackTimeout}"));
            }

            return;
        }

        var reason = failed.Cause is HypervisorException ? failed.Cause.Message : $"{failed.Cause.GetType().Name}: {failed.Cause.Message}";
        failed.ReplyTo.Tell(new VmProtocol.VcpuRefused(_index, failed.Operation, reason));
    }

    private sealed class Sample
    {
        public static readonly Sample Instance = new();
    }

    private sealed record Acknowledged(VmProtocol.VcpuOperation Operation, IActorRef ReplyTo);

    private sealed record NotAcknowledged(VmProtocol.VcpuOperation Operation, IActorRef ReplyTo, Exception Cause);

    private sealed record Ended(VcpuEnd End);
}
