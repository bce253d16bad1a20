// Is this /dev/kvm fast, not just present? A fixed amount of guest work timed from KVM_RUN to HLT: a register loop of
// a few million turns in real mode, with no memory access and no exit until the end. On real KVM it takes milliseconds;
// on the nested host of shared/notes/nested-kvm.md (every ioctl accepted, guests ~2,000x slower) it would take
// seconds, so the check stops it at its limit and says how far it got. Cheaper than a Linux boot with a deadline, and
// the same on any host: no kernel, no devices, no irqchip.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Orchestrator.Hypervisor.Kvm;

public enum KvmSpeedCheckOutcome
{
    /// <summary>The loop finished within the limit.</summary>
    Passed,

    /// <summary>The loop did not finish within the limit: the accelerator runs guests, but too slowly.</summary>
    Failed,

    /// <summary>The check could not run (no /dev/kvm, an ioctl refused, an unexpected exit): says nothing of speed.</summary>
    Error,
}

/// <param name="IterationsDone">loop turns the guest completed (all of them when it reached HLT; read from ECX otherwise).</param>
/// <param name="Elapsed">from the first KVM_RUN to its return at HLT, or at the kick that stopped it.</param>
public sealed record KvmSpeedCheckResult(
    KvmSpeedCheckOutcome Outcome,
    long Iterations,
    long IterationsDone,
    TimeSpan Elapsed,
    TimeSpan Limit,
    string Reason)
{
    public bool Passed => Outcome == KvmSpeedCheckOutcome.Passed;

    /// <summary>Guest time per loop turn; NaN when none was done.</summary>
    public double NanosecondsPerIteration => IterationsDone > 0 ? Elapsed.TotalNanoseconds / IterationsDone : double.NaN;

    /// <summary>One line: "passed: 5000000 iterations in 4.2 ms (0.8 ns each), within the 100 ms limit".</summary>
    public string Describe() => $"{Outcome.ToString().ToLowerInvariant()}: {Reason}";
}

public static class KvmSpeedCheck
{
    /// <summary>
    /// Five million turns: ~5 ms on real KVM (about 1 ns a turn), so a good host decides in a few ms; the nested host
    /// measured ~1.5 us a turn, so it would need ~7.5 s and is stopped at the limit.
    /// </summary>
    public const long DefaultIterations = 5_000_000;

    /// <summary>
    /// About 20x what real KVM needs for <see cref="DefaultIterations"/>: room for a preempted vCPU thread or a slow
    /// clock on a busy host, and still a decision in about a tenth of a second on a crawling one.
    /// </summary>
    public static readonly TimeSpan DefaultLimit = TimeSpan.FromMilliseconds(100);

    /// <summary>Where the code goes and where the vCPU starts (CS base 0, IP 0x1000), as the real-mode probe guest.</summary>
    public const ulong LoadAddress = 0x1000;

    /// <summary>Offsets inside <see cref="GuestCode"/>: the loop's first instruction, and the HLT after it.</summary>
    public const int LoopOffset = 6;

    public const int HltOffset = 10;

    private const ulong MemoryBytes = 1 << 20;

    /// <summary>How long a kicked vCPU has to leave KVM_RUN before the check gives up on it.</summary>
    private static readonly TimeSpan KickBound = TimeSpan.FromSeconds(2);

    /// <summary>
    /// 16-bit real-mode code: <c>mov ecx, iterations; l: dec ecx; jnz l; hlt</c>. Eleven bytes, registers only, so the
    /// loop never exits to the VMM until HLT (no irqchip: HLT returns KVM_EXIT_HLT).
    /// </summary>
    public static byte[] GuestCode(uint iterations)
    {
        var code = new byte[]
        {
            0x66, 0xb9, 0, 0, 0, 0, // mov ecx, imm32   (0x66: 32-bit operand in 16-bit code; B8+1 = ECX)
            0x66, 0x49,             // l: dec ecx       (48+1 = DEC ECX; a one-byte opcode outside 64-bit mode)
            0x75, 0xfc,             // jnz l            (rel8 -4: from the next instruction at 10 back to 6)
            0xf4,                   // hlt
        };
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(code.AsSpan(2), iterations);
        return code;
    }

    /// <summary>
    /// Loop turns done by a guest stopped at <paramref name="rip"/> with <paramref name="rcx"/>: none before the
    /// <c>mov</c> has run; otherwise the count less what ECX still holds. Pure.
    /// </summary>
    public static long IterationsDone(long iterations, ulong rip, ulong rcx)
    {
        if (rip < LoadAddress + LoopOffset || rip > LoadAddress + HltOffset + 1)
        {
            return 0;
        }

        return Math.Clamp(iterations - (uint)rcx, 0, iterations);
    }

