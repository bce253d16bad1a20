using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.Cli;
using Orchestrator.Node;
using Orchestrator.Hypervisor;
using Orchestrator.Actors.Settings;
using Orchestrator.Hypervisor.Accel;
using Orchestrator.Hypervisor.Kvm;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Tools.Bench;

/// <summary>
/// `bench boot`: the demo image booted through one driver in this process, no actors and no scheduler in the way, so
/// that the figures are the driver's own (Firecracker publishes the same three: start → guest init, VMM memory per VM,
/// VMs created per second). The KVM harness runs the same <see cref="BootBenchmark"/> on machines without .NET.
/// </summary>
public static class BootBench
{
    private static readonly TimeSpan Probe = AccelProbeSettings.Default.Deadline;

    public static async Task<int> RunAsync(BootBenchOptions options, CancellationToken ct)
    {
        var imageDir = Path.Combine(NodeHost.ImageDirectory(), "demo");
        var image = new GuestImage("demo", Path.Combine(imageDir, "vmlinuz"), Path.Combine(imageDir, "initrd.img"), "demo guest");
        if (!File.Exists(image.KernelPath) || !File.Exists(image.InitrdPath))
        {
            Console.Error.WriteLine($"error: no demo image in {imageDir} (build it with images/build-demo-image.sh, or set ORCHESTRATOR_IMAGE_DIR)");
            return 2;
        }

        var runDirectory = Path.Combine(Path.GetTempPath(), $"orchestrator-bench-boot-{Environment.ProcessId}");
        var probeCache = Path.Combine(runDirectory, "accel-probe.json");
        // The driver and accelerator the node would choose, by the same probe: what opens is not what boots.
        var native = options.Driver is null or "kvm"
            ? await AcceleratorChoice.ForNativeAsync(image, Probe, Path.Combine(runDirectory, "probe"), probeCache, ct)
            : null;
        var driverName = options.Driver ?? (native is { IsHardware: true } ? "kvm" : "qemu");
        if (driverName == "kvm" && native is not { IsHardware: true })
        {
            Console.Error.WriteLine($"error: --driver kvm: the native engine's probe did not boot a guest: {native?.Reason}");
            Directory.Delete(runDirectory, recursive: true);
            return 2;
        }

        var accelerator = driverName == "qemu"
            ? await AcceleratorChoice.ForQemuAsync(AccelMode.Auto, new QemuProbeOptions("qemu-system-x86_64", image, Probe, SpeedCheck: QemuAcceleratorProbe.TimedLoop), probeCache, ct)
            : null;
        try
        {
            await using IHypervisor driver = driverName == "kvm"
                ? new KvmDriver(new KvmDriverOptions { RunDirectory = runDirectory })
                : new QemuDriver(new QemuDriverOptions { RunDirectory = runDirectory, Accelerator = accelerator! });
            var engine = accelerator is not null ? $"qemu ({accelerator.Accelerator}, cpu {accelerator.CpuModel})" : "kvm (native engine)";
            if (accelerator is { IsHardware: false })
            {
                Console.Error.WriteLine($"accelerator: {accelerator.Summary}");
            }

            Console.Error.WriteLine($"boot: {options.Boots} boots one at a time, then {options.Burst} at once; demo image, " +
                                    $"{options.Vcpus} vCPU, {options.MemoryMiB} MiB; driver {engine}");

            // The QEMU driver's fence guard kills VMs whose node stops beating (a host agent beats on a timer).
            using var heartbeat = new Timer(_ => driver.Heartbeat(), null, TimeSpan.Zero, TimeSpan.FromSeconds(1));
            var benchmark = new BootBenchmark(driver, image, options.Vcpus, options.MemoryMiB);
            try
            {
                // One boot first, not counted: it reads the image into the page cache and compiles the driver's code.
                var warm = await benchmark.SequentialAsync(1, "bench-warm", ct);
                Console.Error.WriteLine($"  warm-up boot: banner after {warm.BannerMs[0]:F0} ms (not counted)");
                var sequential = await benchmark.SequentialAsync(options.Boots, "bench", ct);
                var burst = await benchmark.BurstAsync(options.Burst, "bench-burst", ct);
                Print(options, engine, sequential, burst);
                return 0;
            }
            finally
            {
                if (driver is QemuDriver guarded)
                {
                    await guarded.StopGuardAsync(CancellationToken.None);
                }
            }
        }
        catch (Exception ex) when (ex is HypervisorException or TimeoutException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 1;
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

    private static void Print(BootBenchOptions options, string engine, SequentialBoots sequential, BurstBoots burst)
    {
        double P(IReadOnlyList<double> values, int percentile) => Math.Round(BootBenchmark.Percentile(values, percentile), 2);
        if (options.Output == OutputFormat.Json)
        {
            var json = new JsonObject
            {
                ["driver"] = engine,
                ["vcpus"] = options.Vcpus,
                ["memory_mib"] = options.MemoryMiB,
                ["boots"] = options.Boots,
            };
            foreach (var (name, value) in sequential.Figures().Concat(burst.Figures()))
            {
                json[name] = Math.Round(value, 2);
            }

            Console.WriteLine(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return;
        }

        var c = CultureInfo.InvariantCulture;
        Console.WriteLine($"driver {engine}, demo image, {options.Vcpus} vCPU, {options.MemoryMiB} MiB");
        Console.WriteLine(string.Format(c, "start → ready banner   p50 {0:N1} ms   p99 {1:N1} ms   ({2} boots, one at a time)",
            P(sequential.BannerMs, 50), P(sequential.BannerMs, 99), options.Boots));
        Console.WriteLine(string.Format(c, "start call             p50 {0:N1} ms   {1:N1} VMs created/s one at a time",
            P(sequential.StartCallMs, 50), sequential.VmsCreatedPerSecond));
        Console.WriteLine(string.Format(c, "VMM memory per VM      p50 {0:N1} MiB   (resident with the guest's pages: {1:N1} MiB)",
            P(sequential.VmmMiB, 50), P(sequential.ResidentMiB, 50)));
        Console.WriteLine(string.Format(c, "{0} at once              created in {1:N1} ms ({2:N1} VMs/s), all ready in {3:N1} ms ({4:N2} VMs/s), VMM {5:N1} MiB each",
            burst.Vms, burst.AllCreatedMs, burst.VmsCreatedPerSecond, burst.AllReadyMs, burst.VmsReadyPerSecond, burst.VmmMiBPerVm));
    }
}
