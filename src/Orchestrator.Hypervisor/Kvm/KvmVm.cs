// One VM of the native engine: its VM fd and guest memory, its devices, one runner thread per vCPU, and the event
// stream the VmActor subscribes to (the same events as the QEMU driver: ConsoleLine, Shutdown, Stopped/Resumed,
// Exited last). Named KvmVm because KvmVmHandle is the SafeHandle of the VM fd.
using Orchestrator.Domain;
using Orchestrator.Hypervisor.Kvm.Devices;

namespace Orchestrator.Hypervisor.Kvm;

/// <summary>How the guest starts.</summary>
internal abstract record KvmBoot;

/// <summary>A Linux bzImage and initramfs through the 64-bit boot protocol.</summary>
internal sealed record LinuxKvmBoot(string KernelPath, string InitrdPath, string CommandLine, bool MpTable) : KvmBoot;

/// <summary>Raw real-mode code at a load address, with no irqchip: HLT ends it (the engine's smoke test).</summary>
internal sealed record RealModeKvmBoot(byte[] Code, ulong LoadAddress) : KvmBoot;

internal sealed record KvmMachine(
    VmId VmId,
    Epoch Epoch,
    int Vcpus,
    ulong MemoryBytes,
    KvmBoot Boot,
    string ConsoleLogPath,
    TimeSpan HaltProbeInterval,
    TimeSpan StopTimeout);

public sealed class KvmVm : IVmHandle, IVcpuHost
{
    /// <summary>Outside guest RAM (at most 3 GiB) and below the IOAPIC: three pages VMX uses for real-mode emulation.</summary>
    internal const ulong TssAddress = 0xfffbd000;

    /// <summary>How many samples <see cref="ReportStallAsync(CancellationToken)"/> takes of each vCPU, and how far apart.</summary>
    public const int StallSamples = 3;

    public static readonly TimeSpan StallSampleInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>How long a vCPU has to answer a sample's kick before the report calls it stuck inside KVM_RUN.</summary>
    private static readonly TimeSpan StallAnswerBound = TimeSpan.FromSeconds(2);

    private const uint MsrIa32MiscEnable = 0x1a0;
    private const ulong MiscEnableFastString = 1;

    private readonly KvmMachine _machine;
    private readonly KvmVmHandle _vmFd;
    private readonly GuestMemory _memory;
    private readonly List<(KvmVcpuHandle Fd, MappedMemory Run)> _vcpuResources = [];
    private readonly List<KvmVcpuRunner> _runners = [];
    private readonly ConsoleSink _console;
    private readonly Action<KvmVm>? _onExited;
    private readonly VmEventChannel _events = new();
    private readonly TaskCompletionSource<string> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopProbe = new();
    private readonly object _endLock = new();
    private Task _probe = Task.CompletedTask;
    private Task<string>? _ending;

    private KvmVm(KvmMachine machine, KvmVmHandle vmFd, GuestMemory memory, Stream consoleLog, Action<KvmVm>? onExited)
    {
        _machine = machine;
        _vmFd = vmFd;
        _memory = memory;
        _onExited = onExited;
        _console = new ConsoleSink(consoleLog, line => _events.Publish(new VmEvent.ConsoleLine(line)));
    }

    public VmId VmId => _machine.VmId;

    public Epoch Epoch => _machine.Epoch;

    /// <summary>The VMM is this process: vCPU threads are its tasks (/proc/&lt;pid&gt;/task/&lt;tid&gt;).</summary>
    public int Pid => Environment.ProcessId;

    public string ConsoleLogPath => _machine.ConsoleLogPath;

    public IReadOnlyList<IVcpuHandle> Vcpus => _runners;

    /// <summary>Guest RAM, for the harness's figures (resident guest pages vs the VMM's own).</summary>
    public GuestMemory Memory => _memory;

    /// <summary>Completes with the exit reason once everything is released, just before the Exited event is queued.</summary>
    internal Task<string> Exited => _exited.Task;

