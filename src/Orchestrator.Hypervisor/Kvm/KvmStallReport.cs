// Why a guest of the native engine missed its deadline. A /dev/kvm on a nested-virtualization host can accept every
// ioctl and still run guests ~2,000x slower than real KVM (shared/notes/nested-kvm.md); from outside that looks like a
// hung guest. Sampling each vCPU a few times (RIP and the other registers, CR0/CR4/EFER, mp_state, exits by reason)
// tells the cases apart: a crawling accelerator makes progress with few exits, a hung guest sits in HLT with interrupts
// off or does not move at all, an exit storm is a tight loop exiting to the VMM. The classification is a pure function
// of the samples (Classify), so it is tested with hand-made ones.
using System.Globalization;
using System.Text;

namespace Orchestrator.Hypervisor.Kvm;

/// <summary>
/// What KVM_GET_REGS, KVM_GET_SREGS and KVM_GET_MP_STATE said about one vCPU while it was out of KVM_RUN.
/// </summary>
/// <param name="GeneralRegistersDigest">a digest of RAX..R15: registers that change while RIP need not (a loop counter).</param>
public sealed record KvmVcpuRegisters(ulong Rip, ulong Rflags, ulong Cr0, ulong Cr4, ulong Efer, uint MpState, ulong GeneralRegistersDigest)
{
    private const ulong RflagsIf = 1ul << 9;
    private const ulong Cr0Pe = 1ul << 0;
    private const ulong Cr0Pg = 1ul << 31;
    private const ulong EferLma = 1ul << 10;

    public bool InterruptsEnabled => (Rflags & RflagsIf) != 0;

    /// <summary>In HLT (inside the kernel: with an in-kernel irqchip a HLT never reaches the VMM).</summary>
    public bool Halted => MpState == KvmExit.KVM_MP_STATE_HALTED;

    /// <summary>An application processor the guest has not started (waits for INIT/SIPI).</summary>
    public bool NeverStarted => MpState is KvmExit.KVM_MP_STATE_UNINITIALIZED or KvmExit.KVM_MP_STATE_INIT_RECEIVED;

    /// <summary>"real", "protected", "paged" (protected with paging) or "long" (EFER.LMA), from CR0 and EFER.</summary>
    public string Mode => (Efer & EferLma) != 0 ? "long" : (Cr0 & Cr0Pe) == 0 ? "real" : (Cr0 & Cr0Pg) != 0 ? "paged" : "protected";

    public string MpStateName => MpState switch
    {
        KvmExit.KVM_MP_STATE_RUNNABLE => "runnable",
        KvmExit.KVM_MP_STATE_UNINITIALIZED => "uninitialized",
        KvmExit.KVM_MP_STATE_INIT_RECEIVED => "init-received",
        KvmExit.KVM_MP_STATE_HALTED => "halted",
        var other => $"mp_state {other}",
    };

    /// <summary>FNV-1a over the sixteen general registers: equal digests mean (almost surely) equal registers.</summary>
    public static ulong Digest(ReadOnlySpan<ulong> generalRegisters)
    {
        var hash = 14695981039346656037ul;
        foreach (var value in generalRegisters)
        {
            for (var shift = 0; shift < 64; shift += 8)
            {
                hash = (hash ^ ((value >> shift) & 0xff)) * 1099511628211ul;
            }
        }

        return hash;
    }

    internal static KvmVcpuRegisters From(in KvmRegs regs, in KvmSregs sregs, uint mpState)
    {
        ReadOnlySpan<ulong> general =
        [
            regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rsp, regs.rbp,
            regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15,
        ];
        return new KvmVcpuRegisters(regs.rip, regs.rflags, sregs.cr0, sregs.cr4, sregs.efer, mpState, Digest(general));
    }
}

/// <summary>One vCPU at one moment.</summary>
/// <param name="At">monotonic time of the sample (Stopwatch-based; only differences between samples mean anything).</param>
/// <param name="Registers">null when the vCPU did not answer: it has ended, or it did not leave KVM_RUN when kicked.</param>
/// <param name="Note">why <paramref name="Registers"/> is null.</param>
public sealed record KvmVcpuSample(int Index, TimeSpan At, VcpuState State, KvmVcpuRegisters? Registers, KvmExitCounters Exits, string? Note = null);

public enum KvmStallVerdict
{
    /// <summary>Nothing conclusive: one sample only, the vCPUs ended or paused by their owner, or busy in a way that fits none below.</summary>
    Unknown,

    /// <summary>Registers move between samples with few exits: the guest runs, slowly (a crawling accelerator).</summary>
    Crawling,

    /// <summary>HLT with interrupts off, no progress at all, or a vCPU that did not leave KVM_RUN when kicked.</summary>
    Hung,

    /// <summary>Many exits per second with RIP on one or two addresses: a tight loop that exits to the VMM every turn.</summary>
    ExitStorm,
}

/// <summary>One vCPU's verdict and why.</summary>
public sealed record KvmVcpuStall(int Index, KvmStallVerdict Verdict, string Reason);

