// The host's accelerator, decided by proof: the probe's verdict (cached per boot) under the operator's accel setting.
using System.Diagnostics;
using System.Globalization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Hypervisor.Kvm;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Accel;

/// <summary>orchestrator.host.accel: auto (the probe decides), kvm (the probe must prove it), tcg (never probe).</summary>
public enum AccelMode
{
    Auto,
    Kvm,
    Tcg,
}

public static class AcceleratorChoice
{
    /// <summary>What a QEMU driver runs with when nobody probed: TCG, which works everywhere.</summary>
    public static readonly AcceleratorVerdict TcgUnprobed =
        AcceleratorVerdict.Configured(AcceleratorVerdict.Tcg, QemuAcceleratorProbe.TcgCpuModel, "not probed: TCG by default");

    public static AccelMode ParseMode(string text) => text switch
    {
        "auto" => AccelMode.Auto,
        "kvm" => AccelMode.Kvm,
        "tcg" => AccelMode.Tcg,
        _ => throw new ArgumentException($"unknown accelerator '{text}' (known: auto, kvm, tcg)", nameof(text)),
    };

    /// <summary>
    /// The QEMU driver's accelerator under <paramref name="mode"/>: tcg without probing; otherwise the probe's verdict,
    /// from <paramref name="cachePath"/> when it is current.
    /// </summary>
    /// <exception cref="HypervisorException">accel = kvm, and the probe found KVM unusable: the message says what it saw.</exception>
    public static async Task<AcceleratorVerdict> ForQemuAsync(AccelMode mode, QemuProbeOptions options, string cachePath,
        CancellationToken cancellationToken)
    {
        if (mode == AccelMode.Tcg)
        {
            return AcceleratorVerdict.Configured(AcceleratorVerdict.Tcg, QemuAcceleratorProbe.TcgCpuModel, "accel = tcg (configured; not probed)");
        }

        var key = AcceleratorProbeCache.Key(
            [QemuBinaryPath(options.QemuBinary), options.Image.KernelPath, options.Image.InitrdPath, options.KvmDevice],
            "qemu probe",
            $"deadline {options.Deadline.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)} ms",
            $"models {string.Join(" ", options.CpuModels ?? QemuAcceleratorProbe.CandidateCpuModels())}",
            $"machine {options.Machine}",
            $"speed check {(options.SpeedCheck is null ? "off" : "on")}");
        var verdict = await AcceleratorProbeCache.GetOrProbeAsync(cachePath, key,
            ct => QemuAcceleratorProbe.ProbeAsync(options, ct), cancellationToken);
        return mode == AccelMode.Kvm && !verdict.IsHardware
            ? throw new HypervisorException($"accel = kvm, but the accelerator probe found KVM unusable: {verdict.Reason}")
            : verdict;
    }

    /// <summary>
    /// Whether the native engine boots <paramref name="image"/> to its banner within <paramref name="deadline"/>:
    /// "kvm" when it does, otherwise a verdict whose <see cref="AcceleratorVerdict.Reason"/> says why not (not TCG: the
    /// native engine has no emulator, so a failed verdict means "use QEMU instead").
    /// </summary>
    public static Task<AcceleratorVerdict> ForNativeAsync(GuestImage image, TimeSpan deadline, string runDirectory, string cachePath,
        CancellationToken cancellationToken)
    {
        var key = AcceleratorProbeCache.Key([image.KernelPath, image.InitrdPath, "/dev/kvm", typeof(KvmDriver).Assembly.Location],
            "native probe", $"deadline {deadline.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)} ms");
        return AcceleratorProbeCache.GetOrProbeAsync(cachePath, key, async ct =>
        {
            var started = Stopwatch.GetTimestamp();
            var attempt = await BootNativeOnceAsync(image, deadline, runDirectory, ct);
            return AcceleratorVerdict.Decide([attempt], "", Stopwatch.GetElapsedTime(started).TotalMilliseconds, DateTimeOffset.UtcNow);
        }, cancellationToken);
    }

