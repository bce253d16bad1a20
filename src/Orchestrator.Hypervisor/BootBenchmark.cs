// Boots a guest image through any driver and measures what Firecracker publishes for its own: start -> guest ready
// (the demo image's serial banner), the VMM's own memory per VM, and VMs created per second. `orchestrator bench boot`
// and the KVM harness both run it.
using System.Diagnostics;
using Orchestrator.Domain;
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor;

/// <summary>One boot: the VM, its events, how long the driver's start call took and when the banner came.</summary>
public sealed record BootSample(IVmHandle Vm, VmEventRecorder Events, double StartCallMs, double BannerMs);

/// <summary>Sequential boots, one VM at a time: each list has one entry per boot.</summary>
/// <param name="VmmMiB">the VMM's own resident memory at the banner: the process (or, in process, its growth) less the guest's RAM.</param>
/// <param name="ResidentMiB">all resident memory the VM added at the banner, guest RAM included.</param>
public sealed record SequentialBoots(IReadOnlyList<double> BannerMs, IReadOnlyList<double> StartCallMs, IReadOnlyList<double> VmmMiB,
    IReadOnlyList<double> ResidentMiB)
{
    public double VmsCreatedPerSecond => 1000.0 / StartCallMs.Average();

    /// <summary>The figures by the names `bench boot -o json` and the KVM harness print them under.</summary>
    public IEnumerable<(string Name, double Value)> Figures()
    {
        yield return ("start_to_banner_ms_p50", BootBenchmark.Percentile(BannerMs, 50));
        yield return ("start_to_banner_ms_p99", BootBenchmark.Percentile(BannerMs, 99));
        yield return ("start_call_ms_p50", BootBenchmark.Percentile(StartCallMs, 50));
        yield return ("vms_created_per_s_sequential", VmsCreatedPerSecond);
        yield return ("vmm_memory_per_vm_mib_p50", BootBenchmark.Percentile(VmmMiB, 50));
        yield return ("resident_per_vm_mib_p50", BootBenchmark.Percentile(ResidentMiB, 50));
    }
}

/// <summary><see cref="Vms"/> VMs started at once: when the last start call returned, when the last banner came.</summary>
public sealed record BurstBoots(int Vms, double AllCreatedMs, double AllReadyMs, double VmmMiBPerVm, double ResidentMiBPerVm)
{
    public double VmsCreatedPerSecond => Vms / (AllCreatedMs / 1000.0);
    public double VmsReadyPerSecond => Vms / (AllReadyMs / 1000.0);

    /// <summary>The figures by the names `bench boot -o json` and the KVM harness print them under.</summary>
    public IEnumerable<(string Name, double Value)> Figures()
    {
        yield return ("burst_vms", Vms);
        yield return ("burst_vms_created_per_s", VmsCreatedPerSecond);
        yield return ("burst_vms_created_per_s_per_core", VmsCreatedPerSecond / Environment.ProcessorCount);
        yield return ("burst_vms_ready_per_s", VmsReadyPerSecond);
        yield return ("burst_vmm_memory_per_vm_mib", VmmMiBPerVm);
        yield return ("burst_resident_per_vm_mib", ResidentMiBPerVm);
    }
}

public sealed class BootBenchmark(IHypervisor driver, GuestImage image, int vcpus, int memoryMiB)
{
    /// <summary>What the demo image's init prints once it runs, followed by the VM's name.</summary>
    public const string Banner = Orchestrator.Domain.Vms.GuestConsole.ReadyBanner;

    private long GuestBytes => memoryMiB * 1024L * 1024;

    /// <summary>Starts one VM and waits for its banner (at most <see cref="VmEventRecorder.Bound"/>).</summary>
    public async Task<BootSample> BootToBannerAsync(string name, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var vm = await driver.StartAsync(new VmLaunchSpec(VmId.New(), name, vcpus, memoryMiB, image, new Epoch(1)), cancellationToken);
        var startCallMs = watch.Elapsed.TotalMilliseconds;
        var events = new VmEventRecorder(vm);
        try
        {
            await events.WaitAsync(e => e is VmEvent.ConsoleLine { Text: var text } && text == $"{Banner} {name}", $"the banner '{Banner} {name}'");
        }
        catch (TimeoutException timeout) when (vm is KvmVm native)
        {
            // Say why before the VM goes: a crawling accelerator, a hung guest and an exit storm all miss the banner.
            var stall = await KvmStallReport.DescribeAsync(native);
            await vm.KillAsync(CancellationToken.None);
            throw new TimeoutException($"{timeout.Message}\n    KVM stall report: {stall}", timeout);
        }
        catch
        {
            await vm.KillAsync(CancellationToken.None);
            throw;
        }

        return new BootSample(vm, events, startCallMs, watch.Elapsed.TotalMilliseconds);
    }