/// <summary>
/// Samples of every vCPU (one list per round, a short interval apart) and what they mean. Built by
/// <see cref="KvmVm.ReportStallAsync(CancellationToken)"/>, or from any samples with <see cref="Classify"/>.
/// </summary>
public sealed record KvmStallReport(
    KvmStallVerdict Verdict,
    string Reason,
    IReadOnlyList<KvmVcpuStall> Vcpus,
    IReadOnlyList<IReadOnlyList<KvmVcpuSample>> Rounds)
{
    /// <summary>
    /// Guest exits per second from which a vCPU that stays on one or two RIPs is an exit storm. A booting Linux with the
    /// in-kernel irqchip and PIT leaves KVM for the VMM only for its serial console and a few device probes (tens to
    /// hundreds a second); a polling loop on an unanswered port does it as fast as exits go (~10^5/s on real KVM, still
    /// ~10^4/s nested).
    /// </summary>
    public const double StormExitsPerSecond = 2000;

    /// <summary>
    /// Classifies samples: <paramref name="rounds"/> in time order, each holding one sample per vCPU. Pure. The VM's
    /// verdict is the most telling of its vCPUs' (ExitStorm, then Crawling, then Hung); Unknown when none says more.
    /// </summary>
    public static KvmStallReport Classify(IReadOnlyList<IReadOnlyList<KvmVcpuSample>> rounds, double stormExitsPerSecond = StormExitsPerSecond)
    {
        var vcpus = rounds
            .SelectMany(r => r)
            .GroupBy(s => s.Index)
            .OrderBy(g => g.Key)
            .Select(g => ClassifyVcpu(g.Key, g.OrderBy(s => s.At).ToList(), stormExitsPerSecond))
            .ToList();

        var telling = vcpus
            .Where(v => v.Verdict != KvmStallVerdict.Unknown)
            .OrderBy(v => v.Verdict switch
            {
                KvmStallVerdict.ExitStorm => 0,
                KvmStallVerdict.Crawling => 1,
                _ => 2,
            })
            .ThenBy(v => v.Index)
            .FirstOrDefault();

        return telling is null
            ? new KvmStallReport(KvmStallVerdict.Unknown, vcpus.Count == 0 ? "no vCPU samples" : $"vCPU {vcpus[0].Index}: {vcpus[0].Reason}", vcpus, rounds)
            : new KvmStallReport(telling.Verdict, $"vCPU {telling.Index}: {telling.Reason}", vcpus, rounds);
    }

    /// <summary>
    /// One line: the verdict and why, then each vCPU's last registers and its exits over the sampled interval, e.g.
    /// "crawling (vCPU 0: registers move ...) | vcpu0 rip=0x... long CR0=0x80050033 CR4=0x20 EFER=0x500 IF=1 runnable ...".
    /// </summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.Append(VerdictName(Verdict)).Append(" (").Append(Reason).Append(')');
        foreach (var samples in Rounds.SelectMany(r => r).GroupBy(s => s.Index).OrderBy(g => g.Key))
        {
            var ordered = samples.OrderBy(s => s.At).ToList();
            text.Append(" | ").Append(DescribeVcpu(ordered[0], ordered[^1]));
        }

        return text.ToString();
    }

    /// <summary>
    /// <see cref="KvmVm.ReportStallAsync(CancellationToken)"/>'s <see cref="Describe"/> for a failure message: never
    /// throws, and gives up after <paramref name="bound"/> (10 s by default), saying so in the text it returns.
    /// </summary>
    public static async Task<string> DescribeAsync(KvmVm vm, TimeSpan? bound = null)
    {
        var limit = bound ?? TimeSpan.FromSeconds(10);
        using var cancel = new CancellationTokenSource(limit);
        try
        {
            return (await vm.ReportStallAsync(cancel.Token)).Describe();
        }
        catch (OperationCanceledException)
        {
            return Invariant($"not taken: the vCPUs' samples took longer than {limit.TotalSeconds:F0} s");
        }
        catch (Exception ex)
        {
            return $"not taken: {ex.Message}";
        }
    }

    public static string VerdictName(KvmStallVerdict verdict) => verdict switch
    {
        KvmStallVerdict.Crawling => "crawling",
        KvmStallVerdict.Hung => "hung",
        KvmStallVerdict.ExitStorm => "exit storm",
        _ => "unknown",
    };

    private static KvmVcpuStall ClassifyVcpu(int index, IReadOnlyList<KvmVcpuSample> samples, double stormExitsPerSecond)
    {
        var last = samples[^1];
        if (last.Registers is null)
        {
            return last.State is VcpuState.Stopped or VcpuState.Failed
                ? new KvmVcpuStall(index, KvmStallVerdict.Unknown, $"ended ({last.Note ?? last.State.ToString()})")
                : new KvmVcpuStall(index, KvmStallVerdict.Hung, last.Note ?? "did not leave KVM_RUN when kicked");
        }

        var regs = last.Registers;
        if (regs.Halted && !regs.InterruptsEnabled)
        {
            return new KvmVcpuStall(index, KvmStallVerdict.Hung, Invariant($"HLT with interrupts off at RIP 0x{regs.Rip:x} (only an NMI or INIT wakes it)"));
        }

        if (last.State == VcpuState.Paused)
        {
            return new KvmVcpuStall(index, KvmStallVerdict.Unknown, "paused by its owner");
        }

        if (index != 0 && regs.NeverStarted)
        {
            return new KvmVcpuStall(index, KvmStallVerdict.Unknown, "never started by the guest (waits for INIT/SIPI)");
        }

        var answered = samples.Where(s => s.Registers is not null).ToList();
        var first = answered[0];
        var seconds = (last.At - first.At).TotalSeconds;
        if (answered.Count < 2 || seconds <= 0)
        {
            return new KvmVcpuStall(index, KvmStallVerdict.Unknown, Invariant($"one sample only (RIP 0x{regs.Rip:x}): progress cannot be told"));
        }

        var exits = last.Exits.GuestExits - first.Exits.GuestExits;
        var rate = exits / seconds;
        var rips = answered.Select(s => s.Registers!.Rip).Distinct().Count();
        var moved = answered.Any(s => s.Registers!.Rip != first.Registers!.Rip ||
                                      s.Registers.GeneralRegistersDigest != first.Registers.GeneralRegistersDigest);
        var over = Invariant($"{exits} guest exits in {seconds * 1000:F0} ms ({rate:F0}/s)");
        if (rate >= stormExitsPerSecond)
        {
            var mostly = KvmExitCounters.DescribeCounts(Delta(first.Exits, last.Exits), top: 1);
            return rips <= 2
                ? new KvmVcpuStall(index, KvmStallVerdict.ExitStorm, Invariant($"{over}, mostly {mostly}, with RIP stuck at 0x{regs.Rip:x}"))
                : new KvmVcpuStall(index, KvmStallVerdict.Unknown, Invariant($"busy: {over}, mostly {mostly}, RIP moving"));
        }

        if (moved)
        {
            return new KvmVcpuStall(index, KvmStallVerdict.Crawling,
                Invariant($"registers move (RIP 0x{first.Registers!.Rip:x} -> 0x{regs.Rip:x}) with only {over}"));
        }

        return regs.Halted
            ? new KvmVcpuStall(index, KvmStallVerdict.Hung,
                Invariant($"idle in HLT with interrupts on at RIP 0x{regs.Rip:x}, registers unchanged over {answered.Count} samples: waits for something that never comes"))
            : new KvmVcpuStall(index, KvmStallVerdict.Hung,
                Invariant($"no progress: registers unchanged at RIP 0x{regs.Rip:x} over {answered.Count} samples, {over}"));
    }

    private static string DescribeVcpu(KvmVcpuSample first, KvmVcpuSample last)
    {
        var text = new StringBuilder();
        text.Append(Invariant($"vcpu{last.Index} "));
        if (last.Registers is { } r)
        {
            text.Append(Invariant(
                $"rip=0x{r.Rip:x} {r.Mode} CR0=0x{r.Cr0:x} CR4=0x{r.Cr4:x} EFER=0x{r.Efer:x} IF={(r.InterruptsEnabled ? 1 : 0)} {r.MpStateName}"));
        }
        else
        {
            text.Append(Invariant($"{last.State}: {last.Note ?? "no answer"}"));
        }

        var seconds = (last.At - first.At).TotalSeconds;
        if (seconds > 0)
        {
            var inRun = (last.Exits.InKvmRun - first.Exits.InKvmRun).TotalSeconds / seconds;
            text.Append(Invariant($"; over {seconds * 1000:F0} ms: {DescribeDelta(first.Exits, last.Exits)}, {Math.Min(inRun, 1) * 100:F0}% in KVM_RUN"));
        }

        text.Append(Invariant($"; since start: {last.Exits.Runs} runs, {last.Exits.Describe(3)}, {last.Exits.InKvmRun.TotalMilliseconds:F0} ms in KVM_RUN"));
        return text.ToString();
    }

    private static string DescribeDelta(KvmExitCounters from, KvmExitCounters to) => KvmExitCounters.DescribeCounts(Delta(from, to), top: 3);

    private static long[] Delta(KvmExitCounters from, KvmExitCounters to)
    {
        var delta = new long[Math.Max(from.ByReason.Count, to.ByReason.Count)];
        for (var i = 0; i < delta.Length; i++)
        {
            delta[i] = (i < to.ByReason.Count ? to.ByReason[i] : 0) - (i < from.ByReason.Count ? from.ByReason[i] : 0);
        }

        return delta;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>The samples' clock: monotonic, so differences between samples are true intervals.</summary>
internal static class KvmStallClock
{
    public static TimeSpan Now() => KvmExitCounters.TicksToTime(System.Diagnostics.Stopwatch.GetTimestamp());
}
