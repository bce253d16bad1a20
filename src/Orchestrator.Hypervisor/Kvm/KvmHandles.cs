// One SafeHandle per KVM fd kind (system, VM, vCPU) with the ioctls that fd accepts, and the mmap'd regions (guest
// RAM, a vCPU's kvm_run page) as SafeBuffers that munmap on release. The shape follows rust-vmm's kvm-ioctls.
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Orchestrator.Hypervisor.Kvm;

/// <summary>Base of the three fd kinds: closes the fd once the last DangerousAddRef holder lets go.</summary>
internal abstract class KvmFd : SafeHandleMinusOneIsInvalid
{
    protected KvmFd()
        : base(ownsHandle: true)
    {
    }

    protected abstract string What { get; }

    /// <summary>The raw fd for a caller that holds a DangerousAddRef on this handle (the vCPU thread).</summary>
    internal int RawFd => (int)handle;

    protected override bool ReleaseHandle() => LibC.Close((int)handle) == 0;

    /// <summary>Runs one ioctl with the fd kept open for its duration; throws with the ioctl's name on failure.</summary>
    protected int Ioctl(uint request, nint argument, string name)
    {
        var result = TryIoctl(request, argument, out var errno);
        return result >= 0 ? result : throw new HypervisorException($"{name} on the {What} fd failed: {LibC.Describe(errno)}");
    }

