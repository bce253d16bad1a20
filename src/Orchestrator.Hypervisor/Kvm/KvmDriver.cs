// The native KVM engine as an IHypervisor: each VM lives inside the node process (VM fd, guest memory, one thread per
// vCPU), the way Firecracker or kvmtool run one, with the events and errors of the QEMU driver so nothing above the
// driver knows which one a host runs.
using System.Collections.Concurrent;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Kvm;

public sealed class KvmDriver : IHypervisor
{
    /// <summary>
    /// The serial console and Linux's reset path (reboot=k pulses the i8042), plus what this machine lacks: no PCI bus
    /// (pci=off skips probing it), an i8042 with a keyboard port only and no PnP/ACPI to describe it (the same i8042.*
    /// set Firecracker passes, so the driver neither probes a mouse nor talks to the absent keyboard), one UART.
    /// </summary>
    public const string BaseAppend =
        "console=ttyS0 quiet panic=-1 reboot=k pci=off i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd 8250.nr_uarts=1";

    /// <summary>The MP table holds 40 processors in the EBDA; 32 keeps a margin and matches Firecracker.</summary>
    public const int MaxVcpus = 32;

    public const int MinMemoryMiB = 32;

    /// <summary>Guest RAM is one slot from 0; the 32-bit hole (IOAPIC, local APIC, the TSS pages) starts above 3 GiB.</summary>
    public const int MaxMemoryMiB = 3072;

    private readonly KvmDriverOptions _options;
    private readonly string _vmsDirectory;
    /// <summary>Running VMs by id; null while one is being built (which reserves its id).</summary>
    private readonly ConcurrentDictionary<VmId, KvmVm?> _vms = new();
    private readonly object _kvmLock = new();
    private KvmSystem? _kvm;

    public KvmDriver(KvmDriverOptions options)
    {
        _options = options;
        _vmsDirectory = Path.Combine(Path.GetFullPath(options.RunDirectory), "vms");
    }

    public string Name => "kvm";

    /// <summary>The engine runs only where its probe booted a guest (the node checks before it builds the driver).</summary>
    public HostAccelerator Acceleration { get; } = new(HostAccelerator.Kvm, "host");

    /// <summary>Whether /dev/kvm opens read-write and speaks API 12 with what this engine needs; if not, why.</summary>
    public static bool IsAvailable(out string reason) => KvmSystem.IsAvailable(out reason);

    public Task<IVmHandle> StartAsync(VmLaunchSpec spec, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (spec.Vcpus is < 1 or > MaxVcpus)
        {
            throw new HypervisorException($"VM {spec.VmId}: {spec.Vcpus} vCPUs is outside 1..{MaxVcpus} for the kvm driver");
        }

        if (spec.MemoryMiB is < MinMemoryMiB or > MaxMemoryMiB)
        {
            throw new HypervisorException($"VM {spec.VmId}: {spec.MemoryMiB} MiB is outside {MinMemoryMiB}..{MaxMemoryMiB} MiB for the kvm driver");
        }

        GuestImageFiles.CheckReadable(spec.Image);

        // Building a VM blocks (ioctls, reading the kernel): off the caller's thread.
        return Task.Run<IVmHandle>(() => Start(spec), cancellationToken);
    }

    /// <summary>Starts the real-mode smoke-test guest (prints <see cref="RealModeGuest.Output"/>, then halts and ends).</summary>
    public Task<IVmHandle> StartProbeGuestAsync(CancellationToken cancellationToken)
    {
        var vmId = VmId.New();
        _vms[vmId] = null;
        return Task.Run<IVmHandle>(
            () =>
            {
                try
                {
                    return Launch(vmId, Epoch.Zero, vcpus: 1, memoryBytes: 1 << 20,
                        new RealModeKvmBoot(RealModeGuest.Code.ToArray(), RealModeGuest.LoadAddress));
                }
                catch
                {
                    Cleanup(vmId);
                    throw;
                }
            },
            CancellationToken.None);
    }

    /// <summary>In-process VMs do not outlive the node: after a restart there is never anything to find.</summary>
    public Task<IReadOnlyList<DiscoveredVm>> DiscoverAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<DiscoveredVm>>([]);

    public Task<IVmHandle> AdoptAsync(DiscoveredVm vm, CancellationToken cancellationToken) =>
        throw new HypervisorException($"VM {vm.VmId}: the kvm driver runs VMs inside the node process; there is nothing to adopt");

    public async Task KillAsync(DiscoveredVm vm, CancellationToken cancellationToken)
    {
        if (_vms.TryGetValue(vm.VmId, out var running) && running is not null)
        {
            await running.KillAsync(cancellationToken);
        }

        Cleanup(vm.VmId);
    }