    /// <summary>The verdict from what was measured. Pure.</summary>
    /// <param name="halted">the guest reached its HLT (all iterations done).</param>
    public static KvmSpeedCheckResult Judge(long iterations, long done, bool halted, TimeSpan elapsed, TimeSpan limit)
    {
        done = halted ? iterations : Math.Clamp(done, 0, iterations);
        var each = done > 0 ? elapsed.TotalNanoseconds / done : double.NaN;
        if (halted && elapsed <= limit)
        {
            return new KvmSpeedCheckResult(KvmSpeedCheckOutcome.Passed, iterations, done, elapsed, limit,
                Invariant($"{iterations} iterations in {elapsed.TotalMilliseconds:F1} ms ({each:F2} ns each), within the {limit.TotalMilliseconds:F0} ms limit"));
        }

        if (halted)
        {
            return new KvmSpeedCheckResult(KvmSpeedCheckOutcome.Failed, iterations, done, elapsed, limit,
                Invariant($"{iterations} iterations took {elapsed.TotalMilliseconds:F1} ms ({each:F2} ns each), over the {limit.TotalMilliseconds:F0} ms limit"));
        }

        var progress = done == 0
            ? "not one done"
            : Invariant($"{done} done ({each:F0} ns each: all would take ~{each * iterations / 1e6:F0} ms)");
        return new KvmSpeedCheckResult(KvmSpeedCheckOutcome.Failed, iterations, done, elapsed, limit,
            Invariant($"did not finish {iterations} iterations in {limit.TotalMilliseconds:F0} ms: {progress}"));
    }

    /// <inheritdoc cref="Run(long, TimeSpan, CancellationToken)"/>
    public static KvmSpeedCheckResult Run(CancellationToken cancellationToken = default) =>
        Run(DefaultIterations, DefaultLimit, cancellationToken);

    /// <summary>
    /// Runs the loop in a throwaway VM and times it. Blocks for at most about <paramref name="limit"/> plus VM setup
    /// (call it off an actor's dispatcher). Never throws: whatever goes wrong (no /dev/kvm, an ioctl refused, an
    /// unexpected exit, a cancelled token) is an <see cref="KvmSpeedCheckOutcome.Error"/> result saying what.
    /// </summary>
    /// <param name="iterations">1 to 2^32-1 loop turns (ECX).</param>
    public static KvmSpeedCheckResult Run(long iterations, TimeSpan limit, CancellationToken cancellationToken)
    {
        if (iterations is < 1 or > uint.MaxValue || limit <= TimeSpan.Zero)
        {
            return Error(iterations, limit, $"{iterations} iterations within {limit}: the count must be 1..{uint.MaxValue} and the limit positive");
        }

        try
        {
            return RunGuest((uint)iterations, limit, cancellationToken);
        }
        catch (Exception ex)
        {
            return Error(iterations, limit, ex is HypervisorException ? ex.Message : $"{ex.GetType().Name}: {ex.Message}");
        }
    }

    private static KvmSpeedCheckResult Error(long iterations, TimeSpan limit, string reason) =>
        new(KvmSpeedCheckOutcome.Error, iterations, 0, TimeSpan.Zero, limit, reason);