    protected int TryIoctl(uint request, nint argument, out int errno)
    {
        var added = false;
        try
        {
            DangerousAddRef(ref added);
            var result = LibC.Ioctl((int)handle, request, argument);
            errno = result < 0 ? Marshal.GetLastPInvokeError() : 0;
            return result;
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    /// <summary>An ioctl whose argument is a struct passed by pointer (in, out or both).</summary>
    protected unsafe void IoctlRef<T>(uint request, ref T argument, string name) where T : unmanaged
    {
        // Safe: the struct is pinned by `fixed` for the whole call and the ioctl number encodes exactly sizeof(T),
        // so the kernel reads or writes no more than the struct.
        fixed (T* pointer = &argument)
        {
            Ioctl(request, (nint)pointer, name);
        }
    }
}

/// <summary>The /dev/kvm fd: capability queries and VM creation.</summary>
internal sealed class KvmSystemHandle : KvmFd
{
    public const string DevicePath = "/dev/kvm";

    private KvmSystemHandle()
    {
    }

    protected override string What => "/dev/kvm";

    /// <summary>Opens /dev/kvm read-write, close-on-exec (QEMU children of the same node must not inherit it).</summary>
    public static KvmSystemHandle Open()
    {
        var fd = LibC.Open(DevicePath, LibC.O_RDWR | LibC.O_CLOEXEC);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new HypervisorException($"cannot open {DevicePath} read-write: {LibC.Describe(errno)}");
        }

        var kvm = new KvmSystemHandle();
        kvm.SetHandle(fd);
        return kvm;
    }

    public int GetApiVersion() => Ioctl(KvmIoctls.KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");

    /// <summary>KVM_CHECK_EXTENSION: 0 when absent, else a capability-specific positive value.</summary>
    public int CheckExtension(int capability) => Ioctl(KvmIoctls.KVM_CHECK_EXTENSION, capability, "KVM_CHECK_EXTENSION");

    public int GetVcpuMmapSize() => Ioctl(KvmIoctls.KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");

    /// <summary>KVM_GET_SUPPORTED_CPUID: what this host can give a guest; grows its buffer while the kernel says E2BIG.</summary>
    public unsafe KvmCpuidEntry2[] GetSupportedCpuid()
    {
        for (var capacity = 128; capacity <= 4096; capacity *= 2)
        {
            var bytes = sizeof(KvmCpuid2) + (capacity * sizeof(KvmCpuidEntry2));
            var buffer = NativeMemory.AllocZeroed((nuint)bytes);
            try
            {
                // Safe: the buffer holds the header plus `capacity` entries, and nent tells the kernel so.
                var header = (KvmCpuid2*)buffer;
                header->nent = (uint)capacity;
                var result = TryIoctl(KvmIoctls.KVM_GET_SUPPORTED_CPUID, (nint)buffer, out var errno);
                if (result < 0 && errno == LibC.E2BIG)
                {
                    continue;
                }

                if (result < 0)
                {
                    throw new HypervisorException($"KVM_GET_SUPPORTED_CPUID failed: {LibC.Describe(errno)}");
                }

                var count = (int)Math.Min(header->nent, (uint)capacity);
                return new ReadOnlySpan<KvmCpuidEntry2>((byte*)buffer + sizeof(KvmCpuid2), count).ToArray();
            }
            finally
            {
                NativeMemory.Free(buffer);
            }
        }

        throw new HypervisorException("KVM_GET_SUPPORTED_CPUID wants more than 4096 entries");
    }

    public KvmVmHandle CreateVm()
    {
        // Machine type 0: the default x86 VM.
        var fd = Ioctl(KvmIoctls.KVM_CREATE_VM, 0, "KVM_CREATE_VM");
        return KvmVmHandle.FromFd(fd);
    }
}

/// <summary>A VM fd: memory slots, the in-kernel irqchip and PIT, interrupt lines, vCPU creation.</summary>
internal sealed class KvmVmHandle : KvmFd
{
    private KvmVmHandle()
    {
    }

    protected override string What => "VM";

    internal static KvmVmHandle FromFd(int fd)
    {
        var vm = new KvmVmHandle();
        vm.SetHandle(fd);
        return vm;
    }

    /// <summary>Three pages Intel VMX needs for real-mode emulation; must lie outside guest RAM and be set before vCPUs.</summary>
    public void SetTssAddress(ulong address) => Ioctl(KvmIoctls.KVM_SET_TSS_ADDR, (nint)address, "KVM_SET_TSS_ADDR");

    /// <summary>In-kernel PIC, IOAPIC and per-vCPU local APICs (so HLT and interrupt delivery never leave the kernel).</summary>
    public void CreateIrqchip() => Ioctl(KvmIoctls.KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");

    public void CreatePit2()
    {
        // A dummy speaker port (0x61) so the guest's PIT calibration reads work without a userspace device.
        var config = new KvmPitConfig { flags = KvmExit.KVM_PIT_SPEAKER_DUMMY };
        IoctlRef(KvmIoctls.KVM_CREATE_PIT2, ref config, "KVM_CREATE_PIT2");
    }

    public void SetUserMemoryRegion(uint slot, ulong guestPhysicalAddress, MappedMemory memory)
    {
        var added = false;
        try
        {
            // The mapping must outlive the slot: the VM fd is closed before the memory is unmapped (KvmVm.Teardown).
            memory.DangerousAddRef(ref added);
            var region = new KvmUserspaceMemoryRegion
            {
                slot = slot,
                flags = 0,
                guest_phys_addr = guestPhysicalAddress,
                memory_size = memory.ByteLength,
                userspace_addr = (ulong)memory.DangerousGetHandle(),
            };
            IoctlRef(KvmIoctls.KVM_SET_USER_MEMORY_REGION, ref region, "KVM_SET_USER_MEMORY_REGION");
        }
        finally
        {
            if (added)
            {
                memory.DangerousRelease();
            }
        }
    }

    /// <summary>Sets a GSI's level on the in-kernel PIC and IOAPIC (GSIs 0-15 reach both).</summary>
    public void IrqLine(uint irq, bool level)
    {
        var line = new KvmIrqLevel { irq = irq, level = level ? 1u : 0u };
        IoctlRef(KvmIoctls.KVM_IRQ_LINE, ref line, "KVM_IRQ_LINE");
    }

    public KvmVcpuHandle CreateVcpu(int id)
    {
        var fd = Ioctl(KvmIoctls.KVM_CREATE_VCPU, id, "KVM_CREATE_VCPU");
        return KvmVcpuHandle.FromFd(fd);
    }
}

/// <summary>A vCPU fd: register state, CPUID, local APIC, and KVM_RUN (only ever from its runner thread).</summary>
internal sealed class KvmVcpuHandle : KvmFd
{
    private KvmVcpuHandle()
    {
    }

    protected override string What => "vCPU";

    internal static KvmVcpuHandle FromFd(int fd)
    {
        var vcpu = new KvmVcpuHandle();
        vcpu.SetHandle(fd);
        return vcpu;
    }

    /// <summary>Maps this vCPU's kvm_run page(s) (size from KVM_GET_VCPU_MMAP_SIZE).</summary>
    public MappedMemory MapRunRegion(int size) => MappedMemory.MapShared(this, (ulong)size);

    public KvmRegs GetRegs()
    {
        var regs = default(KvmRegs);
        IoctlRef(KvmIoctls.KVM_GET_REGS, ref regs, "KVM_GET_REGS");
        return regs;
    }

    public void SetRegs(KvmRegs regs) => IoctlRef(KvmIoctls.KVM_SET_REGS, ref regs, "KVM_SET_REGS");

    public KvmSregs GetSregs()
    {
        var sregs = default(KvmSregs);
        IoctlRef(KvmIoctls.KVM_GET_SREGS, ref sregs, "KVM_GET_SREGS");
        return sregs;
    }

    public void SetSregs(KvmSregs sregs) => IoctlRef(KvmIoctls.KVM_SET_SREGS, ref sregs, "KVM_SET_SREGS");

    public void SetFpu(KvmFpu fpu) => IoctlRef(KvmIoctls.KVM_SET_FPU, ref fpu, "KVM_SET_FPU");

    public KvmLapicState GetLapic()
    {
        var lapic = default(KvmLapicState);
        IoctlRef(KvmIoctls.KVM_GET_LAPIC, ref lapic, "KVM_GET_LAPIC");
        return lapic;
    }

    public void SetLapic(KvmLapicState lapic) => IoctlRef(KvmIoctls.KVM_SET_LAPIC, ref lapic, "KVM_SET_LAPIC");

    public uint GetMpState()
    {
        var state = default(KvmMpState);
        IoctlRef(KvmIoctls.KVM_GET_MP_STATE, ref state, "KVM_GET_MP_STATE");
        return state.mp_state;
    }

    public unsafe void SetCpuid(ReadOnlySpan<KvmCpuidEntry2> entries)
    {
        var bytes = sizeof(KvmCpuid2) + (entries.Length * sizeof(KvmCpuidEntry2));
        var buffer = NativeMemory.AllocZeroed((nuint)bytes);
        try
        {
            // Safe: the buffer is exactly header + entries.Length entries, and nent says so.
            ((KvmCpuid2*)buffer)->nent = (uint)entries.Length;
            entries.CopyTo(new Span<KvmCpuidEntry2>((byte*)buffer + sizeof(KvmCpuid2), entries.Length));
            Ioctl(KvmIoctls.KVM_SET_CPUID2, (nint)buffer, "KVM_SET_CPUID2");
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }

    public unsafe void SetMsrs(ReadOnlySpan<KvmMsrEntry> entries)
    {
        var bytes = sizeof(KvmMsrs) + (entries.Length * sizeof(KvmMsrEntry));
        var buffer = NativeMemory.AllocZeroed((nuint)bytes);
        try
        {
            // Safe: as SetCpuid, header + nmsrs entries in one buffer.
            ((KvmMsrs*)buffer)->nmsrs = (uint)entries.Length;
            entries.CopyTo(new Span<KvmMsrEntry>((byte*)buffer + sizeof(KvmMsrs), entries.Length));
            // KVM_SET_MSRS returns how many it set: fewer means the host refused one.
            var set = Ioctl(KvmIoctls.KVM_SET_MSRS, (nint)buffer, "KVM_SET_MSRS");
            if (set != entries.Length)
            {
                throw new HypervisorException($"KVM_SET_MSRS set {set} of {entries.Length} MSRs (MSR 0x{entries[set].index:x} refused)");
            }
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }
}

/// <summary>An mmap'd region (guest RAM, or a vCPU's kvm_run page) that munmaps when released.</summary>
internal sealed class MappedMemory : SafeBuffer
{
    private MappedMemory()
        : base(ownsHandle: true)
    {
    }

    /// <summary>
    /// Private anonymous memory, zero-filled and committed lazily (MAP_NORESERVE): a VM's RSS grows with what its guest
    /// touches, not with its configured size.
    /// </summary>
    public static MappedMemory MapAnonymous(ulong size) =>
        Map(size, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_NORESERVE, fd: -1, "guest memory");

    public static MappedMemory MapShared(KvmFd fd, ulong size)
    {
        var added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            return Map(size, LibC.MAP_SHARED, fd.RawFd, "kvm_run");
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
    }

    private static MappedMemory Map(ulong size, int flags, int fd, string what)
    {
        if (size == 0 || size % (ulong)Environment.SystemPageSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "a mapping is a positive number of whole pages");
        }

        var address = LibC.Mmap(0, (nuint)size, LibC.PROT_READ | LibC.PROT_WRITE, flags, fd, 0);
        if (address == LibC.MAP_FAILED)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new HypervisorException($"mmap of {size / 1024} KiB for {what} failed: {LibC.Describe(errno)}");
        }

        var memory = new MappedMemory();
        memory.SetHandle(address);
        memory.Initialize(size);
        return memory;
    }

    protected override bool ReleaseHandle() => LibC.Munmap(handle, (nuint)ByteLength) == 0;
}
