// kvm-harness: runs the native KVM engine on a machine with /dev/kvm and prints what it measured. Self-contained (see
// publish.sh), for a bare machine without .NET.
//
//   kvm-harness selftest [--boots N] [--burst N] [--memory MiB] [--vcpus N] [--image DIR] [--output table|json]
//       the accelerator speed check (a fixed real-mode loop against a time limit), the real-mode guest, the engine's checks (pause/resume/stop acknowledged, power-off, reboot), then N boots of
//       the demo image (start -> banner p50/p99, VMM RSS per VM) and a burst of VMs started at once (VMs/s).
//   kvm-harness boot [--append "..."] [--vcpus N] [--memory MiB] [--no-mptable] [--image DIR] [--timeout S]
//       one boot with its console on stdout, to see how far a guest gets.
//   kvm-harness preflight [--image DIR]
//       the host-side checks alone (libc calls, kick signal, kernel loading), which need no /dev/kvm; selftest and
//       boot run them first too.
//
// Exit status: 0 all good, 1 a check failed, 2 no usable /dev/kvm (or bad usage).
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Orchestrator.Domain;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.KvmHarness;

public static class Program
{
    private const string Banner = BootBenchmark.Banner;

    public static async Task<int> Main(string[] args)
    {
        Options options;
        try
        {
            options = Options.Parse(args);
        }
        catch (ArgumentException ex)
        {
            await Console.Error.WriteLineAsync($"kvm-harness: {ex.Message}\n{Options.Usage}");
            return 2;
        }

        var image = FindImage(options.ImageDirectory);
        if (image is null)
        {
            await Console.Error.WriteLineAsync("kvm-harness: no demo image (vmlinuz + initrd.img): pass --image DIR");
            return 2;
        }

        // The host-side checks need no /dev/kvm: they run (and print) first, so a broken build is told apart from a
        // missing device.
        var preflight = KvmPreflight.Run(image, options.MemoryMiB);
        if (!options.Json)
        {
            foreach (var check in preflight)
            {
                Console.WriteLine($"{(check.Ok ? "PASS" : "FAIL")}  {check.Name}: {check.Detail}");
            }
        }

        if (options.Command == "preflight")
        {
            return preflight.All(c => c.Ok) ? 0 : 1;
        }

        if (!KvmDriver.IsAvailable(out var reason))
        {
            await Console.Error.WriteLineAsync($"kvm-harness: no usable /dev/kvm: {reason}");
            return 2;
        }

        var runDirectory = Path.Combine(Path.GetTempPath(), $"kvm-harness-{Environment.ProcessId}");
        try
        {
            return options.Command == "boot"
                ? await BootAsync(options, image, runDirectory)
                : await SelfTestAsync(options, image, runDirectory, preflight);
        }
        finally
        {
            try
            {
                Directory.Delete(runDirectory, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
        }
    }

    private static async Task<int> BootAsync(Options options, GuestImage image, string runDirectory)
    {
        await using var driver = new KvmDriver(new KvmDriverOptions
        {
            RunDirectory = runDirectory,
            ExtraKernelAppend = options.Append,
            MpTable = options.MpTable,
        });
        var started = Stopwatch.StartNew();
        var vm = await driver.StartAsync(Spec(image, "harness-boot", options), CancellationToken.None);
        var done = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        vm.Subscribe(e =>
        {
            var at = started.Elapsed.TotalMilliseconds.ToString("F1", CultureInfo.InvariantCulture);
            switch (e)
            {
                case VmEvent.ConsoleLine line:
                    Console.WriteLine($"[{at,9} ms] {line.Text}");
                    if (line.Text.StartsWith(Banner, StringComparison.Ordinal) && options.Append?.Contains("orchestrator.poweroff=1") != true)
                    {
                        done.TrySetResult("banner");
                    }

                    break;
                case VmEvent.Exited exited:
                    Console.WriteLine($"[{at,9} ms] <exited: {exited.Reason}>");
                    done.TrySetResult("exited");
                    break;
                default:
                    Console.WriteLine($"[{at,9} ms] <{e}>");
                    break;
            }
        });

        var outcome = await done.Task.WaitAsync(options.Timeout).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : "timeout");
        if (outcome == "timeout" && vm is KvmVm native)
        {
            Console.WriteLine($"stall: {await KvmStallReport.DescribeAsync(native)}");
        }

        foreach (var vcpu in ((IVcpuHost)vm).Vcpus)
        {
            Console.WriteLine($"vcpu {vcpu.Index}: tid {vcpu.ThreadId}, {vcpu.State}, {vcpu.Counters}");
        }

        await vm.KillAsync(CancellationToken.None);
        Console.WriteLine($"outcome: {outcome}");
        return outcome == "timeout" ? 1 : 0;
    }

    private static async Task<int> SelfTestAsync(Options options, GuestImage image, string runDirectory, IReadOnlyList<KvmPreflight.Check> preflight)
    {
        var report = new Report(options);
        foreach (var check in preflight)
        {
            report.Add(check.Name, check.Ok, check.Detail);
        }

        // The accelerator's speed first: a /dev/kvm that crawls (nested virtualization) fails here in a tenth of a second,
        // and the boots below then miss their banner with a stall report saying so.
        await report.CheckAsync("speed check: a real-mode register loop runs at hardware speed", () => Task.FromResult(SpeedCheck(report)));

        await using (var driver = new KvmDriver(new KvmDriverOptions { RunDirectory = runDirectory }))
        {
            await report.CheckAsync("real-mode guest prints OK and halts", () => RealModeAsync(driver));
            await report.CheckAsync("demo image boots to its banner", async () =>
            {
                var boot = await BootToBannerAsync(driver, image, "harness-first", options);
                await boot.Vm.KillAsync(CancellationToken.None);
                return $"{boot.BannerMs:F1} ms (includes first-run page cache)";
            });
            await report.CheckAsync("pause/resume/stop acknowledged by every vCPU", () => VcpuProtocolAsync(driver, image, options));
        }

        await using (var driver = new KvmDriver(new KvmDriverOptions { RunDirectory = runDirectory, ExtraKernelAppend = "orchestrator.poweroff=1" }))
        {
            await report.CheckAsync("guest poweroff ends the VM (Shutdown by the guest, then Exited)", () => EndsAsync(driver, image, options, "harness-off"));
        }

        await using (var driver = new KvmDriver(new KvmDriverOptions { RunDirectory = runDirectory, ExtraKernelAppend = "rdinit=/bin/reboot -- -f" }))
        {
            await report.CheckAsync("guest reboot (i8042 reset) ends the VM as guest-reset", () => EndsAsync(driver, image, options, "harness-reboot", "guest-reset"));
        }

        await using (var driver = new KvmDriver(new KvmDriverOptions { RunDirectory = runDirectory }))
        {
            await report.CheckAsync($"{options.Boots} sequential boots", () => SequentialBootsAsync(driver, image, options, report));
            await report.CheckAsync($"{options.Burst} VMs started at once", () => BurstAsync(driver, image, options, report));
        }

        report.Print(options.Json);
        return report.Failed ? 1 : 0;
    }

    private static string SpeedCheck(Report report)
    {
        var result = KvmSpeedCheck.Run();
        report.SpeedCheck = result;
        if (result.Outcome != KvmSpeedCheckOutcome.Error)
        {
            report.Figure("speed_check_ms", result.Elapsed.TotalMilliseconds);
            report.Figure("speed_check_ns_per_iteration", result.NanosecondsPerIteration);
        }

        Expect(result.Passed, result.Describe());
        return result.Describe();
    }

    private static async Task<string> RealModeAsync(KvmDriver driver)
    {
        var vm = await driver.StartProbeGuestAsync(CancellationToken.None);
        var events = new VmEventRecorder(vm);
        await events.WaitAsync(e => e is VmEvent.ConsoleLine { Text: RealModeGuest.Output }, "\"OK\" on the serial console");
        var exited = (VmEvent.Exited)await events.WaitAsync(e => e is VmEvent.Exited, "Exited after HLT");
        return exited.Reason;
    }

    private static async Task<string> VcpuProtocolAsync(KvmDriver driver, GuestImage image, Options options)
    {
        var boot = await BootToBannerAsync(driver, image, "harness-vcpus", options with { Vcpus = Math.Max(options.Vcpus, 2) });
        var vcpus = ((IVcpuHost)boot.Vm).Vcpus;
        var bound = TimeSpan.FromSeconds(10);
        var threads = vcpus.Select(v => v.ThreadId).ToArray();
        Expect(threads.All(t => Directory.Exists($"/proc/{Environment.ProcessId}/task/{t}")), "a vCPU thread id is not a task of this process");

        var watch = Stopwatch.StartNew();
        await boot.Vm.PauseAsync(CancellationToken.None).WaitAsync(bound);
        var pauseMs = watch.Elapsed.TotalMilliseconds;
        Expect(vcpus.All(v => v.State == VcpuState.Paused), "a vCPU is not Paused after the acknowledgement");
        await boot.Events.WaitAsync(e => e is VmEvent.Stopped, "the Stopped event");

        watch.Restart();
        await boot.Vm.ResumeAsync(CancellationToken.None).WaitAsync(bound);
        var resumeMs = watch.Elapsed.TotalMilliseconds;
        Expect(vcpus.All(v => v.State == VcpuState.Running), "a vCPU is not Running after the acknowledgement");
        await boot.Events.WaitAsync(e => e is VmEvent.Resumed, "the Resumed event");

        watch.Restart();
        await vcpus[^1].StopAsync(CancellationToken.None).WaitAsync(bound);
        var stopMs = watch.Elapsed.TotalMilliseconds;
        Expect((await vcpus[^1].Completion).Kind == VcpuEndKind.Stopped, "the stopped vCPU did not end as Stopped");

        await boot.Vm.KillAsync(CancellationToken.None);
        var exited = (VmEvent.Exited)await boot.Events.WaitAsync(e => e is VmEvent.Exited, "Exited after kill");
        Expect(exited.Reason == "killed", $"Exited said '{exited.Reason}'");
        return Invariant($"{vcpus.Count} vCPUs (tids {string.Join(",", threads)}): pause {pauseMs:F2} ms, resume {resumeMs:F2} ms, stop {stopMs:F2} ms");
    }

    private static async Task<string> EndsAsync(KvmDriver driver, GuestImage image, Options options, string name, string? reason = null)
    {
        var vm = await driver.StartAsync(Spec(image, name, options), CancellationToken.None);
        var events = new VmEventRecorder(vm);
        var shutdown = (VmEvent.Shutdown)await events.WaitAsync(e => e is VmEvent.Shutdown, "a Shutdown event");
        Expect(shutdown.GuestInitiated, "the Shutdown is not guest-initiated");
        Expect(reason is null || shutdown.Reason == reason, $"Shutdown reason '{shutdown.Reason}', expected '{reason}'");
        var exited = (VmEvent.Exited)await events.WaitAsync(e => e is VmEvent.Exited, "Exited after the Shutdown");
        Expect(events.Last is VmEvent.Exited, "Exited is not the last event");
        return $"{shutdown.Reason}; exited: {exited.Reason}";
    }

    private static async Task<string> SequentialBootsAsync(KvmDriver driver, GuestImage image, Options options, Report report)
    {
        var boots = await Benchmark(driver, image, options).SequentialAsync(options.Boots, "harness", CancellationToken.None);
        foreach (var (name, value) in boots.Figures())
        {
            report.Figure(name, value);
        }

        return Invariant($"banner p50 {BootBenchmark.Percentile(boots.BannerMs, 50):F1} ms, p99 {BootBenchmark.Percentile(boots.BannerMs, 99):F1} ms");
    }

    private static async Task<string> BurstAsync(KvmDriver driver, GuestImage image, Options options, Report report)
    {
        var burst = await Benchmark(driver, image, options).BurstAsync(options.Burst, "harness-burst", CancellationToken.None);
        foreach (var (name, value) in burst.Figures())
        {
            report.Figure(name, value);
        }

        return Invariant($"all created in {burst.AllCreatedMs:F1} ms, all at their banner in {burst.AllReadyMs:F1} ms");
    }

    private static Task<BootSample> BootToBannerAsync(KvmDriver driver, GuestImage image, string name, Options options) =>
        Benchmark(driver, image, options).BootToBannerAsync(name, CancellationToken.None);

    private static BootBenchmark Benchmark(KvmDriver driver, GuestImage image, Options options) =>
        new(driver, image, options.Vcpus, options.MemoryMiB);

    private static VmLaunchSpec Spec(GuestImage image, string name, Options options) =>
        new(VmId.New(), name, options.Vcpus, options.MemoryMiB, image, new Epoch(1));

    private static GuestImage? FindImage(string? directory)
    {
        var candidates = directory is not null
            ? [directory]
            : new[] { Path.Combine(AppContext.BaseDirectory, "demo"), Path.Combine(Environment.CurrentDirectory, "demo") }
                .Concat(Ancestors(Environment.CurrentDirectory).Select(d => Path.Combine(d, "images", "out", "demo")));
        foreach (var candidate in candidates)
        {
            var kernel = Path.Combine(candidate, "vmlinuz");
            var initrd = Path.Combine(candidate, "initrd.img");
            if (File.Exists(kernel) && File.Exists(initrd))
            {
                return new GuestImage("demo", kernel, initrd, "demo guest");
            }
        }

        return null;
    }

    private static IEnumerable<string> Ancestors(string directory)
    {
        for (var dir = new DirectoryInfo(directory); dir is not null; dir = dir.Parent)
        {
            yield return dir.FullName;
        }
    }

    private static void Expect(bool condition, string failure)
    {
        if (!condition)
        {
            throw new HarnessCheckException(failure);
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private sealed class HarnessCheckException(string message) : Exception(message);

    private sealed class Report(Options options)
    {
        private readonly List<(string Name, bool Ok, string Detail)> _checks = [];
        private readonly List<(string Name, double Value)> _figures = [];

        public bool Failed => _checks.Any(c => !c.Ok);

        public KvmSpeedCheckResult? SpeedCheck { get; set; }

        public async Task CheckAsync(string name, Func<Task<string>> check)
        {
            try
            {
                var detail = await check();
                _checks.Add((name, true, detail));
                if (!options.Json)
                {
                    Console.WriteLine($"PASS  {name}: {detail}");
                }
            }
            catch (Exception ex)
            {
                var detail = ex is HarnessCheckException or HypervisorException or TimeoutException ? ex.Message : ex.ToString();
                _checks.Add((name, false, detail));
                if (!options.Json)
                {
                    Console.WriteLine($"FAIL  {name}: {detail}");
                }
            }
        }

        public void Add(string name, bool ok, string detail) => _checks.Add((name, ok, detail));

        public void Figure(string name, double value) => _figures.Add((name, value));

        public void Print(bool json)
        {
            if (json)
            {
                using var stream = Console.OpenStandardOutput();
                using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
                writer.WriteStartObject();
                writer.WriteString("engine", "kvm");
                writer.WriteString("host", Environment.MachineName);
                writer.WriteNumber("cores", Environment.ProcessorCount);
                writer.WriteString("kernel_append", KvmDriver.BaseAppend);
                writer.WriteNumber("boots", options.Boots);
                writer.WriteNumber("memory_mib", options.MemoryMiB);
                writer.WriteNumber("vcpus", options.Vcpus);
                writer.WriteStartArray("checks");
                foreach (var (name, ok, detail) in _checks)
                {
                    writer.WriteStartObject();
                    writer.WriteString("name", name);
                    writer.WriteBoolean("ok", ok);
                    writer.WriteString("detail", detail);
                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
                writer.WriteStartObject("figures");
                foreach (var (name, value) in _figures.Where(f => double.IsFinite(f.Value)))
                {
                    writer.WriteNumber(name, Math.Round(value, 2));
                }

                writer.WriteEndObject();
                if (SpeedCheck is { } speed)
                {
                    writer.WriteStartObject("speed_check");
                    writer.WriteString("verdict", speed.Outcome.ToString().ToLowerInvariant());
                    writer.WriteNumber("ms", Math.Round(speed.Elapsed.TotalMilliseconds, 3));
                    writer.WriteNumber("limit_ms", speed.Limit.TotalMilliseconds);
                    writer.WriteNumber("iterations", speed.Iterations);
                    writer.WriteNumber("iterations_done", speed.IterationsDone);
                    writer.WriteString("reason", speed.Reason);
                    writer.WriteEndObject();
                }

                writer.WriteEndObject();
                writer.Flush();
                stream.WriteByte((byte)'\n');
                return;
            }

            var text = new StringBuilder();
            text.AppendLine();
            text.AppendLine(Invariant($"figures ({options.Boots} boots, {options.Vcpus} vCPU, {options.MemoryMiB} MiB, {Environment.ProcessorCount} cores)"));
            foreach (var (name, value) in _figures)
            {
                text.AppendLine(Invariant($"  {name,-36} {value,12:F2}"));
            }

            if (SpeedCheck is { } check)
            {
                text.AppendLine(Invariant($"speed check: {check.Elapsed.TotalMilliseconds:F2} ms, {check.Describe()}"));
            }

            text.AppendLine(Failed ? "RESULT: FAIL" : "RESULT: PASS");
            Console.Write(text.ToString());
        }
    }

    private sealed record Options(
        string Command,
        int Boots,
        int Burst,
        int MemoryMiB,
        int Vcpus,
        string? ImageDirectory,
        bool Json,
        string? Append,
        bool MpTable,
        TimeSpan Timeout)
    {
        public const string Usage =
            "usage: kvm-harness selftest [--boots N] [--burst N] [--memory MiB] [--vcpus N] [--image DIR] [--output table|json]\n" +
            "       kvm-harness boot [--append \"...\"] [--vcpus N] [--memory MiB] [--no-mptable] [--image DIR] [--timeout S]\n" +
            "       kvm-harness preflight [--image DIR]   (no /dev/kvm needed)";

        public static Options Parse(string[] args)
        {
            if (args.Length == 0 || args[0] is not ("selftest" or "boot" or "preflight"))
            {
                throw new ArgumentException("a command is required: selftest, boot or preflight");
            }

            var options = new Options(args[0], 20, 4, 128, 1, null, false, null, true, TimeSpan.FromSeconds(30));
            for (var i = 1; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                int Number() => int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
                    ? n
                    : throw new ArgumentException($"{args[i]} needs a positive number");
                options = args[i] switch
                {
                    "--boots" => options with { Boots = Number() },
                    "--burst" => options with { Burst = Number() },
                    "--memory" => options with { MemoryMiB = Number() },
                    "--vcpus" => options with { Vcpus = Number() },
                    "--image" => options with { ImageDirectory = Value() },
                    "--output" => Value() switch
                    {
                        "json" => options with { Json = true },
                        "table" => options with { Json = false },
                        var other => throw new ArgumentException($"--output {other}: table or json"),
                    },
                    "--append" => options with { Append = Value() },
                    "--no-mptable" => options with { MpTable = false },
                    "--timeout" => options with { Timeout = TimeSpan.FromSeconds(Number()) },
                    var other => throw new ArgumentException($"unknown option {other}"),
                };
            }

            return options;
        }
    }
}
