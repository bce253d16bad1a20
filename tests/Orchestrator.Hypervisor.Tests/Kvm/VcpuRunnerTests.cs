// The vCPU runner's request/acknowledge protocol and its kick, without /dev/kvm: a fake backend stands in for KVM_RUN
// with a blocking syscall (poll) that only a delivered signal interrupts early, so the real kick signal is exercised.
using System.Runtime.InteropServices;
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class VcpuRunnerTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20); // catches hangs only

    [Fact]
    public void Kick_signal_has_a_handler_and_is_not_the_runtimes_own()
    {
        var signal = VcpuKick.Signal;
        Assert.Equal(SigRtMin() + VcpuKick.SignalOffset, signal);
        var handler = VcpuKick.CurrentDisposition(signal);
        Assert.NotEqual(0, handler); // SIG_DFL would kill the process
        Assert.NotEqual(1, handler); // SIG_IGN would not interrupt KVM_RUN
    }

    [Fact]
    public async Task Kick_interrupts_a_blocking_syscall_on_that_thread_with_EINTR_and_the_process_lives()
    {
        var tid = 0;
        var result = 0;
        var errno = 0;
        var entering = new ManualResetEventSlim();
        var thread = new Thread(() =>
        {
            Volatile.Write(ref tid, Gettid());
            entering.Set();
            result = Poll(0, 0, 60_000);
            errno = Marshal.GetLastPInvokeError();
        }) { IsBackground = true };
        thread.Start();
        entering.Wait(Bound);

        // The thread may not be inside poll yet when a signal lands (then nothing interrupts it): kick until it returns.
        using var bound = new CancellationTokenSource(Bound);
        while (thread.IsAlive)
        {
            Assert.True(VcpuKick.Send(Volatile.Read(ref tid)));
            await Task.Delay(20, bound.Token);
        }

        Assert.Equal(-1, result);
        Assert.Equal(4, errno); // EINTR: what KVM_RUN returns when kicked
        Assert.False(VcpuKick.Send(tid), "a kick to a thread that has ended reports it");
    }

    [Fact]
    public async Task Pause_is_acknowledged_once_the_thread_is_out_of_run_and_parked()
    {
        var backend = new FakeBackend();
        var runner = Start(backend);
        await Eventually.HoldsAsync(() => backend.Runs > 2, "the vCPU never ran");

        await runner.PauseAsync(CancellationToken.None).WaitAsync(Bound);
        Assert.Equal(VcpuState.Paused, runner.State);
        var runs = backend.Runs;
        Assert.False(backend.InRun, "acknowledged while inside Run");

        // A probe is served by the parked thread: it round-trips without a single Run in between.
        var status = await runner.ProbeHaltAsync(CancellationToken.None).WaitAsync(Bound);
        Assert.Equal(KvmExit.KVM_MP_STATE_HALTED, status.MpState);
        Assert.Equal(runs, backend.Runs);
        Assert.True(runner.Counters.Kicks >= 1);

        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);
    }

    [Fact]
    public async Task Resume_is_acknowledged_and_the_vcpu_runs_again()
    {
        var backend = new FakeBackend();
        var runner = Start(backend);
        await runner.PauseAsync(CancellationToken.None).WaitAsync(Bound);
        var runs = backend.Runs;

        await runner.ResumeAsync(CancellationToken.None).WaitAsync(Bound);
        Assert.Equal(VcpuState.Running, runner.State);
        await Eventually.HoldsAsync(() => backend.Runs > runs, "the vCPU did not run after Resume");

        // Both are idempotent: pausing twice or resuming a running vCPU is acknowledged at once.
        await runner.ResumeAsync(CancellationToken.None).WaitAsync(Bound);
        await runner.PauseAsync(CancellationToken.None).WaitAsync(Bound);
        await runner.PauseAsync(CancellationToken.None).WaitAsync(Bound);
        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);
    }

    [Fact]
    public async Task Stop_is_acknowledged_after_the_thread_let_go_and_later_requests_are_refused()
    {
        var ended = new List<VcpuEnd>();
        var backend = new FakeBackend();
        var runner = Start(backend, (_, end) => ended.Add(end));
        await Eventually.HoldsAsync(() => backend.Runs > 0, "the vCPU never ran");

        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);
        Assert.True(backend.Left, "Stop acknowledged before the vCPU was released");
        Assert.Equal(VcpuState.Stopped, runner.State);
        var end = await runner.Completion.WaitAsync(Bound);
        Assert.Equal(VcpuEndKind.Stopped, end.Kind);
        Assert.Equal([end], ended);

        await Assert.ThrowsAsync<HypervisorException>(() => runner.PauseAsync(CancellationToken.None));
        await Assert.ThrowsAsync<HypervisorException>(() => runner.ResumeAsync(CancellationToken.None));
        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound); // stopping a stopped vCPU is fine
        Assert.NotEqual(0, runner.ThreadId);
    }

    [Fact]
    public async Task A_guest_ending_or_a_failing_run_ends_the_thread_with_the_reason()
    {
        var guest = Start(new FakeBackend { After = 3, Ending = new VcpuRunResult(VcpuRunOutcome.GuestEnded, "guest-reset") });
        var end = await guest.Completion.WaitAsync(Bound);
        Assert.Equal(new VcpuEnd(VcpuEndKind.Guest, "guest-reset"), end);
        Assert.Equal(VcpuState.Stopped, guest.State);

        var failing = Start(new FakeBackend { After = 1, Ending = new VcpuRunResult(VcpuRunOutcome.Failed, "KVM_EXIT_FAIL_ENTRY: 0x80000021") });
        var failure = await failing.Completion.WaitAsync(Bound);
        Assert.Equal(VcpuEndKind.Failed, failure.Kind);
        Assert.Contains("KVM_EXIT_FAIL_ENTRY", failure.Reason);
        Assert.Equal(VcpuState.Failed, failing.State);
    }

    [Fact]
    public async Task Requests_made_before_the_thread_starts_are_served_first()
    {
        var backend = new FakeBackend();
        var runner = new KvmVcpuRunner(0, backend);
        var paused = runner.PauseAsync(CancellationToken.None);
        runner.Start();
        await paused.WaitAsync(Bound);
        Assert.Equal(0, backend.Runs);
        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);
    }

    [Fact]
    public async Task Every_request_from_many_threads_is_acknowledged()
    {
        var backend = new FakeBackend();
        var runner = Start(backend);
        var requests = Enumerable.Range(0, 200)
            .Select(i => Task.Run(() => i % 2 == 0 ? runner.PauseAsync(CancellationToken.None) : runner.ResumeAsync(CancellationToken.None)))
            .ToArray();
        await Task.WhenAll(requests).WaitAsync(Bound);
        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);
        Assert.Equal(VcpuEndKind.Stopped, (await runner.Completion).Kind);
    }

    [Fact]
    public async Task Counters_count_exits_by_kind()
    {
        var backend = new FakeBackend { Io = true };
        var runner = Start(backend);
        await Eventually.HoldsAsync(() => runner.Counters.IoExits >= 3, "no I/O exits counted");
        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);
        var counters = runner.Counters;
        Assert.True(counters.Exits >= counters.IoExits + counters.InterruptedExits - 1);
        Assert.Equal(0, counters.MmioExits);
    }

    [Fact]
    public async Task Exit_counters_count_each_exit_reason_and_the_time_inside_run()
    {
        var backend = new FakeBackend { Io = true };
        var runner = Start(backend);
        await Eventually.HoldsAsync(() => runner.ExitCounters[KvmExit.KVM_EXIT_IO] >= 3, "no KVM_EXIT_IO counted by reason");
        await runner.PauseAsync(CancellationToken.None).WaitAsync(Bound);
        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);

        var exits = runner.ExitCounters;
        var counters = runner.Counters;
        Assert.Equal(counters.IoExits, exits[KvmExit.KVM_EXIT_IO]);
        Assert.Equal(counters.Exits, exits.Runs);
        Assert.Equal(counters.InterruptedExits, exits[KvmExit.KVM_EXIT_INTR]);
        Assert.Equal(exits[KvmExit.KVM_EXIT_IO], exits.GuestExits); // the kicks are the VMM's, not the guest's
        Assert.True(exits.InKvmRun > TimeSpan.Zero, "no time counted inside KVM_RUN");
        Assert.Equal(KvmExitCounters.Buckets, exits.ByReason.Count);
    }

    [Fact]
    public async Task A_sample_is_read_on_the_vcpu_thread_outside_run_and_the_vcpu_runs_on()
    {
        var backend = new FakeBackend();
        var runner = Start(backend);
        await Eventually.HoldsAsync(() => backend.Runs > 2, "the vCPU never ran");

        var sample = await runner.SampleAsync(Bound, CancellationToken.None);
        Assert.NotNull(sample.Registers);
        Assert.Equal(VcpuState.Running, sample.State);
        Assert.Equal(runner.ThreadId, backend.RegistersReadOnTid);
        Assert.False(backend.ReadInsideRun, "registers read while inside Run");
        var runs = backend.Runs;
        await Eventually.HoldsAsync(() => backend.Runs > runs, "the vCPU did not run on after a sample");
        Assert.Equal(VcpuState.Running, runner.State);

        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);
    }

    [Fact]
    public async Task A_paused_vcpu_is_sampled_and_stays_paused()
    {
        var backend = new FakeBackend();
        var runner = Start(backend);
        await runner.PauseAsync(CancellationToken.None).WaitAsync(Bound);
        var runs = backend.Runs;

        var sample = await runner.SampleAsync(Bound, CancellationToken.None);
        Assert.NotNull(sample.Registers);
        Assert.Equal(VcpuState.Paused, sample.State);
        Assert.Equal(VcpuState.Paused, runner.State);
        Assert.Equal(runs, backend.Runs);

        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);
    }

    [Fact]
    public async Task An_ended_vcpu_gives_a_sample_without_registers_that_says_so()
    {
        var runner = Start(new FakeBackend());
        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);

        var sample = await runner.SampleAsync(Bound, CancellationToken.None);
        Assert.Null(sample.Registers);
        Assert.Equal(VcpuState.Stopped, sample.State);
        Assert.Contains("has ended", sample.Note);
    }

    [Fact]
    public async Task A_vcpu_that_does_not_leave_run_when_kicked_gives_a_sample_saying_so()
    {
        using var release = new ManualResetEventSlim();
        var backend = new FakeBackend { StuckUntil = release };
        var runner = Start(backend);
        await Eventually.HoldsAsync(() => backend.InRun, "the vCPU never entered Run");

        var sample = await runner.SampleAsync(TimeSpan.FromMilliseconds(100), CancellationToken.None);
        Assert.Null(sample.Registers);
        Assert.Equal(VcpuState.Running, sample.State);
        Assert.Contains("did not leave KVM_RUN", sample.Note);

        release.Set();
        await runner.StopAsync(CancellationToken.None).WaitAsync(Bound);
    }

    private static KvmVcpuRunner Start(FakeBackend backend, Action<KvmVcpuRunner, VcpuEnd>? onEnded = null)
    {
        var runner = new KvmVcpuRunner(0, backend, onEnded: onEnded);
        runner.Start();
        return runner;
    }

    [DllImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static extern int Poll(nint fds, nuint count, int timeoutMs);

    [DllImport("libc", EntryPoint = "gettid")]
    private static extern int Gettid();

    [DllImport("libc", EntryPoint = "__libc_current_sigrtmin")]
    private static extern int SigRtMin();

    /// <summary>
    /// KVM_RUN stand-in: honours immediate_exit, then blocks in poll (up to 50 ms) the way KVM_RUN blocks in the
    /// kernel; a kick's signal ends the poll early with EINTR.
    /// </summary>
    private sealed class FakeBackend : IVcpuBackend
    {
        private int _immediateExit;
        private int _runs;
        private volatile bool _inRun;

        public int After { get; init; } = int.MaxValue;
        public VcpuRunResult Ending { get; init; }
        public bool Io { get; init; }
        public int Runs => Volatile.Read(ref _runs);
        public bool InRun => _inRun;
        public bool Left { get; private set; }
        public ManualResetEventSlim? StuckUntil { get; init; }
        public int RegistersReadOnTid { get; private set; }
        public bool ReadInsideRun { get; private set; }

        public void Enter()
        {
        }

        public VcpuRunResult Run()
        {
            _inRun = true;
            try
            {
                if (Interlocked.Increment(ref _runs) > After)
                {
                    return Ending;
                }

                if (Volatile.Read(ref _immediateExit) != 0)
                {
                    return VcpuRunResult.Interrupted with { Exit = KvmExit.KVM_EXIT_INTR };
                }

                // A KVM_RUN wedged in the kernel: kicks do not get it out.
                StuckUntil?.Wait();

                // The run time the real backend reports (timestamp ticks), for the counters; nothing asserts on it.
                var started = TimeProvider.System.GetTimestamp();
                var interrupted = Poll(0, 0, 50) < 0 && Marshal.GetLastPInvokeError() == 4;
                var ticks = TimeProvider.System.GetTimestamp() - started;
                return interrupted
                    ? VcpuRunResult.Interrupted with { Exit = KvmExit.KVM_EXIT_INTR, RunTicks = ticks }
                    : new VcpuRunResult(VcpuRunOutcome.Continue, Io: Io, Exit: Io ? KvmExit.KVM_EXIT_IO : null, RunTicks: ticks);
            }
            finally
            {
                _inRun = false;
            }
        }

        public void RequestImmediateExit() => Volatile.Write(ref _immediateExit, 1);

        public void ClearImmediateExit() => Volatile.Write(ref _immediateExit, 0);

        public VcpuHaltStatus ProbeHalt() => new(KvmExit.KVM_MP_STATE_HALTED, InterruptsEnabled: true);

        public KvmVcpuRegisters ReadRegisters()
        {
            RegistersReadOnTid = Gettid();
            ReadInsideRun |= _inRun;
            return new KvmVcpuRegisters(0x1000 + (ulong)Runs, 0x202, 0x11, 0, 0, KvmExit.KVM_MP_STATE_RUNNABLE, (ulong)Runs);
        }

        public void Leave() => Left = true;
    }
}