    private static KvmSpeedCheckResult RunGuest(uint iterations, TimeSpan limit, CancellationToken cancellationToken)
    {
        // Disposed in reverse: kvm_run page and vCPU fd, then the VM fd, then the guest memory it mapped (as KvmVm does).
        // The guest thread holds references on the vCPU fd, kvm_run and the memory, so even a thread left inside
        // KVM_RUN never sees them closed or unmapped: their release waits for its own.
        using var kvm = KvmSystemHandle.Open();
        var version = kvm.GetApiVersion();
        if (version != KvmIoctls.ApiVersion)
        {
            throw new HypervisorException($"{KvmSystemHandle.DevicePath} speaks KVM API {version}, not {KvmIoctls.ApiVersion}");
        }

        using var memory = new GuestMemory(MemoryBytes);
        using var vm = kvm.CreateVm();
        vm.SetTssAddress(KvmVm.TssAddress); // Intel VMX without unrestricted guest emulates real mode with these pages
        vm.SetUserMemoryRegion(slot: 0, guestPhysicalAddress: 0, memory.Region);
        memory.Write(LoadAddress, GuestCode(iterations));

        using var vcpu = vm.CreateVcpu(0);
        using var run = vcpu.MapRunRegion(kvm.GetVcpuMmapSize());
        var sregs = vcpu.GetSregs();
        sregs.cs.@base = 0;
        sregs.cs.selector = 0;
        vcpu.SetSregs(sregs);
        vcpu.SetRegs(new KvmRegs { rip = LoadAddress, rflags = 0x2 });

        var guest = new GuestThread(vcpu, run, memory.Region);
        guest.Start();
        if (!guest.Entered.Wait(TimeSpan.FromSeconds(10)))
        {
            throw new HypervisorException("the speed check's vCPU thread did not start within 10 s");
        }

        var cancelled = false;
        bool finished;
        try
        {
            finished = guest.Done.Wait(limit, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            cancelled = true;
            finished = false;
        }

        if (!finished && !guest.Stop(KickBound))
        {
            throw new HypervisorException(
                $"the speed check's vCPU did not leave KVM_RUN within {KickBound.TotalSeconds:F0} s of a kick (stuck inside the kernel)");
        }

        if (guest.Failure is { } failure)
        {
            throw new HypervisorException($"the speed check's guest failed: {failure}");
        }

        var elapsed = KvmExitCounters.TicksToTime(guest.Ticks);
        if (cancelled)
        {
            return Error(iterations, limit, Invariant($"cancelled after {elapsed.TotalMilliseconds:F0} ms"));
        }

        var done = guest.Halted ? iterations : IterationsDone(iterations, guest.Registers.rip, guest.Registers.rcx);
        return Judge(iterations, done, guest.Halted, elapsed, limit);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>The vCPU thread: KVM_RUN until HLT or a kick, timed; then the registers, read on the same thread.</summary>
    private sealed unsafe class GuestThread
    {
        private readonly KvmVcpuHandle _vcpu;
        private readonly MappedMemory _run;
        private readonly MappedMemory _memory;
        private readonly KvmRun* _kvmRun;
        private volatile bool _stopRequested;
        private int _threadId;

        public GuestThread(KvmVcpuHandle vcpu, MappedMemory run, MappedMemory memory)
        {
            if (run.ByteLength < (ulong)sizeof(KvmRun))
            {
                throw new HypervisorException($"the kvm_run mapping is {run.ByteLength} bytes, smaller than struct kvm_run");
            }

            _vcpu = vcpu;
            _run = run;
            _memory = memory;
            // The address only: dereferenced by the thread under its reference on the mapping, and by Stop, which
            // RunGuest calls while its own `using` still holds the mapping.
            _kvmRun = (KvmRun*)run.DangerousGetHandle();
        }

        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Done { get; } = new();

        public long Ticks { get; private set; }

        public bool Halted { get; private set; }

        public string? Failure { get; private set; }

        public KvmRegs Registers { get; private set; }

        public void Start()
        {
            // UnsafeStart: the thread must not carry the caller's ExecutionContext.
            new Thread(Main, 256 * 1024) { IsBackground = true, Name = "kvm-speed-check" }.UnsafeStart();
        }

        /// <summary>Kicks the thread out of KVM_RUN (immediate_exit, then the kick signal until it is out).</summary>
        public bool Stop(TimeSpan bound)
        {
            _stopRequested = true;
            // Safe: RunGuest's `using` keeps the kvm_run mapping until after Stop returns (and the thread's reference
            // until it ends); a byte store cannot tear, and KVM reads the field at KVM_RUN entry.
            if (!Done.IsSet)
            {
                Volatile.Write(ref _kvmRun->immediate_exit, 1);
            }

            var watch = Stopwatch.StartNew();
            while (!Done.IsSet && watch.Elapsed < bound)
            {
                // A signal that lands outside KVM_RUN is harmless: immediate_exit catches the next entry.
                VcpuKick.Send(_threadId);
                Done.Wait(TimeSpan.FromMilliseconds(10));
            }

            return Done.IsSet;
        }

        private void Main()
        {
            bool vcpuAdded = false, runAdded = false, memoryAdded = false;
            try
            {
                _vcpu.DangerousAddRef(ref vcpuAdded);
                _run.DangerousAddRef(ref runAdded);
                _memory.DangerousAddRef(ref memoryAdded);
                _threadId = LibC.Gettid();
                _ = VcpuKick.Signal; // the handler must be in place before a kick can come
                Entered.Set();
                Loop();
                Registers = _vcpu.GetRegs();
            }
            catch (Exception ex)
            {
                Failure ??= ex.Message;
            }
            finally
            {
                if (memoryAdded)
                {
                    _memory.DangerousRelease();
                }

                if (runAdded)
                {
                    _run.DangerousRelease();
                }

                if (vcpuAdded)
                {
                    _vcpu.DangerousRelease();
                }

                Entered.Set();
                Done.Set();
            }
        }

        private void Loop()
        {
            var started = Stopwatch.GetTimestamp();
            while (true)
            {
                var returned = LibC.Ioctl(_vcpu.RawFd, KvmIoctls.KVM_RUN, 0);
                Ticks = Stopwatch.GetTimestamp() - started;
                if (returned < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno is LibC.EINTR or LibC.EAGAIN)
                    {
                        if (_stopRequested)
                        {
                            return;
                        }

                        continue; // a signal that was not ours
                    }

                    Failure = $"KVM_RUN failed: {LibC.Describe(errno)}";
                    return;
                }

                // Safe: KVM_RUN has returned, so the kernel is done writing the exit; the mapping is referenced.
                var reason = _kvmRun->exit_reason;
                switch (reason)
                {
                    case KvmExit.KVM_EXIT_HLT:
                        Halted = true;
                        return;
                    case KvmExit.KVM_EXIT_INTR when _stopRequested:
                        return;
                    case KvmExit.KVM_EXIT_INTR:
                        continue;
                    case KvmExit.KVM_EXIT_INTERNAL_ERROR:
                        // The nested host's failure mode: its KVM emulates what it cannot run, and lacks instructions.
                        Failure = $"KVM_EXIT_INTERNAL_ERROR (suberror {_kvmRun->@internal.suberror})";
                        return;
                    default:
                        Failure = $"unexpected {KvmExit.Name(reason)}";
                        return;
                }
            }
        }
    }
}
