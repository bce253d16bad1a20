// The accelerator probe's decisions against scripted stand-ins for QEMU (one that aborts at start as QEMU 7.2 does on
// a nested host's MSR, one that crawls and never prints the banner, one that boots), and the real probe on whatever
// this machine has. The stand-ins see a plain file as /dev/kvm, so the broken-KVM cases run on every machine.
using Orchestrator.Hypervisor.Accel;
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests;

public sealed class AcceleratorProbeTests : IDisposable
{
    private const string SecondModel = "host,arch-capabilities=off,pmu=off";
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_kvm_that_aborts_every_cpu_model_falls_back_to_tcg_naming_each_failure()
    {
        var options = Options(StandIn("abort", """
            echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2
            exit 134
            """));

        var verdict = await QemuAcceleratorProbe.ProbeAsync(options, CancellationToken.None);

        Assert.Equal("tcg", verdict.Accelerator);
        Assert.Equal("max", verdict.CpuModel);
        Assert.Equal(["host", SecondModel, "EPYC"], verdict.Attempts.Select(a => a.CpuModel));
        Assert.All(verdict.Attempts, a => Assert.Equal(ProbeOutcome.ExitedAtStart, a.Outcome));
        Assert.All(verdict.Attempts, a => Assert.Contains("exit code 134", a.Detail));
        Assert.StartsWith("fell back to TCG:", verdict.Reason);
        Assert.Contains("failed to set MSR 0x10a", verdict.Reason);
        Assert.True(verdict.KvmFailed);
    }

    [Fact]
    public async Task A_kvm_that_never_reaches_the_banner_is_given_up_at_the_deadline_and_its_qemu_killed()
    {
        var pids = Path.Combine(_dir.Path, "pids");
        var options = Options(StandIn("crawl", $"""
            echo $$ >> {pids}
            echo "Probing EDD (edd=off to disable)... ok"
            exec sleep 600
            """), models: ["host"], deadline: TimeSpan.FromMilliseconds(500));

        var verdict = await QemuAcceleratorProbe.ProbeAsync(options, CancellationToken.None);

        var attempt = Assert.Single(verdict.Attempts);
        Assert.Equal(ProbeOutcome.MissedDeadline, attempt.Outcome);
        Assert.Contains("Probing EDD", attempt.Detail);
        Assert.Equal("tcg", verdict.Accelerator);
        var pid = int.Parse(File.ReadAllLines(pids).Single());
        await Eventually.HoldsAsync(() => !Processes.Exists(pid), $"the stand-in (pid {pid}) to be killed");
    }

    [Fact]
    public async Task The_first_cpu_model_that_boots_wins_after_those_that_abort()
    {
        var options = Options(StandIn("picky", """
            model=""; prev=""
            for a in "$@"; do [ "$prev" = "-cpu" ] && model="$a"; prev="$a"; done
            if [ "$model" = "host" ]; then echo "kvm_buf_set_msrs: Assertion failed" >&2; exit 134; fi
            echo "ORCHESTRATOR-GUEST-READY unknown"
            exec sleep 600
            """));

        var verdict = await QemuAcceleratorProbe.ProbeAsync(options, CancellationToken.None);

        Assert.Equal("kvm", verdict.Accelerator);
        Assert.Equal(SecondModel, verdict.CpuModel);
        Assert.Equal([ProbeOutcome.ExitedAtStart, ProbeOutcome.Booted], verdict.Attempts.Select(a => a.Outcome));
        Assert.Contains("kvm_buf_set_msrs", verdict.Reason);
        Assert.Equal("", verdict.ForHost().Note);
    }

    [Fact]
    public async Task A_kvm_measured_far_too_slow_is_given_up_without_booting_anything()
    {
        var calls = CallsFile;
        var options = Options(Booting()) with
        {
            SpeedCheck = _ => KvmSpeedCheck.Judge(5_000_000, 1_700, halted: false, TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(500)),
        };

        var verdict = await QemuAcceleratorProbe.ProbeAsync(options, CancellationToken.None);

        Assert.Equal("tcg", verdict.Accelerator);
        Assert.Equal(ProbeOutcome.TooSlow, Assert.Single(verdict.Attempts).Outcome);
        Assert.Contains("too slow (speed check:", verdict.Reason);
        Assert.True(verdict.KvmFailed);
        Assert.False(File.Exists(calls));
    }

