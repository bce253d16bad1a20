// KVM_RUN on a real vCPU fd and the handling of what it returns: port I/O goes to the device bus, MMIO (nothing is
// mapped there) reads as all ones, and the exits that end the guest or the vCPU become outcomes for the runner.
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Orchestrator.Hypervisor.Kvm;

internal sealed unsafe class KvmVcpuBackend : IVcpuBackend
{
    private readonly KvmVcpuHandle _vcpu;
    private readonly MappedMemory _runRegion;
    private readonly Devices.PortIoBus _bus;
    private readonly KvmRun* _run;
    private bool _vcpuReferenced;
    private bool _runReferenced;

    public KvmVcpuBackend(KvmVcpuHandle vcpu, MappedMemory runRegion, Devices.PortIoBus bus)
    {
        if (runRegion.ByteLength < (ulong)sizeof(KvmRun))
        {
            throw new HypervisorException($"the kvm_run mapping is {runRegion.ByteLength} bytes, smaller than struct kvm_run");
        }

        _vcpu = vcpu;
        _runRegion = runRegion;
        _bus = bus;
        // The address only; it is used while Enter's reference keeps the mapping alive, or by RequestImmediateExit,
        // which the runner only calls while the thread is alive (so inside Enter..Leave).
        _run = (KvmRun*)runRegion.DangerousGetHandle();
    }

    public void Enter()
    {
        // The vCPU thread holds both for its whole life: closing the fd or unmapping kvm_run under a running KVM_RUN
        // is impossible; Dispose of either just defers the close/munmap until Leave.
        _vcpu.DangerousAddRef(ref _vcpuReferenced);
        _runRegion.DangerousAddRef(ref _runReferenced);
    }

    public void Leave()
    {
        if (_runReferenced)
        {
            _runRegion.DangerousRelease();
            _runReferenced = false;
        }

        if (_vcpuReferenced)
        {
            _vcpu.DangerousRelease();
            _vcpuReferenced = false;
        }
    }

    // Safe: _run points into the kvm_run mapping, alive while the runner's thread is (see the constructor). A single
    // byte store cannot tear, and the kernel reads the field once at KVM_RUN entry.
    public void RequestImmediateExit() => Volatile.Write(ref _run->immediate_exit, 1);

    public void ClearImmediateExit() => Volatile.Write(ref _run->immediate_exit, 0);

    public VcpuHaltStatus ProbeHalt()
    {
        var mpState = _vcpu.GetMpState();
        var regs = _vcpu.GetRegs();
        return new VcpuHaltStatus(mpState, (regs.rflags & 0x200) != 0);
    }

    public KvmVcpuRegisters ReadRegisters() => KvmVcpuRegisters.From(_vcpu.GetRegs(), _vcpu.GetSregs(), _vcpu.GetMpState());

    public VcpuRunResult Run()
    {
        // Two vDSO clock reads per exit (tens of ns) against an exit's microseconds: the stall report's "time in KVM_RUN".
        var started = Stopwatch.GetTimestamp();
        var returned = LibC.Ioctl(_vcpu.RawFd, KvmIoctls.KVM_RUN, 0);
        var ticks = Stopwatch.GetTimestamp() - started;
        if (returned < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno switch
            {
                // A kick or immediate_exit: the kernel reports it as KVM_EXIT_INTR, and so does the count.
                LibC.EINTR => VcpuRunResult.Interrupted with { Exit = KvmExit.KVM_EXIT_INTR, RunTicks = ticks },
                LibC.EAGAIN => VcpuRunResult.Handled with { RunTicks = ticks },
                _ => new VcpuRunResult(VcpuRunOutcome.Failed, $"KVM_RUN failed: {LibC.Describe(errno)}", RunTicks: ticks),
            };
        }

        // Safe: the kernel has finished writing the exit; fields are read from the mapping Enter keeps alive.
        var reason = _run->exit_reason;
        return HandleExit(reason) with { Exit = reason, RunTicks = ticks };
    }