    /// <summary>One boot of the probe guest in the native engine: banner, exit, or deadline.</summary>
    public static async Task<ProbeAttempt> BootNativeOnceAsync(GuestImage image, TimeSpan deadline, string runDirectory,
        CancellationToken cancellationToken)
    {
        const string accelerator = AcceleratorVerdict.Kvm;
        const string model = "host";
        if (!KvmDriver.IsAvailable(out var noKvm))
        {
            return new ProbeAttempt(accelerator, model, ProbeOutcome.Unavailable, 0, noKvm);
        }

        if (await Task.Run(() => QemuAcceleratorProbe.TimedLoop(cancellationToken), cancellationToken) is { Outcome: KvmSpeedCheckOutcome.Failed } slow)
        {
            return new ProbeAttempt(accelerator, model, ProbeOutcome.TooSlow, slow.Elapsed.TotalMilliseconds, $"speed check: {slow.Reason}");
        }

        var began = Stopwatch.GetTimestamp();
        await using var driver = new KvmDriver(new KvmDriverOptions { RunDirectory = runDirectory });
        IVmHandle vm;
        try
        {
            vm = await driver.StartAsync(new VmLaunchSpec(VmId.New(), "accel-probe", 1, 128, image, Epoch.Zero), cancellationToken);
        }
        catch (HypervisorException ex)
        {
            return new ProbeAttempt(accelerator, model, ProbeOutcome.ExitedAtStart, Stopwatch.GetElapsedTime(began).TotalMilliseconds, ex.Message);
        }

        await using (vm)
        {
            var outcome = new TaskCompletionSource<(ProbeOutcome, string)>(TaskCreationOptions.RunContinuationsAsynchronously);
            var lastLine = "";
            vm.Subscribe(e =>
            {
                switch (e)
                {
                    case VmEvent.ConsoleLine { Text: var text } when text.Contains(QemuAcceleratorProbe.Banner, StringComparison.Ordinal):
                        outcome.TrySetResult((ProbeOutcome.Booted, ""));
                        break;
                    case VmEvent.ConsoleLine { Text: var text } when text.Trim().Length > 0:
                        lastLine = text.Trim();
                        break;
                    case VmEvent.Exited { Reason: var reason }:
                        outcome.TrySetResult((ProbeOutcome.ExitedAtStart, reason));
                        break;
                }
            });

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(deadline);
            (ProbeOutcome Outcome, string Detail) result;
            try
            {
                result = await outcome.Task.WaitAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // The engine can see what QEMU cannot: where the vCPUs are and what they exit for, so that a crawling
                // accelerator reads differently from a hung guest.
                var stall = vm is KvmVm kvm ? $"; vCPUs: {await KvmStallReport.DescribeAsync(kvm, TimeSpan.FromSeconds(3))}" : "";
                result = (ProbeOutcome.MissedDeadline,
                    (lastLine.Length == 0 ? "the guest printed nothing" : $"its console's last line: {lastLine}") + stall);
            }

            var took = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
            try
            {
                await vm.KillAsync(CancellationToken.None);
            }
            catch (HypervisorException)
            {
                // It ended by itself meanwhile.
            }

            return new ProbeAttempt(accelerator, model, result.Outcome, took, result.Detail);
        }
    }

    /// <summary>The verdict as the ledger keeps it for a host: the note only on a fallback, and bounded.</summary>
    public static HostAccelerator ForHost(this AcceleratorVerdict verdict)
    {
        var note = verdict.IsHardware ? "" : verdict.Reason;
        return new HostAccelerator(verdict.Accelerator, verdict.CpuModel,
            note.Length > HostAccelerator.MaxNoteLength ? note[..(HostAccelerator.MaxNoteLength - 1)] + "…" : note);
    }

    private static string QemuBinaryPath(string binary)
    {
        try
        {
            return QemuDriver.ResolveBinary(binary);
        }
        catch (HypervisorException)
        {
            return binary;
        }
    }
}
