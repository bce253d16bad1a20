// Learns whether QEMU can use KVM on this host by booting the probe guest under it, CPU model by CPU model, with a
// deadline: a /dev/kvm that opens can still refuse a CPU model (an MSR a nested host rejects) or crawl at a
// two-thousandth of native speed (../shared/notes/nested-kvm.md). Opening the device proves neither.
using System.Diagnostics;
using Orchestrator.Hypervisor.Kvm;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Accel;

/// <summary>What the QEMU probe boots, and how long it waits for each candidate.</summary>
/// <param name="Image">A guest that prints <see cref="QemuAcceleratorProbe.Banner"/> on its serial console (the demo image does).</param>
/// <param name="Deadline">Per candidate: a good KVM host boots the demo image well under a second.</param>
/// <param name="CpuModels">The models tried under KVM, in order; null: <see cref="QemuAcceleratorProbe.CandidateCpuModels"/>.</param>
/// <param name="KvmDevice">The device that must open read-write before KVM is tried at all.</param>
/// <param name="SpeedCheck">
/// Run first, where KVM opens: a KVM measured far slower than real hardware is given up in well under a second, without
/// three boots to their deadlines. <see cref="QemuAcceleratorProbe.TimedLoop"/> on a real host; null: boot at once.
/// </param>
public sealed record QemuProbeOptions(
    string QemuBinary,
    GuestImage Image,
    TimeSpan Deadline,
    IReadOnlyList<string>? CpuModels = null,
    string KvmDevice = "/dev/kvm",
    string Machine = "q35",
    Func<CancellationToken, KvmSpeedCheckResult>? SpeedCheck = null);

public static class QemuAcceleratorProbe
{
    /// <summary>The demo guest's ready line; the probe waits for its start.</summary>
    public const string Banner = Orchestrator.Domain.Vms.GuestConsole.ReadyBanner;

    /// <summary>
    /// The speed check's bound: 5 million loop iterations take about 5 ms on real KVM; a hundred times that still passes
    /// a loaded host, while a nested KVM that crawls at 2,000x is stopped here.
    /// </summary>
    public static readonly TimeSpan SpeedLimit = TimeSpan.FromMilliseconds(500);

    /// <summary>The native engine's timed loop on /dev/kvm, bounded by <see cref="SpeedLimit"/>.</summary>
    public static KvmSpeedCheckResult TimedLoop(CancellationToken cancellationToken) =>
        KvmSpeedCheck.Run(KvmSpeedCheck.DefaultIterations, SpeedLimit, cancellationToken);

    /// <summary>The CPU model TCG runs (every feature QEMU can emulate).</summary>
    public const string TcgCpuModel = "max";

    /// <summary>
    /// <c>host</c> first (every feature, the fastest guest); then <c>host</c> without what nested hosts commonly refuse
    /// (IA32_ARCH_CAPABILITIES, MSR 0x10a, is the one QEMU 7.2 aborts on; the PMU's MSRs are the next most often
    /// missing); then a named model of the host's vendor, which asks for nothing the host lacks beyond a warning.
    /// </summary>
    public static IReadOnlyList<string> CandidateCpuModels(string? cpuVendor = null) =>
    [
        "host",
        "host,arch-capabilities=off,pmu=off",
        (cpuVendor ?? CpuVendor()) switch
        {
            "AuthenticAMD" => "EPYC",
            "GenuineIntel" => "Skylake-Client",
            _ => "qemu64",
        },
    ];

    /// <summary>
    /// Boots the probe guest under KVM with each candidate CPU model in turn, until one reaches the banner; TCG when
    /// none does or KVM cannot be opened. Never throws for what it finds: every failure is evidence in the verdict.
    /// </summary>
    public static async Task<AcceleratorVerdict> ProbeAsync(QemuProbeOptions options, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var attempts = new List<ProbeAttempt>();
        if (!DeviceOpens(options.KvmDevice, out var noKvm))
        {
            attempts.Add(new ProbeAttempt(AcceleratorVerdict.Kvm, "", ProbeOutcome.Unavailable, 0, noKvm));
        }
        else if (options.SpeedCheck is { } check && await Task.Run(() => check(cancellationToken), cancellationToken) is
                 { Outcome: KvmSpeedCheckOutcome.Failed } slow)
        {
            // Measured, and far too slow: every CPU model would crawl the same. An error (the check itself could not
            // run) proves nothing either way, and the boots below decide.
            attempts.Add(new ProbeAttempt(AcceleratorVerdict.Kvm, "", ProbeOutcome.TooSlow, slow.Elapsed.TotalMilliseconds,
                $"speed check: {slow.Reason}"));
        }
        else
        {
            foreach (var model in options.CpuModels ?? CandidateCpuModels())
            {
                var attempt = await BootOnceAsync(options, model, cancellationToken);
                attempts.Add(attempt);
                // Booted: done. Unavailable (no binary, no image): no other model would fare better.
                if (attempt.Outcome is ProbeOutcome.Booted or ProbeOutcome.Unavailable)
                {
                    break;
                }
            }
        }

        return AcceleratorVerdict.Decide(attempts, TcgCpuModel, Stopwatch.GetElapsedTime(started).TotalMilliseconds, DateTimeOffset.UtcNow);
    }