    /// <summary>
    /// Builds and starts a VM (blocking: ioctls and loading the kernel; callers run it off their dispatcher). On failure
    /// nothing is left behind.
    /// </summary>
    internal static KvmVm Start(KvmSystem kvm, KvmMachine machine, Action<KvmVm>? onExited)
    {
        KvmVmHandle? vmFd = null;
        GuestMemory? memory = null;
        FileStream? log = null;
        KvmVm? vm = null;
        try
        {
            var linux = machine.Boot as LinuxKvmBoot;
            vmFd = kvm.Handle.CreateVm();
            vmFd.SetTssAddress(TssAddress);
            if (linux is not null)
            {
                vmFd.CreateIrqchip();
                vmFd.CreatePit2();
            }

            memory = new GuestMemory(machine.MemoryBytes);
            vmFd.SetUserMemoryRegion(slot: 0, guestPhysicalAddress: 0, memory.Region);

            LinuxBootLayout? layout = null;
            switch (machine.Boot)
            {
                case LinuxKvmBoot boot:
                    layout = LinuxBoot.Load(memory, BzImage.Read(boot.KernelPath), boot.KernelPath, boot.InitrdPath, boot.CommandLine);
                    LongMode.WriteTables(memory);
                    if (boot.MpTable)
                    {
                        memory.Write(MpTable.Address, MpTable.Build(machine.Vcpus));
                    }

                    break;
                case RealModeKvmBoot boot:
                    memory.Write(boot.LoadAddress, boot.Code);
                    break;
            }

            // Owner-only, as the QEMU driver's run files: a tenant's console output.
            log = new FileStream(machine.ConsoleLogPath, new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                Share = FileShare.Read | FileShare.Delete,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            vm = new KvmVm(machine, vmFd, memory, log, onExited);
            log = null; // the console sink owns it now

            var bus = vm.BuildDevices(irqchip: linux is not null);
            for (var index = 0; index < machine.Vcpus; index++)
            {
                vm.AddVcpu(kvm, index, bus, linux is not null, layout, machine.Boot);
            }

            foreach (var runner in vm._runners)
            {
                runner.Start();
            }

            if (!Task.WhenAll(vm._runners.Select(r => r.Started)).Wait(TimeSpan.FromSeconds(10)))
            {
                throw new HypervisorException($"VM {machine.VmId}: vCPU threads did not start within 10 s");
            }

            // A vCPU that KVM refused at once fails the start; one the guest already ended (the probe guest) does not.
            if (vm._runners.Select(r => r.Completion).FirstOrDefault(c => c.IsCompleted && c.Result.Kind == VcpuEndKind.Failed) is { } failed)
            {
                throw new HypervisorException($"VM {machine.VmId}: {failed.Result.Reason}");
            }

            if (linux is not null && machine.HaltProbeInterval > TimeSpan.Zero)
            {
                vm._probe = Task.Run(() => vm.ProbeHaltsAsync(vm._stopProbe.Token));
            }

            return vm;
        }
        catch
        {
            log?.Dispose();
            if (vm is not null)
            {
                // Releases everything it owns (vCPUs, VM fd, memory) and reports Exited to nobody.
                vm.EndAsync("failed to start", null).GetAwaiter().GetResult();
            }
            else
            {
                vmFd?.Dispose();
                memory?.Dispose();
            }

            throw;
        }
    }

    /// <summary>
    /// Until someone subscribes, events wait, even when the VM has ended by then (a guest that fails at once): the
    /// subscriber still gets them all, Exited last, as it would from QEMU's console log and QMP.
    /// </summary>
    public void Subscribe(Action<VmEvent> onEvent) => _events.Subscribe(onEvent);

    public Task<IReadOnlyList<VcpuInfo>> QueryVcpusAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<VcpuInfo>>(_runners.Select(r => new VcpuInfo(r.Index, r.ThreadId)).ToList());

    /// <summary>
    /// Why the guest is not getting anywhere (call it when a boot misses its deadline): <see cref="StallSamples"/>
    /// samples of every vCPU, <see cref="StallSampleInterval"/> apart, classified by <see cref="KvmStallReport.Classify"/>.
    /// Takes about (samples - 1) x interval; the VM runs on (a paused vCPU stays paused) and no event is emitted.
    /// Never faults for the guest's sake (an ended or stuck vCPU is part of the report); only cancellation ends it early.
    /// </summary>
    public Task<KvmStallReport> ReportStallAsync(CancellationToken cancellationToken) =>
        ReportStallAsync(StallSamples, StallSampleInterval, cancellationToken);

    /// <inheritdoc cref="ReportStallAsync(CancellationToken)"/>
    public async Task<KvmStallReport> ReportStallAsync(int samples, TimeSpan interval, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(samples, 1);
        // Each sample is a request on the vCPU's own thread, served like Pause (a kick out of KVM_RUN, then the
        // thread reads KVM_GET_REGS/KVM_GET_SREGS itself), rather than a PauseAsync/ResumeAsync of the VM: that pair
        // would send Stopped and Resumed to the VM's actor, and resume a VM its owner had paused.
        var rounds = new List<IReadOnlyList<KvmVcpuSample>>(samples);
        for (var round = 0; round < samples; round++)
        {
            if (round > 0)
            {
                await Task.Delay(interval, cancellationToken);
            }

            rounds.Add(await Task.WhenAll(_runners.Select(r => r.SampleAsync(StallAnswerBound, cancellationToken))));
        }

        return KvmStallReport.Classify(rounds);
    }

    /// <summary>Pauses every vCPU (each acknowledges), then reports Stopped.</summary>
    public async Task PauseAsync(CancellationToken cancellationToken)
    {
        await Task.WhenAll(_runners.Select(r => r.PauseAsync(cancellationToken)));
        _events.Publish(new VmEvent.Stopped());
    }

    public async Task ResumeAsync(CancellationToken cancellationToken)
    {
        await Task.WhenAll(_runners.Select(r => r.ResumeAsync(cancellationToken)));
        _events.Publish(new VmEvent.Resumed());
    }

    /// <summary>
    /// This engine has no ACPI, so there is no power button to press: the VM is stopped at once (a host-initiated
    /// Shutdown, then Exited). The demo guest keeps nothing on disk, so nothing is lost that a graceful stop would keep.
    /// </summary>
    public async Task<ShutdownRoute> RequestShutdownAsync(CancellationToken cancellationToken)
    {
        await EndAsync("shut down by the host (no ACPI in the KVM engine: stopped at once)", new VmEvent.Shutdown(false, "host-request"))
            .WaitAsync(cancellationToken);
        return ShutdownRoute.StoppedByHost;
    }

    public Task KillAsync(CancellationToken cancellationToken) => EndAsync("killed", null).WaitAsync(cancellationToken);

    /// <summary>
    /// Ends the VM: an in-process VM cannot be detached and left running (nobody could adopt it), so letting go of the
    /// handle kills it.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await EndAsync("killed (its handle was disposed)", null);
        await _events.Delivery;
    }