    public async Task<SequentialBoots> SequentialAsync(int boots, string namePrefix, CancellationToken cancellationToken)
    {
        var banner = new List<double>();
        var startCalls = new List<double>();
        var vmm = new List<double>();
        var resident = new List<double>();
        for (var i = 0; i < boots; i++)
        {
            var before = OwnResidentBytes();
            var boot = await BootToBannerAsync($"{namePrefix}-{i}", cancellationToken);
            try
            {
                var (vmmBytes, residentBytes) = Measure(boot.Vm, before);
                banner.Add(boot.BannerMs);
                startCalls.Add(boot.StartCallMs);
                vmm.Add(vmmBytes / 1048576.0);
                resident.Add(residentBytes / 1048576.0);
            }
            finally
            {
                await boot.Vm.KillAsync(CancellationToken.None);
                driver.Cleanup(boot.Vm.VmId);
            }
        }

        return new SequentialBoots(banner, startCalls, vmm, resident);
    }

    public async Task<BurstBoots> BurstAsync(int vms, string namePrefix, CancellationToken cancellationToken)
    {
        var before = OwnResidentBytes();
        var watch = Stopwatch.StartNew();
        var starts = Enumerable.Range(0, vms).Select(i => BootToBannerAsync($"{namePrefix}-{i}", cancellationToken)).ToList();
        try
        {
            var boots = await Task.WhenAll(starts);
            var allReadyMs = watch.Elapsed.TotalMilliseconds;
            var inProcess = boots.Any(b => b.Vm.Pid == Environment.ProcessId);
            double vmmBytes = 0;
            double residentBytes = 0;
            if (inProcess)
            {
                residentBytes = OwnResidentBytes() - before;
                vmmBytes = residentBytes - boots.Sum(b => (double)GuestResidentBytes(b.Vm));
            }
            else
            {
                foreach (var boot in boots)
                {
                    var (vmm, resident) = Measure(boot.Vm, before);
                    vmmBytes += vmm;
                    residentBytes += resident;
                }
            }

            return new BurstBoots(vms, boots.Max(b => b.StartCallMs), allReadyMs, vmmBytes / 1048576.0 / vms, residentBytes / 1048576.0 / vms);
        }
        finally
        {
            foreach (var start in starts.Where(s => s.IsCompletedSuccessfully))
            {
                await start.Result.Vm.KillAsync(CancellationToken.None);
                driver.Cleanup(start.Result.Vm.VmId);
            }
        }
    }

    public static double Percentile(IReadOnlyList<double> values, int percentile)
    {
        var sorted = values.Order().ToArray();
        var rank = (int)Math.Ceiling(percentile / 100.0 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    /// <summary>
    /// (VMM bytes, all resident bytes) of one VM. A VM in its own process (QEMU): that process's RSS, less its guest RAM
    /// mapping's. A VM in this process (the KVM engine): what this process grew by since <paramref name="ownBefore"/>,
    /// less the guest memory's resident pages.
    /// </summary>
    private (double Vmm, double Resident) Measure(IVmHandle vm, long ownBefore)
    {
        var guest = GuestResidentBytes(vm);
        var resident = vm.Pid == Environment.ProcessId
            ? OwnResidentBytes() - ownBefore
            : ProcStat.ReadResidentBytes(vm.Pid) ?? 0;
        return (resident - guest, resident);
    }

    private long GuestResidentBytes(IVmHandle vm) => vm is KvmVm native
        ? (long)native.Memory.ResidentBytes()
        : ProcStat.ReadMappingResidentBytes(vm.Pid, GuestBytes) ?? 0;

    private static long OwnResidentBytes()
    {
        // Garbage from earlier boots would otherwise count against this one.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return ProcStat.ReadResidentBytes(Environment.ProcessId) ?? 0;
    }
}

/// <summary>Collects a VM's events; waits for one with a bound and a message naming what never came.</summary>
public sealed class VmEventRecorder
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private readonly List<VmEvent> _events = [];
    private readonly SemaphoreSlim _changed = new(0);

    public VmEventRecorder(IVmHandle vm) => vm.Subscribe(e =>
    {
        lock (_events)
        {
            _events.Add(e);
        }

        _changed.Release();
    });

    public VmEvent? Last
    {
        get
        {
            lock (_events)
            {
                return _events.Count == 0 ? null : _events[^1];
            }
        }
    }

    /// <exception cref="TimeoutException">no such event within <see cref="Bound"/>; the message lists the last events.</exception>
    public async Task<VmEvent> WaitAsync(Func<VmEvent, bool> match, string what)
    {
        using var bound = new CancellationTokenSource(Bound);
        while (true)
        {
            lock (_events)
            {
                if (_events.FirstOrDefault(match) is { } found)
                {
                    return found;
                }
            }

            try
            {
                await _changed.WaitAsync(bound.Token);
            }
            catch (OperationCanceledException)
            {
                string tail;
                lock (_events)
                {
                    tail = string.Join("\n    ", _events.TakeLast(30));
                }

                throw new TimeoutException($"{what} never came within {Bound.TotalSeconds:F0} s. Last events:\n    {tail}");
            }
        }
    }
}