    /// <summary>One boot of the probe guest under KVM with <paramref name="cpuModel"/>: banner, exit, or deadline.</summary>
    public static async Task<ProbeAttempt> BootOnceAsync(QemuProbeOptions options, string cpuModel, CancellationToken cancellationToken)
    {
        string qemu;
        try
        {
            qemu = QemuDriver.ResolveBinary(options.QemuBinary);
            GuestImageFiles.CheckReadable(options.Image);
        }
        catch (HypervisorException ex)
        {
            return new ProbeAttempt(AcceleratorVerdict.Kvm, cpuModel, ProbeOutcome.Unavailable, 0, ex.Message);
        }

        var start = new ProcessStartInfo(qemu)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in Arguments(options, cpuModel))
        {
            start.ArgumentList.Add(arg);
        }

        var began = Stopwatch.GetTimestamp();
        using var process = new Process { StartInfo = start };
        var banner = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var console = new LastLines(3);
        var errors = new LastLines(6);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            console.Add(e.Data);
            if (e.Data.Contains(Banner, StringComparison.Ordinal))
            {
                banner.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                errors.Add(e.Data);
            }
        };

        try
        {
            process.Start();
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return new ProbeAttempt(AcceleratorVerdict.Kvm, cpuModel, ProbeOutcome.Unavailable, 0, $"cannot run {qemu}: {ex.Message}");
        }

        try
        {
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(options.Deadline);
            var exited = process.WaitForExitAsync(deadline.Token);
            var first = await Task.WhenAny(banner.Task, exited);
            var took = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
            cancellationToken.ThrowIfCancellationRequested();
            if (first == banner.Task)
            {
                return new ProbeAttempt(AcceleratorVerdict.Kvm, cpuModel, ProbeOutcome.Booted, took, "");
            }

            if (exited.IsCompletedSuccessfully)
            {
                // The exit may have raced the banner's line through the pipe: the banner still counts.
                process.WaitForExit();
                if (banner.Task.IsCompleted)
                {
                    return new ProbeAttempt(AcceleratorVerdict.Kvm, cpuModel, ProbeOutcome.Booted, took, "");
                }

                var said = errors.Text();
                return new ProbeAttempt(AcceleratorVerdict.Kvm, cpuModel, ProbeOutcome.ExitedAtStart, took,
                    $"exit code {process.ExitCode}" + (said.Length == 0 ? "" : $": {said}"));
            }

            var last = console.Text();
            return new ProbeAttempt(AcceleratorVerdict.Kvm, cpuModel, ProbeOutcome.MissedDeadline, took,
                last.Length == 0 ? "the guest printed nothing" : $"its console's last line: {last}");
        }
        finally
        {
            Kill(process);
        }
    }

    internal static IReadOnlyList<string> Arguments(QemuProbeOptions options, string cpuModel) =>
    [
        "-machine", options.Machine,
        "-accel", "kvm",
        "-cpu", cpuModel,
        "-smp", "1",
        "-m", "128",
        "-kernel", options.Image.KernelPath,
        "-initrd", options.Image.InitrdPath,
        "-append", "console=ttyS0 quiet panic=-1 orchestrator.poweroff=1",
        "-serial", "stdio",
        "-display", "none",
        "-monitor", "none",
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
    ];

    /// <summary>Whether <paramref name="device"/> opens read-write; if not, why.</summary>
    public static bool DeviceOpens(string device, out string reason)
    {
        try
        {
            using var opened = new FileStream(device, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            reason = "";
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            reason = $"cannot open {device} read-write: {ex.Message}";
            return false;
        }
    }

    /// <summary>vendor_id from /proc/cpuinfo ("GenuineIntel", "AuthenticAMD"), or "" when unknown.</summary>
    public static string CpuVendor()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (line.StartsWith("vendor_id", StringComparison.Ordinal) && line.IndexOf(':') is var colon and > 0)
                {
                    return line[(colon + 1)..].Trim();
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return "";
    }

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5_000);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Gone already.
        }
    }

    /// <summary>The last few non-empty lines of a stream, bounded, for the verdict's evidence.</summary>
    private sealed class LastLines(int keep)
    {
        private readonly Queue<string> _lines = new();

        public void Add(string line)
        {
            var text = line.Trim();
            if (text.Length == 0)
            {
                return;
            }

            lock (_lines)
            {
                _lines.Enqueue(text.Length > 200 ? text[..200] + "…" : text);
                while (_lines.Count > keep)
                {
                    _lines.Dequeue();
                }
            }
        }

        public string Text()
        {
            lock (_lines)
            {
                return string.Join(" | ", _lines);
            }
        }
    }
}