    public void Cleanup(VmId vmId)
    {
        _vms.TryRemove(vmId, out _);
        try
        {
            Directory.Delete(Path.Combine(_vmsDirectory, vmId.Compact), recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Best effort: a leftover directory is replaced at the next start of that VM.
        }
    }

    /// <summary>Nothing to do: the VMs are threads of this process, so they die with it; fencing a live but partitioned
    /// node still goes through the host agent killing its VMs.</summary>
    public void Heartbeat()
    {
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var vm in _vms.Values)
        {
            if (vm is not null)
            {
                await vm.DisposeAsync();
            }
        }

        _vms.Clear();
        lock (_kvmLock)
        {
            _kvm?.Dispose();
            _kvm = null;
        }
    }

    /// <summary>The kernel command line for a VM: the base, the demo guest's CPU burner when asked, the operator's extra.</summary>
    internal static string CommandLine(VmLaunchSpec spec, KvmDriverOptions options)
    {
        var append = BaseAppend;
        if (spec.BurnCpu)
        {
            append += " orchestrator.burn=1";
        }

        if (!string.IsNullOrWhiteSpace(options.ExtraKernelAppend))
        {
            append += " " + options.ExtraKernelAppend.Trim();
        }

        return append;
    }

    private KvmVm Start(VmLaunchSpec spec)
    {
        if (!_vms.TryAdd(spec.VmId, null))
        {
            throw new HypervisorException($"VM {spec.VmId} already runs on this host");
        }

        var directory = Path.Combine(_vmsDirectory, spec.VmId.Compact);
        var initrd = Path.Combine(directory, "initrd.img");
        try
        {
            PrepareDirectory(directory);
            // The tenant's VM name reaches the guest inside its initramfs, never on the command line.
            GuestInitrd.Write(spec.Image.InitrdPath, initrd, spec.Name);
            var boot = new LinuxKvmBoot(spec.Image.KernelPath, initrd, CommandLine(spec, _options), _options.MpTable);
            return Launch(spec.VmId, spec.Epoch, spec.Vcpus, (ulong)spec.MemoryMiB << 20, boot);
        }
        catch (Exception ex)
        {
            Cleanup(spec.VmId);
            throw ex switch
            {
                HypervisorException => ex,
                IOException io when io.HResult == 28 || io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase) =>
                    new HypervisorException($"VM {spec.VmId}: no space left in {_vmsDirectory} to prepare its files", ex),
                _ => new HypervisorException($"VM {spec.VmId} could not start: {ex.Message}", ex),
            };
        }
        finally
        {
            // Loaded into guest memory by now (or never needed): the copy on disk has no further use.
            TryDelete(initrd);
        }
    }

    /// <summary>Builds and starts a VM whose id the caller has reserved in <see cref="_vms"/>.</summary>
    private KvmVm Launch(VmId vmId, Epoch epoch, int vcpus, ulong memoryBytes, KvmBoot boot)
    {
        var kvm = OpenKvm();
        if (vcpus > kvm.MaxVcpus)
        {
            throw new HypervisorException($"VM {vmId}: {vcpus} vCPUs is more than this host's KVM allows ({kvm.MaxVcpus})");
        }

        var directory = Path.Combine(_vmsDirectory, vmId.Compact);
        PrepareDirectory(directory);
        var machine = new KvmMachine(
            vmId, epoch, vcpus, memoryBytes, boot, Path.Combine(directory, "console.log"), _options.HaltProbeInterval, _options.StopTimeout);
        var vm = KvmVm.Start(kvm, machine, Forget);
        _vms[vmId] = vm;
        if (vm.Exited.IsCompleted)
        {
            Forget(vm); // it ended before it was recorded (the probe guest can)
        }

        return vm;
    }

    /// <summary>/dev/kvm, opened on first use; a failure is not remembered (the operator may fix permissions meanwhile).</summary>
    private KvmSystem OpenKvm()
    {
        lock (_kvmLock)
        {
            return _kvm ??= KvmSystem.Open();
        }
    }

    private void Forget(KvmVm vm) => _vms.TryRemove(new KeyValuePair<VmId, KvmVm?>(vm.VmId, vm));

    private void PrepareDirectory(string directory)
    {
        // Consoles of every tenant's VMs live here: owner only.
        const UnixFileMode ownerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Directory.CreateDirectory(_vmsDirectory, ownerOnly);
        Directory.CreateDirectory(directory, ownerOnly);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
