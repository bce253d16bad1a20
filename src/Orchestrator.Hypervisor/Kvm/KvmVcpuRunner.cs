// One vCPU as a message-driven thread: a dedicated thread loops on KVM_RUN; Pause/Resume/Stop (and the VM's halt
// probe) are requests that kick it out of KVM_RUN (see VcpuKick) and are acknowledged by completing their task on the
// vCPU thread itself, so an acknowledgement means the thread really is where the request put it.
using System.Globalization;

namespace Orchestrator.Hypervisor.Kvm;

/// <summary>What one return from KVM_RUN meant, once its exit was handled.</summary>
internal enum VcpuRunOutcome
{
    /// <summary>An exit handled in userspace (I/O, MMIO): run again.</summary>
    Continue,

    /// <summary>KVM_RUN returned EINTR: a kick (or immediate_exit), possibly with a request waiting.</summary>
    Interrupted,

    /// <summary>The guest ended: reset, power-off, crash, or HLT without an in-kernel irqchip.</summary>
    GuestEnded,

    /// <summary>KVM cannot run this vCPU any more (entry failure, internal error, unexpected exit or errno).</summary>
    Failed,
}

/// <param name="Exit">kvm_run.exit_reason of this return (KVM_EXIT_INTR for EINTR); null when KVM_RUN failed otherwise.</param>
/// <param name="RunTicks">Stopwatch ticks spent inside the KVM_RUN ioctl itself (the guest's time, and the kernel's).</param>
internal readonly record struct VcpuRunResult(
    VcpuRunOutcome Outcome, string? Detail = null, bool Io = false, bool Mmio = false, uint? Exit = null, long RunTicks = 0)
{
    public static readonly VcpuRunResult Handled = new(VcpuRunOutcome.Continue);
    public static readonly VcpuRunResult Interrupted = new(VcpuRunOutcome.Interrupted);
}

/// <summary>Whether a vCPU sits in HLT with interrupts off (nothing but an NMI or INIT will ever wake it).</summary>
internal readonly record struct VcpuHaltStatus(uint MpState, bool InterruptsEnabled)
{
    public bool HaltedForGood => MpState == KvmExit.KVM_MP_STATE_HALTED && !InterruptsEnabled;

    /// <summary>An application processor the guest never started (waiting for INIT/SIPI).</summary>
    public bool NeverStarted => MpState is KvmExit.KVM_MP_STATE_UNINITIALIZED or KvmExit.KVM_MP_STATE_INIT_RECEIVED;
}

/// <summary>What the runner drives: KVM_RUN and its exits, and kvm_run.immediate_exit. A fake stands in for it in tests.</summary>
internal interface IVcpuBackend
{
    /// <summary>Called first on the vCPU thread (takes what the thread uses for its whole life).</summary>
    void Enter();

    /// <summary>One KVM_RUN and the handling of its exit. Only ever called on the vCPU thread.</summary>
    VcpuRunResult Run();

    /// <summary>Sets kvm_run.immediate_exit; called from any thread.</summary>
    void RequestImmediateExit();

    void ClearImmediateExit();

    /// <summary>Reads the vCPU's mp_state and RFLAGS.IF (on the vCPU thread, outside KVM_RUN).</summary>
    VcpuHaltStatus ProbeHalt();

    /// <summary>Reads RIP, RFLAGS, the general registers, CR0/CR4/EFER and mp_state (on the vCPU thread, outside KVM_RUN).</summary>
    KvmVcpuRegisters ReadRegisters();

    /// <summary>Called last on the vCPU thread, before the runner reports its end.</summary>
    void Leave();
}

public sealed class KvmVcpuRunner : IVcpuHandle
{
    private const int StackSize = 256 * 1024;

