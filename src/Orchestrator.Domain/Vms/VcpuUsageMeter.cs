namespace Orchestrator.Domain.Vms;

/// <summary>One vCPU thread's totals so far: CPU time it ran, and time it waited, runnable, for a CPU.</summary>
public readonly record struct VcpuTime(int Index, int ThreadId, double CpuSeconds, double WaitingSeconds);

/// <summary>What a VM's vCPUs did over one usage window, in millicores: CPU they used, and what they wanted (used + waited).</summary>
public readonly record struct CpuWindow(long UsedMillicores, long DemandMillicores);

/// <summary>
/// Turns a VM's per-vCPU CPU-time totals into usage per window: the totals grow as samples come in; each
/// <see cref="Measure"/> closes a window and says what the vCPUs used and wanted since the previous one.
/// </summary>
public sealed class VcpuUsageMeter
{
    private readonly SortedDictionary<int, VcpuTime> _vcpus = [];
    private (double CpuSeconds, double WaitingSeconds, DateTimeOffset At)? _previous;

    /// <summary>Every known vCPU, by index.</summary>
    public IReadOnlyCollection<VcpuTime> Vcpus => _vcpus.Values;

    /// <summary>The last closed window; null until two measurements apart in time were taken.</summary>
    public CpuWindow? Last { get; private set; }

    /// <summary>A vCPU the VM has, before any sample of it: it counts from zero and towards the demand cap.</summary>
    public void Found(int index, int threadId) => _vcpus[index] = new VcpuTime(index, threadId, 0, 0);

    /// <summary>A vCPU's totals as its thread reports them; waiting is unknown (zero) where the kernel does not say.</summary>
    public void Sampled(int index, int threadId, double cpuSeconds, double? waitingSeconds) =>
        _vcpus[index] = new VcpuTime(index, threadId, cpuSeconds, waitingSeconds ?? 0);

    /// <summary>
    /// Closes the window that ends now: null for the first measurement (it only opens a window) and when no time passed.
    /// Totals that went down (a thread replaced) count as nothing used; demand never exceeds what the vCPUs could use.
    /// </summary>
    public CpuWindow? Measure(DateTimeOffset now)
    {
        var cpu = _vcpus.Values.Sum(v => v.CpuSeconds);
        var waiting = _vcpus.Values.Sum(v => v.WaitingSeconds);
        CpuWindow? window = null;
        if (_previous is { } previous && now > previous.At)
        {
            var seconds = (now - previous.At).TotalSeconds;
            var used = Millicores(cpu - previous.CpuSeconds, seconds);
            var wanted = used + Millicores(waiting - previous.WaitingSeconds, seconds);
            window = new CpuWindow(used, Math.Min(wanted, 1000L * Math.Max(1, _vcpus.Count)));
            Last = window;
        }

        _previous = (cpu, waiting, now);
        return window;
    }

    private static long Millicores(double cpuSeconds, double seconds) => (long)Math.Round(Math.Max(0, cpuSeconds) / seconds * 1000);
}