    private PortIoBus BuildDevices(bool irqchip)
    {
        var serial = new Serial8250(IrqLine(irqchip, Serial8250.Com1Irq), _console.Write);
        var keyboard = new I8042(
            IrqLine(irqchip, I8042.KeyboardIrq),
            () => _ = EndAsync($"guest shut down ({GuestEndReasons.Reset}, via the i8042)", new VmEvent.Shutdown(true, GuestEndReasons.Reset)));
        return new PortIoBus()
            .Register(Serial8250.Com1Base, Serial8250.PortCount, serial)
            .Register(I8042.DataPort, 1, keyboard)
            .Register(I8042.CommandPort, 1, keyboard)
            .Register(CmosRtc.IndexPort, 2, new CmosRtc());
    }

    private IInterruptLine IrqLine(bool irqchip, uint irq) => irqchip ? new KvmIrqLine(_vmFd, irq) : NoIrqLine.Instance;

    private void AddVcpu(KvmSystem kvm, int index, PortIoBus bus, bool irqchip, LinuxBootLayout? layout, KvmBoot boot)
    {
        var fd = _vmFd.CreateVcpu(index);
        MappedMemory run;
        try
        {
            run = fd.MapRunRegion(kvm.VcpuMmapSize);
        }
        catch
        {
            fd.Dispose();
            throw;
        }

        _vcpuResources.Add((fd, run));

        if (irqchip)
        {
            fd.SetCpuid(Cpuid.ForVcpu(kvm.SupportedCpuid, index, _machine.Vcpus));
            try
            {
                fd.SetMsrs([new KvmMsrEntry { index = MsrIa32MiscEnable, data = MiscEnableFastString }]);
            }
            catch (HypervisorException)
            {
                // Fast strings only make the guest's memcpy faster; a host that refuses the MSR still boots it.
            }

            // LINT0 takes the PIC's interrupts (ExtINT) and LINT1 NMIs, as a BIOS leaves them (and Firecracker does).
            var lapic = fd.GetLapic();
            SetDeliveryMode(ref lapic, KvmLapicState.APIC_LVT0, deliveryMode: 7);
            SetDeliveryMode(ref lapic, KvmLapicState.APIC_LVT1, deliveryMode: 4);
            fd.SetLapic(lapic);
        }

        switch (boot)
        {
            case LinuxKvmBoot when index == 0:
                // Only the boot processor starts at the kernel; the others wait for the guest's INIT/SIPI.
                fd.SetSregs(LongMode.Sregs(fd.GetSregs()));
                fd.SetRegs(LongMode.Regs(layout!.EntryPoint, layout.BootParamsAddress));
                fd.SetFpu(LongMode.Fpu());
                break;
            case RealModeKvmBoot realMode:
                var sregs = fd.GetSregs();
                sregs.cs.@base = 0;
                sregs.cs.selector = 0;
                fd.SetSregs(sregs);
                fd.SetRegs(new KvmRegs { rip = realMode.LoadAddress, rflags = 0x2 });
                break;
        }

        _runners.Add(new KvmVcpuRunner(index, new KvmVcpuBackend(fd, run, bus), onEnded: OnVcpuEnded));
    }

