// What a host learned about its accelerator by booting a guest under it: the choice, and the evidence behind it.
using System.Globalization;

namespace Orchestrator.Hypervisor.Accel;

/// <summary>How one candidate (an accelerator with a CPU model) fared in the probe.</summary>
public enum ProbeOutcome
{
    /// <summary>The probe guest printed its banner before the deadline.</summary>
    Booted,

    /// <summary>The hypervisor ended before the banner (QEMU refused the CPU model, aborted on an MSR, …).</summary>
    ExitedAtStart,

    /// <summary>It started but printed no banner before the deadline: a crawling or hung accelerator.</summary>
    MissedDeadline,

    /// <summary>It could not even be tried: no /dev/kvm, no image, no binary.</summary>
    Unavailable,

    /// <summary>A fixed loop on the accelerator took far longer than real hardware needs: it would crawl, whatever the model.</summary>
    TooSlow,
}

/// <summary>One candidate tried: <paramref name="Detail"/> says what was seen (exit code and the hypervisor's last words, the console's last line…).</summary>
public sealed record ProbeAttempt(string Accelerator, string CpuModel, ProbeOutcome Outcome, double Milliseconds, string Detail)
{
    public string Describe()
    {
        var what = CpuModel.Length == 0 ? Accelerator : $"{Accelerator} -cpu {CpuModel}";
        var took = Milliseconds.ToString("F0", CultureInfo.InvariantCulture);
        return Outcome switch
        {
            ProbeOutcome.Booted => $"{what}: banner after {took} ms",
            ProbeOutcome.ExitedAtStart => $"{what}: exited before the banner ({Detail})",
            ProbeOutcome.MissedDeadline => $"{what}: no banner within {took} ms ({Detail})",
            ProbeOutcome.TooSlow => $"{what}: too slow ({Detail})",
            _ => $"{what}: not tried ({Detail})",
        };
    }
}

/// <summary>
/// The accelerator a host uses and why. <see cref="Accelerator"/> is "kvm" (hardware) or "tcg" (QEMU's emulator);
/// <see cref="Reason"/> is one line an operator can act on; <see cref="Attempts"/> is the evidence, in the order tried.
/// </summary>
public sealed record AcceleratorVerdict(
    string Accelerator,
    string CpuModel,
    string Reason,
    IReadOnlyList<ProbeAttempt> Attempts,
    double ProbeMilliseconds,
    DateTimeOffset DecidedAt,
    bool FromCache = false)
{
    public const string Kvm = "kvm";
    public const string Tcg = "tcg";

    public bool IsHardware => Accelerator == Kvm;

    /// <summary>KVM was there and was tried, and failed: worth a warning, unlike a host that simply has no /dev/kvm.</summary>
    public bool KvmFailed => !IsHardware && Attempts.Any(a => a.Outcome is ProbeOutcome.ExitedAtStart or ProbeOutcome.MissedDeadline or ProbeOutcome.TooSlow);

    /// <summary>One line for logs and the demo: the choice, the CPU model, and why.</summary>
    public string Summary =>
        $"{Accelerator} (cpu {CpuModel}): {Reason}" + (FromCache ? $" [probed {DecidedAt:yyyy-MM-dd HH:mm:ss}Z, cached]" : "");

    /// <summary>Chosen without probing (accel = tcg, or a driver that has no choice).</summary>
    public static AcceleratorVerdict Configured(string accelerator, string cpuModel, string reason) =>
        new(accelerator, cpuModel, reason, [], 0, DateTimeOffset.UtcNow);

    /// <summary>
    /// The decision over the attempts: the first candidate that booted wins; with none, TCG, saying what each did.
    /// Pure, so the rule is tested apart from any hypervisor.
    /// </summary>
    public static AcceleratorVerdict Decide(IReadOnlyList<ProbeAttempt> attempts, string fallbackCpuModel, double probeMilliseconds,
        DateTimeOffset now)
    {
        var booted = attempts.FirstOrDefault(a => a.Outcome == ProbeOutcome.Booted);
        if (booted is not null)
        {
            var earlier = attempts.TakeWhile(a => a != booted).Select(a => a.Describe()).ToList();
            var proof = $"the probe guest reached its banner in {booted.Milliseconds.ToString("F0", CultureInfo.InvariantCulture)} ms" +
                         (earlier.Count == 0 ? "" : $" (after: {string.Join("; ", earlier)})");
            return new AcceleratorVerdict(booted.Accelerator, booted.CpuModel, proof, attempts, probeMilliseconds, now);
        }

        // A host without KVM at all is not a host whose KVM failed: say which, in words an operator acts on.
        var reason = attempts.Count > 0 && attempts.All(a => a.Outcome == ProbeOutcome.Unavailable)
            ? $"no KVM to try: {string.Join("; ", attempts.Select(a => a.Detail))}"
            : $"fell back to TCG: {(attempts.Count == 0 ? "nothing was tried" : string.Join("; ", attempts.Select(a => a.Describe())))}";
        return new AcceleratorVerdict(Tcg, fallbackCpuModel, reason, attempts, probeMilliseconds, now);
    }
}