    private readonly object _lock = new();
    private readonly IVcpuBackend _backend;
    private readonly Func<int, bool> _kick;
    private readonly Action<KvmVcpuRunner, VcpuEnd>? _onEnded;
    private readonly Queue<Request> _requests = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<VcpuEnd> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private VcpuState _state = VcpuState.Starting;
    private bool _startCalled;
    private bool _threadAlive;
    private int _threadId;
    private string? _endReason;
    private long _exits;
    private long _ioExits;
    private long _mmioExits;
    private long _interruptedExits;
    private long _kicks;

    // Written by the vCPU thread only (one writer: a plain add, published with Volatile.Write, no locked instruction on
    // the exit path); read from any thread with Volatile.Read, each long atomically (x86-64).
    private readonly long[] _exitsByReason = new long[KvmExitCounters.Buckets];
    private long _runTicks;

    /// <param name="kick">Signals a thread by id (VcpuKick.Send in production).</param>
    /// <param name="onEnded">Told on the vCPU thread, once, when the thread ends (before <see cref="Completion"/>).</param>
    internal KvmVcpuRunner(int index, IVcpuBackend backend, Func<int, bool>? kick = null, Action<KvmVcpuRunner, VcpuEnd>? onEnded = null)
    {
        Index = index;
        _backend = backend;
        _kick = kick ?? VcpuKick.Send;
        _onEnded = onEnded;
    }

    public int Index { get; }

    public int ThreadId => Volatile.Read(ref _threadId);

    public VcpuState State
    {
        get
        {
            lock (_lock)
            {
                return _state;
            }
        }
    }

    public VcpuCounters Counters => new(
        Interlocked.Read(ref _exits),
        Interlocked.Read(ref _ioExits),
        Interlocked.Read(ref _mmioExits),
        Interlocked.Read(ref _interruptedExits),
        Interlocked.Read(ref _kicks));

    /// <summary>Exits by KVM_EXIT_* reason and the time spent inside KVM_RUN, as a snapshot (any thread, any time).</summary>
    public KvmExitCounters ExitCounters
    {
        get
        {
            var byReason = new long[_exitsByReason.Length];
            for (var i = 0; i < byReason.Length; i++)
            {
                byReason[i] = Volatile.Read(ref _exitsByReason[i]);
            }

            return new KvmExitCounters(Interlocked.Read(ref _exits), KvmExitCounters.TicksToTime(Volatile.Read(ref _runTicks)), byReason);
        }
    }

    public Task<VcpuEnd> Completion => _completion.Task;

    /// <summary>Completes once the thread runs and <see cref="ThreadId"/> is known (or the thread failed to start).</summary>
    internal Task Started => _started.Task;

    /// <summary>Starts the vCPU thread; requests made before this are served first.</summary>
    internal void Start()
    {
        lock (_lock)
        {
            if (_startCalled)
            {
                throw new InvalidOperationException($"vCPU {Index} was already started");
            }

            _startCalled = true;
        }

        var thread = new Thread(ThreadMain, StackSize) { IsBackground = true, Name = $"vcpu-{Index}" };
        // UnsafeStart: the vCPU thread must not carry the caller's ExecutionContext (AsyncLocals, activity) forever.
        thread.UnsafeStart();
    }

    /// <summary>Ends a runner whose thread was never started (a VM that failed while being built).</summary>
    internal void AbandonIfNotStarted()
    {
        lock (_lock)
        {
            if (_startCalled)
            {
                return;
            }

            _startCalled = true;
        }

        Finish(new VcpuEnd(VcpuEndKind.Stopped, "never started"), entered: false);
    }

    public Task PauseAsync(CancellationToken cancellationToken) => Submit(RequestKind.Pause, cancellationToken);