    [Fact]
    public async Task A_speed_check_that_cannot_run_proves_nothing_and_the_boots_decide()
    {
        var options = Options(Booting()) with
        {
            SpeedCheck = _ => new KvmSpeedCheckResult(KvmSpeedCheckOutcome.Error, 5_000_000, 0, TimeSpan.Zero, TimeSpan.FromMilliseconds(500),
                "KVM_CREATE_VM: Operation not permitted"),
        };

        var verdict = await QemuAcceleratorProbe.ProbeAsync(options, CancellationToken.None);

        Assert.Equal("kvm", verdict.Accelerator);
        Assert.Equal("host", verdict.CpuModel);
    }

    [Fact]
    public async Task Without_a_kvm_device_nothing_boots_and_tcg_is_chosen_saying_why()
    {
        var calls = CallsFile;
        var options = Options(Booting()) with { KvmDevice = Path.Combine(_dir.Path, "no-kvm") };

        var verdict = await QemuAcceleratorProbe.ProbeAsync(options, CancellationToken.None);

        Assert.Equal("tcg", verdict.Accelerator);
        Assert.Equal(ProbeOutcome.Unavailable, Assert.Single(verdict.Attempts).Outcome);
        Assert.StartsWith("no KVM to try: cannot open ", verdict.Reason);
        Assert.Contains("no-kvm", verdict.Reason);
        Assert.False(verdict.KvmFailed);
        Assert.False(File.Exists(calls));
    }