    private VcpuRunResult HandleExit(uint reason)
    {
        switch (reason)
        {
            case KvmExit.KVM_EXIT_IO:
                return HandleIo();
            case KvmExit.KVM_EXIT_MMIO:
                return HandleMmio();
            case KvmExit.KVM_EXIT_INTR:
                return VcpuRunResult.Interrupted;
            case KvmExit.KVM_EXIT_IRQ_WINDOW_OPEN:
                return VcpuRunResult.Handled;
            case KvmExit.KVM_EXIT_HLT:
                // Only without an in-kernel irqchip (the real-mode probe guest): nothing can wake it, so it is done.
                return new VcpuRunResult(VcpuRunOutcome.GuestEnded, GuestEndReasons.Halt);
            case KvmExit.KVM_EXIT_SHUTDOWN:
                // A triple fault: what a reset looks like when the guest resets the CPU by itself (reboot=t, crashes).
                return new VcpuRunResult(VcpuRunOutcome.GuestEnded, GuestEndReasons.Reset);
            case KvmExit.KVM_EXIT_SYSTEM_EVENT:
                return _run->system_event.type switch
                {
                    KvmExit.KVM_SYSTEM_EVENT_SHUTDOWN => new VcpuRunResult(VcpuRunOutcome.GuestEnded, GuestEndReasons.Shutdown),
                    KvmExit.KVM_SYSTEM_EVENT_RESET => new VcpuRunResult(VcpuRunOutcome.GuestEnded, GuestEndReasons.Reset),
                    KvmExit.KVM_SYSTEM_EVENT_CRASH => new VcpuRunResult(VcpuRunOutcome.GuestEnded, GuestEndReasons.Panic),
                    var type => new VcpuRunResult(VcpuRunOutcome.Failed, $"KVM_EXIT_SYSTEM_EVENT of unknown type {type}"),
                };
            case KvmExit.KVM_EXIT_FAIL_ENTRY:
                return new VcpuRunResult(
                    VcpuRunOutcome.Failed,
                    $"KVM_EXIT_FAIL_ENTRY: hardware entry failure reason 0x{_run->fail_entry.hardware_entry_failure_reason:x} " +
                    $"on host CPU {_run->fail_entry.cpu} (invalid guest state)");
            case KvmExit.KVM_EXIT_INTERNAL_ERROR:
                return new VcpuRunResult(VcpuRunOutcome.Failed, InternalError());
            default:
                return new VcpuRunResult(VcpuRunOutcome.Failed, $"unexpected {KvmExit.Name(reason)}");
        }
    }

    private VcpuRunResult HandleIo()
    {
        // Safe: the io member is valid for KVM_EXIT_IO; the data it names is checked to lie inside the mapping.
        var io = _run->io;
        var total = (ulong)io.size * io.count;
        if (io.size is not (1 or 2 or 4) || io.data_offset > _runRegion.ByteLength || total > _runRegion.ByteLength - io.data_offset)
        {
            return new VcpuRunResult(VcpuRunOutcome.Failed, $"malformed KVM_EXIT_IO (port 0x{io.port:x}, size {io.size}, count {io.count})");
        }

        var data = (byte*)_run + io.data_offset;
        for (uint i = 0; i < io.count; i++)
        {
            var item = new Span<byte>(data + (i * io.size), io.size);
            if (io.direction == KvmExit.KVM_EXIT_IO_OUT)
            {
                _bus.Write(io.port, item);
            }
            else
            {
                _bus.Read(io.port, item);
            }
        }

        return new VcpuRunResult(VcpuRunOutcome.Continue, Io: true);
    }

    private VcpuRunResult HandleMmio()
    {
        // Nothing is mapped outside RAM but the in-kernel APICs: reads float to all ones, writes are dropped.
        // Safe: the mmio member is valid for KVM_EXIT_MMIO and data is its own 8-byte array.
        var length = Math.Min(_run->mmio.len, 8u);
        if (_run->mmio.is_write == 0)
        {
            new Span<byte>(_run->mmio.data, (int)length).Fill(0xff);
        }

        return new VcpuRunResult(VcpuRunOutcome.Continue, Mmio: true);
    }

    private string InternalError()
    {
        // Safe: the internal member is valid for KVM_EXIT_INTERNAL_ERROR; ndata is clamped to its 16-entry array.
        var error = _run->@internal;
        var words = new List<string>();
        for (var i = 0; i < Math.Min(error.ndata, 16u); i++)
        {
            words.Add($"0x{error.data[i]:x}");
        }

        var what = error.suberror switch
        {
            1 => "emulation failure",
            2 => "simultaneous exceptions",
            3 => "delivery event failure",
            _ => "internal error",
        };
        return $"KVM_EXIT_INTERNAL_ERROR: {what} (suberror {error.suberror}) [{string.Join(", ", words)}]";
    }
}

/// <summary>Reasons for a guest-ended VM, named as QEMU's SHUTDOWN event names them, so both drivers say the same.</summary>
internal static class GuestEndReasons
{
    public const string Reset = "guest-reset";
    public const string Shutdown = "guest-shutdown";
    public const string Panic = "guest-panic";
    public const string Halt = "guest-halt";
}
