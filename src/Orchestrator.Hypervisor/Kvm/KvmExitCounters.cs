// Per-vCPU exit counters of the native engine: every KVM_RUN return by kvm_run.exit_reason, and the time spent inside
// the ioctl. Kept by the vCPU thread (KvmVcpuRunner) at the cost of one add per exit; read as snapshots by stall reports.
using System.Globalization;

namespace Orchestrator.Hypervisor.Kvm;

/// <summary>
/// A snapshot of one vCPU's KVM_RUN returns: how many, how long it spent inside the ioctl, and how many returned with
/// each kvm_run.exit_reason (KVM_EXIT_*; index = reason, the last bucket takes any reason beyond it).
/// </summary>
/// <param name="Runs">every return from KVM_RUN, failed ones included.</param>
/// <param name="InKvmRun">wall time spent inside the KVM_RUN ioctl (guest time plus the kernel's exit handling).</param>
public sealed record KvmExitCounters(long Runs, TimeSpan InKvmRun, IReadOnlyList<long> ByReason)
{
    /// <summary>KVM_EXIT_* reasons reach the low 40s in Linux 6.x; 64 buckets leave room, the last one catches the rest.</summary>
    public const int Buckets = 64;

    public static readonly KvmExitCounters None = new(0, TimeSpan.Zero, new long[Buckets]);

    /// <summary>Exits the guest caused: all but KVM_EXIT_INTR, which is the VMM's own kicks (pause, probes, these samples).</summary>
    public long GuestExits
    {
        get
        {
            long total = 0;
            for (var i = 0; i < ByReason.Count; i++)
            {
                total += i == KvmExit.KVM_EXIT_INTR ? 0 : ByReason[i];
            }

            return total;
        }
    }

    public long this[uint reason] => Bucket(reason) < ByReason.Count ? ByReason[Bucket(reason)] : 0;

    public static int Bucket(uint reason) => (int)Math.Min(reason, Buckets - 1u);

    /// <summary>The kernel's name of an exit reason (the last bucket reads "exit reason 63+").</summary>
    public static string ReasonName(int bucket) => bucket >= Buckets - 1 ? $"exit reason {Buckets - 1}+" : KvmExit.Name((uint)bucket);

    /// <summary>From Stopwatch ticks (what the vCPU thread adds up) to a TimeSpan.</summary>
    public static TimeSpan TicksToTime(long stopwatchTicks) =>
        TimeSpan.FromTicks((long)(stopwatchTicks * ((double)TimeSpan.TicksPerSecond / System.Diagnostics.Stopwatch.Frequency)));

    /// <summary>The reasons that occurred, most frequent first: "KVM_EXIT_IO 120, KVM_EXIT_MMIO 3" (at most <paramref name="top"/>).</summary>
    public string Describe(int top = 4) => DescribeCounts(ByReason, top);

    internal static string DescribeCounts(IReadOnlyList<long> byReason, int top)
    {
        var parts = byReason
            .Select((count, bucket) => (Count: count, Bucket: bucket))
            .Where(e => e.Count != 0)
            .OrderByDescending(e => e.Count)
            .ThenBy(e => e.Bucket)
            .Take(top)
            .Select(e => string.Create(CultureInfo.InvariantCulture, $"{ReasonName(e.Bucket)} {e.Count}"))
            .ToList();
        return parts.Count == 0 ? "no exits" : string.Join(", ", parts);
    }
}