    [Fact]
    public async Task A_verdict_is_kept_until_what_it_depends_on_changes()
    {
        var calls = CallsFile;
        var options = Options(Booting());
        var cache = Path.Combine(_dir.Path, "cache", "accel-probe.qemu.json");

        var first = await AcceleratorChoice.ForQemuAsync(AccelMode.Auto, options, cache, CancellationToken.None);
        var second = await AcceleratorChoice.ForQemuAsync(AccelMode.Auto, options, cache, CancellationToken.None);
        File.SetLastWriteTimeUtc(options.Image.InitrdPath, DateTime.UtcNow.AddMinutes(1));
        var third = await AcceleratorChoice.ForQemuAsync(AccelMode.Auto, options, cache, CancellationToken.None);

        Assert.Equal("kvm", first.Accelerator);
        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.Equal(first.CpuModel, second.CpuModel);
        Assert.Equal(first.Reason, second.Reason);
        Assert.False(third.FromCache);
        Assert.Equal(2, File.ReadAllLines(calls).Length);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(cache));
    }

    [Fact]
    public async Task Forcing_kvm_where_the_probe_fails_is_refused_with_what_the_probe_saw()
    {
        var options = Options(StandIn("abort", """
            echo "failed to set MSR 0x10a to 0x69" >&2
            exit 134
            """));

        var refused = await Assert.ThrowsAsync<HypervisorException>(() =>
            AcceleratorChoice.ForQemuAsync(AccelMode.Kvm, options, Path.Combine(_dir.Path, "cache.json"), CancellationToken.None));

        Assert.StartsWith("accel = kvm, but the accelerator probe found KVM unusable:", refused.Message);
        Assert.Contains("-cpu host: exited before the banner (exit code 134: failed to set MSR 0x10a", refused.Message);
    }

    [Fact]
    public async Task Accel_tcg_never_probes()
    {
        var calls = CallsFile;
        var options = Options(Booting());

        var verdict = await AcceleratorChoice.ForQemuAsync(AccelMode.Tcg, options, Path.Combine(_dir.Path, "cache.json"), CancellationToken.None);

        Assert.Equal("tcg", verdict.Accelerator);
        Assert.Contains("accel = tcg", verdict.Reason);
        Assert.Empty(verdict.Attempts);
        Assert.False(File.Exists(calls));
    }

    [QemuFact]
    public async Task The_real_probe_decides_what_this_machine_can_do_and_says_why()
    {
        var options = new QemuProbeOptions("qemu-system-x86_64", await DemoImage.GetAsync(), TimeSpan.FromSeconds(5), SpeedCheck: QemuAcceleratorProbe.TimedLoop);

        var verdict = await QemuAcceleratorProbe.ProbeAsync(options, CancellationToken.None);

        // No /dev/kvm: TCG without a boot. A /dev/kvm: KVM exactly when one model booted to the banner.
        Assert.NotEmpty(verdict.Attempts);
        Assert.Equal(verdict.Attempts.Any(a => a.Outcome == ProbeOutcome.Booted), verdict.IsHardware);
        if (!QemuAcceleratorProbe.DeviceOpens("/dev/kvm", out _))
        {
            Assert.Equal("tcg", verdict.Accelerator);
            Assert.Contains("/dev/kvm", verdict.Reason);
        }
    }

    [Fact]
    public async Task The_native_engine_is_used_only_where_its_probe_boots_a_guest()
    {
        var image = await DemoImage.GetAsync();

        var verdict = await AcceleratorChoice.ForNativeAsync(image, TimeSpan.FromSeconds(5), Path.Combine(_dir.Path, "run"),
            Path.Combine(_dir.Path, "accel-probe.kvm.json"), CancellationToken.None);

        Assert.Equal(verdict.Attempts.Any(a => a.Outcome == ProbeOutcome.Booted), verdict.IsHardware);
        if (!Orchestrator.Hypervisor.Kvm.KvmDriver.IsAvailable(out _))
        {
            Assert.False(verdict.IsHardware);
            Assert.Contains("/dev/kvm", verdict.Reason);
        }
    }

    private QemuProbeOptions Options(string qemu, IReadOnlyList<string>? models = null, TimeSpan? deadline = null)
    {
        var kernel = Path.Combine(_dir.Path, "vmlinuz");
        var initrd = Path.Combine(_dir.Path, "initrd.img");
        var kvm = Path.Combine(_dir.Path, "kvm");
        foreach (var file in new[] { kernel, initrd, kvm })
        {
            if (!File.Exists(file))
            {
                File.WriteAllText(file, "stand-in");
            }
        }

        return new QemuProbeOptions(qemu, new GuestImage("probe", kernel, initrd, ""), deadline ?? TimeSpan.FromSeconds(20),
            models ?? QemuAcceleratorProbe.CandidateCpuModels("AuthenticAMD"), kvm);
    }

    /// <summary>Where <see cref="Booting"/> notes each run.</summary>
    private string CallsFile => Path.Combine(_dir.Path, "calls");

    /// <summary>A QEMU whose guest boots at once: it prints the banner, noting each run in <see cref="CallsFile"/>.</summary>
    private string Booting() => StandIn("boots", $"""
        echo called >> {CallsFile}
        echo "ORCHESTRATOR-GUEST-READY unknown"
        """);

    /// <summary>A shell script standing in for qemu-system-x86_64.</summary>
    private string StandIn(string name, string body)
    {
        var path = Path.Combine(_dir.Path, name);
        File.WriteAllText(path, "#!/bin/bash\n" + body + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }
}

/// <summary>The accelerator the host's probe chooses on this machine, probed once per boot for every test process.</summary>
internal static class TestAccelerator
{
    /// <summary>The node tests name the same file, so a whole run probes once.</summary>
    public static readonly string CacheFile = Path.Combine(Path.GetTempPath(), "orchestrator-tests", "accel-probe.qemu.json");

    private static readonly Lazy<Task<AcceleratorVerdict>> Verdict = new(async () =>
        await AcceleratorChoice.ForQemuAsync(AccelMode.Auto,
            new QemuProbeOptions("qemu-system-x86_64", await DemoImage.GetAsync(), TimeSpan.FromSeconds(5), SpeedCheck: QemuAcceleratorProbe.TimedLoop), CacheFile, CancellationToken.None));

    public static Task<AcceleratorVerdict> GetAsync() => Verdict.Value;
}