    public Task ResumeAsync(CancellationToken cancellationToken) => Submit(RequestKind.Resume, cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Submit(RequestKind.Stop, cancellationToken);

    /// <summary>Asks the vCPU thread for its halt status (the VM's power-off detection).</summary>
    internal async Task<VcpuHaltStatus> ProbeHaltAsync(CancellationToken cancellationToken)
    {
        var result = await SubmitCore(RequestKind.Probe).WaitAsync(cancellationToken);
        return (VcpuHaltStatus)result!;
    }

    /// <summary>
    /// One sample for a stall report: the vCPU is kicked out of KVM_RUN, reads its own registers and exit counters on
    /// its thread, and runs on (a paused one stays paused). Never faults for the vCPU's sake: an ended vCPU, or one that
    /// does not answer within <paramref name="bound"/> (still inside KVM_RUN after the kick), gives a sample without
    /// registers that says so. Only <paramref name="cancellationToken"/> ends it early (OperationCanceledException).
    /// </summary>
    internal async Task<KvmVcpuSample> SampleAsync(TimeSpan bound, CancellationToken cancellationToken)
    {
        Task<object?> request;
        try
        {
            request = SubmitCore(RequestKind.Sample);
        }
        catch (HypervisorException ex)
        {
            return Unanswered($"could not be kicked: {ex.Message}");
        }

        try
        {
            return (KvmVcpuSample)(await request.WaitAsync(bound, cancellationToken))!;
        }
        catch (TimeoutException)
        {
            return Unanswered(string.Create(CultureInfo.InvariantCulture, $"did not leave KVM_RUN within {bound.TotalMilliseconds:F0} ms of a kick"));
        }
        catch (HypervisorException ex)
        {
            return Unanswered(ex.Message);
        }
    }

    private KvmVcpuSample Unanswered(string note) => new(Index, KvmStallClock.Now(), State, null, ExitCounters, note);

    private Task Submit(RequestKind kind, CancellationToken cancellationToken) => SubmitCore(kind).WaitAsync(cancellationToken);

    private Task<object?> SubmitCore(RequestKind kind)
    {
        lock (_lock)
        {
            if (_state is VcpuState.Stopped or VcpuState.Failed)
            {
                return kind == RequestKind.Stop
                    ? Task.FromResult<object?>(null)
                    : Task.FromException<object?>(new HypervisorException($"vCPU {Index} has ended ({_endReason}): {kind} refused"));
            }

            var request = new Request(kind);
            _requests.Enqueue(request);
            Monitor.PulseAll(_lock); // a paused thread waits on the lock's monitor
            if (_threadAlive)
            {
                // Under the lock: the thread cannot end (and its id be reused) between this check and the signal.
                _backend.RequestImmediateExit();
                if (_kick(_threadId))
                {
                    Interlocked.Increment(ref _kicks);
                }
            }

            return request.Done.Task;
        }
    }

    private void ThreadMain()
    {
        Volatile.Write(ref _threadId, LibC.Gettid());
        VcpuEnd end;
        try
        {
            _backend.Enter();
        }
        catch (Exception ex)
        {
            Finish(new VcpuEnd(VcpuEndKind.Failed, $"vCPU {Index} could not start: {ex.Message}"), entered: false);
            return;
        }

        lock (_lock)
        {
            _threadAlive = true;
            if (_state == VcpuState.Starting)
            {
                _state = VcpuState.Running;
            }
        }

        _started.TrySetResult();
        try
        {
            end = Loop();
        }
        catch (Exception ex)
        {
            end = new VcpuEnd(VcpuEndKind.Failed, $"vCPU {Index}: {ex.Message}");
        }

        Finish(end, entered: true);
    }

    private VcpuEnd Loop()
    {
        while (true)
        {
            if (ServeRequests() is { } stopped)
            {
                return stopped;
            }

            var result = _backend.Run();
            Count(result);
            Interlocked.Increment(ref _exits);
            if (result.Io)
            {
                Interlocked.Increment(ref _ioExits);
            }

            if (result.Mmio)
            {
                Interlocked.Increment(ref _mmioExits);
            }

            switch (result.Outcome)
            {
                case VcpuRunOutcome.Continue:
                    break;
                case VcpuRunOutcome.Interrupted:
                    Interlocked.Increment(ref _interruptedExits);
                    break;
                case VcpuRunOutcome.GuestEnded:
                    return new VcpuEnd(VcpuEndKind.Guest, result.Detail ?? "guest ended");
                default:
                    return new VcpuEnd(VcpuEndKind.Failed, $"vCPU {Index}: {result.Detail}");
            }
        }
    }

    /// <summary>On the vCPU thread, the only writer of these two.</summary>
    private void Count(in VcpuRunResult result)
    {
        if (result.Exit is { } reason)
        {
            var bucket = KvmExitCounters.Bucket(reason);
            Volatile.Write(ref _exitsByReason[bucket], _exitsByReason[bucket] + 1);
        }

        Volatile.Write(ref _runTicks, _runTicks + result.RunTicks);
    }

    /// <summary>Serves queued requests; parks while paused. Returns the end when a Stop arrived, else null (run on).</summary>
    private VcpuEnd? ServeRequests()
    {
        // Clear before draining: a request queued after the drain has set immediate_exit again (see VcpuKick).
        _backend.ClearImmediateExit();
        Interlocked.MemoryBarrier();
        lock (_lock)
        {
            while (true)
            {
                while (_requests.TryDequeue(out var request))
                {
                    switch (request.Kind)
                    {
                        case RequestKind.Pause:
                            _state = VcpuState.Paused;
                            request.Done.TrySetResult(null);
                            break;
                        case RequestKind.Resume:
                            _state = VcpuState.Running;
                            request.Done.TrySetResult(null);
                            break;
                        case RequestKind.Probe:
                            try
                            {
                                request.Done.TrySetResult(_backend.ProbeHalt());
                            }
                            catch (Exception ex)
                            {
                                request.Done.TrySetException(ex);
                            }

                            break;
                        case RequestKind.Sample:
                            try
                            {
                                var registers = _backend.ReadRegisters();
                                request.Done.TrySetResult(new KvmVcpuSample(Index, KvmStallClock.Now(), _state, registers, ExitCounters));
                            }
                            catch (Exception ex)
                            {
                                request.Done.TrySetException(ex is HypervisorException ? ex : new HypervisorException(ex.Message, ex));
                            }

                            break;
                        case RequestKind.Stop:
                            // Acknowledged in Finish, once the thread has let go of the vCPU.
                            _requests.Enqueue(request);
                            return new VcpuEnd(VcpuEndKind.Stopped, "stopped on request");
                    }
                }

                if (_state != VcpuState.Paused)
                {
                    return null;
                }

                Monitor.Wait(_lock);
            }
        }
    }

    private void Finish(VcpuEnd end, bool entered)
    {
        if (entered)
        {
            try
            {
                _backend.Leave();
            }
            catch (Exception ex)
            {
                end = end with { Reason = $"{end.Reason}; releasing the vCPU failed: {ex.Message}" };
            }
        }

        lock (_lock)
        {
            _threadAlive = false;
            _state = end.Kind == VcpuEndKind.Failed ? VcpuState.Failed : VcpuState.Stopped;
            _endReason = end.Reason;
            while (_requests.TryDequeue(out var request))
            {
                if (request.Kind == RequestKind.Stop)
                {
                    request.Done.TrySetResult(null);
                }
                else
                {
                    request.Done.TrySetException(new HypervisorException($"vCPU {Index} has ended ({end.Reason}): {request.Kind} refused"));
                }
            }
        }

        _started.TrySetResult();
        try
        {
            _onEnded?.Invoke(this, end);
        }
        finally
        {
            _completion.TrySetResult(end);
        }
    }

    private enum RequestKind
    {
        Pause,
        Resume,
        Stop,
        Probe,
        Sample,
    }

    private sealed class Request(RequestKind kind)
    {
        public RequestKind Kind { get; } = kind;

        public TaskCompletionSource<object?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