    private static unsafe void SetDeliveryMode(ref KvmLapicState lapic, int register, uint deliveryMode)
    {
        // Safe: register is one of the LVT offsets, 4-byte aligned and inside the 1 KiB register page.
        fixed (byte* regs = lapic.regs)
        {
            var value = (uint*)(regs + register);
            *value = (*value & ~0x700u) | (deliveryMode << 8);
        }
    }

    private void OnVcpuEnded(KvmVcpuRunner runner, VcpuEnd end)
    {
        switch (end.Kind)
        {
            case VcpuEndKind.Guest:
                _ = EndAsync($"guest shut down ({end.Reason})", new VmEvent.Shutdown(true, end.Reason));
                break;
            case VcpuEndKind.Failed:
                _ = EndAsync($"vCPU {runner.Index} failed: {end.Reason}", null);
                break;
        }
    }

    /// <summary>
    /// Power-off detection. Without ACPI a guest's `poweroff` ends in Linux's halt loop: every CPU in HLT with
    /// interrupts off, forever (the in-kernel irqchip keeps that HLT inside KVM, so no exit reports it). The vCPUs are
    /// asked, outside KVM_RUN, for their mp_state and RFLAGS.IF; two probes in a row with the boot vCPU halted for good
    /// and every other one halted or never started end the VM as a guest shutdown.
    /// </summary>
    private async Task ProbeHaltsAsync(CancellationToken cancellationToken)
    {
        var strikes = 0;
        try
        {
            while (true)
            {
                await Task.Delay(_machine.HaltProbeInterval, cancellationToken);
                strikes = await AllHaltedAsync(cancellationToken) ? strikes + 1 : 0;
                if (strikes >= 2)
                {
                    _ = EndAsync(
                        $"guest shut down ({GuestEndReasons.Shutdown}: halted with interrupts off)",
                        new VmEvent.Shutdown(true, GuestEndReasons.Shutdown));
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The VM is ending.
        }
    }

    /// <summary>The boot vCPU halted for good, and every other vCPU still running halted for good or never started.</summary>
    private async Task<bool> AllHaltedAsync(CancellationToken cancellationToken)
    {
        // A vCPU stopped on its own (IVcpuHandle.StopAsync) runs no guest code: it cannot wake the others.
        var live = _runners.Where(r => r.State is not (VcpuState.Stopped or VcpuState.Failed)).ToList();
        if (live.Count == 0 || live[0].Index != 0)
        {
            return false;
        }

        try
        {
            var statuses = await Task.WhenAll(live.Select(r => r.ProbeHaltAsync(cancellationToken)));
            return statuses[0].HaltedForGood && statuses.All(s => s.HaltedForGood || s.NeverStarted);
        }
        catch (HypervisorException)
        {
            return false; // a vCPU ended between the check and the probe: ask again next time
        }
    }

    private Task<string> EndAsync(string reason, VmEvent.Shutdown? shutdown)
    {
        lock (_endLock)
        {
            return _ending ??= Task.Run(() => TeardownAsync(reason, shutdown));
        }
    }

    private async Task<string> TeardownAsync(string reason, VmEvent.Shutdown? shutdown)
    {
        if (shutdown is not null)
        {
            _events.Publish(shutdown);
        }

        try
        {
            reason = await ReleaseAsync(reason);
        }
        finally
        {
            // Whatever went wrong above, the VM is over. The driver forgets it before the Exited event goes out (last and
            // once), so that a restart the event brings about finds the id free; Exited (the task) completes before the
            // driver is told, so that a Launch still recording the VM sees it ended (KvmDriver.Launch).
            _console.Dispose(); // never throws: a log that fails is dropped (ConsoleSink.Log)
            _exited.TrySetResult(reason);
            _onExited?.Invoke(this);
            _events.End(reason);
        }

        return reason;
    }

    /// <summary>Stops the vCPUs and frees the VM's fds and memory once none of them can touch them any more.</summary>
    private async Task<string> ReleaseAsync(string reason)
    {
        await _stopProbe.CancelAsync();
        foreach (var runner in _runners)
        {
            runner.AbandonIfNotStarted();
            try
            {
                _ = runner.StopAsync(CancellationToken.None);
            }
            catch (HypervisorException)
            {
                // The kick could not be sent (no signal handler, the thread gone): the wait below bounds it.
            }
        }

        var stopped = Task.WhenAll(_runners.Select(r => r.Completion));
        var allStopped = await Task.WhenAny(stopped, Task.Delay(_machine.StopTimeout)) == stopped;
        await _probe;

        if (allStopped)
        {
            // vCPU fds and their kvm_run pages, then the VM fd (the kernel frees the VM), then the memory it used.
            foreach (var (fd, run) in _vcpuResources)
            {
                run.Dispose();
                fd.Dispose();
            }

            _vmFd.Dispose();
            _memory.Dispose();
        }
        else
        {
            // A vCPU thread stuck inside KVM_RUN still uses the VM: unmapping its memory now could fault the host.
            reason += $" (a vCPU thread did not stop within {_machine.StopTimeout.TotalSeconds:F0} s; its resources are left allocated)";
        }

        return reason;
    }

    private sealed class KvmIrqLine(KvmVmHandle vm, uint irq) : IInterruptLine
    {
        public void Pulse()
        {
            try
            {
                vm.IrqLine(irq, true);
                vm.IrqLine(irq, false);
            }
            catch (ObjectDisposedException)
            {
                // The VM is being torn down under a device access: the interrupt has nowhere to go.
            }
        }
    }

    private sealed class NoIrqLine : IInterruptLine
    {
        public static readonly NoIrqLine Instance = new();

        public void Pulse()
        {
        }
    }
}
