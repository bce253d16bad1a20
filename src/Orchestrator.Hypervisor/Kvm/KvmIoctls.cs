// The /dev/kvm ABI: ioctl numbers and structs as <linux/kvm.h> and <asm/kvm.h> (x86-64) define them, under
// their kernel names. Sizes and offsets are asserted against the kernel's in KvmAbiTests. The structs are `unsafe` only
// to declare fixed-size arrays that mirror the C arrays inline; none holds a pointer.
using System.Runtime.InteropServices;

namespace Orchestrator.Hypervisor.Kvm;

/// <summary>ioctl request numbers, computed with the kernel's own macros (asm-generic/ioctl.h) as kvm.h does.</summary>
internal static class KvmIoctls
{
    public const int ApiVersion = 12; // KVM_API_VERSION: the only stable version since Linux 2.6.22

    private const uint Kvmio = 0xAE; // KVMIO

    // asm-generic/ioctl.h: nr in bits 0-7, type in 8-15, size in 16-29, direction in 30-31.
    private const int IocNrShift = 0;
    private const int IocTypeShift = 8;
    private const int IocSizeShift = 16;
    private const int IocDirShift = 30;
    private const uint IocNone = 0;
    private const uint IocWrite = 1;
    private const uint IocRead = 2;

    private static uint Ioc(uint dir, uint type, uint nr, int size) =>
        (dir << IocDirShift) | ((uint)size << IocSizeShift) | (type << IocTypeShift) | (nr << IocNrShift);

    private static uint Io(uint nr) => Ioc(IocNone, Kvmio, nr, 0);

    // `unsafe` for sizeof of an unmanaged struct only: the size the kernel's macro takes from the C struct.

    private static unsafe uint Ior<T>(uint nr) where T : unmanaged => Ioc(IocRead, Kvmio, nr, sizeof(T));

    private static unsafe uint Iow<T>(uint nr) where T : unmanaged => Ioc(IocWrite, Kvmio, nr, sizeof(T));

    private static unsafe uint Iowr<T>(uint nr) where T : unmanaged => Ioc(IocRead | IocWrite, Kvmio, nr, sizeof(T));

    // System ioctls (on the /dev/kvm fd).
    public static readonly uint KVM_GET_API_VERSION = Io(0x00);
    public static readonly uint KVM_CREATE_VM = Io(0x01);
    public static readonly uint KVM_CHECK_EXTENSION = Io(0x03);
    public static readonly uint KVM_GET_VCPU_MMAP_SIZE = Io(0x04);
    public static readonly uint KVM_GET_SUPPORTED_CPUID = Iowr<KvmCpuid2>(0x05);

    // VM ioctls.
    public static readonly uint KVM_CREATE_VCPU = Io(0x41);
    public static readonly uint KVM_SET_USER_MEMORY_REGION = Iow<KvmUserspaceMemoryRegion>(0x46);
    public static readonly uint KVM_SET_TSS_ADDR = Io(0x47);
    public static readonly uint KVM_CREATE_IRQCHIP = Io(0x60);
    public static readonly uint KVM_IRQ_LINE = Iow<KvmIrqLevel>(0x61);
    public static readonly uint KVM_CREATE_PIT2 = Iow<KvmPitConfig>(0x77);

    // vCPU ioctls.
    public static readonly uint KVM_RUN = Io(0x80);
    public static readonly uint KVM_GET_REGS = Ior<KvmRegs>(0x81);
    public static readonly uint KVM_SET_REGS = Iow<KvmRegs>(0x82);
    public static readonly uint KVM_GET_SREGS = Ior<KvmSregs>(0x83);
    public static readonly uint KVM_SET_SREGS = Iow<KvmSregs>(0x84);
    public static readonly uint KVM_SET_MSRS = Iow<KvmMsrs>(0x89);
    public static readonly uint KVM_GET_FPU = Ior<KvmFpu>(0x8c);
    public static readonly uint KVM_SET_FPU = Iow<KvmFpu>(0x8d);
    public static readonly uint KVM_GET_LAPIC = Ior<KvmLapicState>(0x8e);
    public static readonly uint KVM_SET_LAPIC = Iow<KvmLapicState>(0x8f);
    public static readonly uint KVM_SET_CPUID2 = Iow<KvmCpuid2>(0x90);
    public static readonly uint KVM_GET_MP_STATE = Ior<KvmMpState>(0x98);
}

/// <summary>KVM_CAP_* numbers for KVM_CHECK_EXTENSION (linux/kvm.h).</summary>
internal static class KvmCap
{
    public const int KVM_CAP_IRQCHIP = 0;
    public const int KVM_CAP_USER_MEMORY = 3;
    public const int KVM_CAP_SET_TSS_ADDR = 4;
    public const int KVM_CAP_EXT_CPUID = 7;
    public const int KVM_CAP_NR_VCPUS = 9;
    public const int KVM_CAP_PIT2 = 33;
    public const int KVM_CAP_MAX_VCPUS = 66;
    public const int KVM_CAP_IMMEDIATE_EXIT = 136;
}

/// <summary>kvm_run.exit_reason values (KVM_EXIT_*), and the sub-codes this engine reads.</summary>
internal static class KvmExit
{
    public const uint KVM_EXIT_UNKNOWN = 0;
    public const uint KVM_EXIT_EXCEPTION = 1;
    public const uint KVM_EXIT_IO = 2;
    public const uint KVM_EXIT_HYPERCALL = 3;
    public const uint KVM_EXIT_DEBUG = 4;
    public const uint KVM_EXIT_HLT = 5;
    public const uint KVM_EXIT_MMIO = 6;
    public const uint KVM_EXIT_IRQ_WINDOW_OPEN = 7;
    public const uint KVM_EXIT_SHUTDOWN = 8;
    public const uint KVM_EXIT_FAIL_ENTRY = 9;
    public const uint KVM_EXIT_INTR = 10;
    public const uint KVM_EXIT_INTERNAL_ERROR = 17;
    public const uint KVM_EXIT_SYSTEM_EVENT = 24;

    public const byte KVM_EXIT_IO_IN = 0;
    public const byte KVM_EXIT_IO_OUT = 1;

    public const uint KVM_SYSTEM_EVENT_SHUTDOWN = 1;
    public const uint KVM_SYSTEM_EVENT_RESET = 2;
    public const uint KVM_SYSTEM_EVENT_CRASH = 3;

    public const uint KVM_MP_STATE_RUNNABLE = 0;
    public const uint KVM_MP_STATE_UNINITIALIZED = 1;
    public const uint KVM_MP_STATE_INIT_RECEIVED = 2;
    public const uint KVM_MP_STATE_HALTED = 3;

    public const uint KVM_PIT_SPEAKER_DUMMY = 1;

    public static string Name(uint reason) => reason switch
    {
        KVM_EXIT_UNKNOWN => "KVM_EXIT_UNKNOWN",
        KVM_EXIT_EXCEPTION => "KVM_EXIT_EXCEPTION",
        KVM_EXIT_IO => "KVM_EXIT_IO",
        KVM_EXIT_HYPERCALL => "KVM_EXIT_HYPERCALL",
        KVM_EXIT_DEBUG => "KVM_EXIT_DEBUG",
        KVM_EXIT_HLT => "KVM_EXIT_HLT",
        KVM_EXIT_MMIO => "KVM_EXIT_MMIO",
        KVM_EXIT_IRQ_WINDOW_OPEN => "KVM_EXIT_IRQ_WINDOW_OPEN",
        KVM_EXIT_SHUTDOWN => "KVM_EXIT_SHUTDOWN",
        KVM_EXIT_FAIL_ENTRY => "KVM_EXIT_FAIL_ENTRY",
        KVM_EXIT_INTR => "KVM_EXIT_INTR",
        KVM_EXIT_INTERNAL_ERROR => "KVM_EXIT_INTERNAL_ERROR",
        KVM_EXIT_SYSTEM_EVENT => "KVM_EXIT_SYSTEM_EVENT",
        _ => $"exit reason {reason}",
    };
}

/// <summary>struct kvm_regs (asm/kvm.h): 144 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmRegs
{
    public ulong rax, rbx, rcx, rdx;
    public ulong rsi, rdi, rsp, rbp;
    public ulong r8, r9, r10, r11;
    public ulong r12, r13, r14, r15;
    public ulong rip, rflags;
}

/// <summary>struct kvm_segment (asm/kvm.h): 24 bytes. <c>limit</c> is in bytes, whatever <c>g</c> says.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmSegment
{
    public ulong @base;
    public uint limit;
    public ushort selector;
    public byte type;
    public byte present, dpl, db, s, l, g, avl;
    public byte unusable;
    public byte padding;
}

/// <summary>struct kvm_dtable (asm/kvm.h): 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmDtable
{
    public ulong @base;
    public ushort limit;
    public fixed ushort padding[3];
}

/// <summary>struct kvm_sregs (asm/kvm.h): 312 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmSregs
{
    public KvmSegment cs, ds, es, fs, gs, ss;
    public KvmSegment tr, ldt;
    public KvmDtable gdt, idt;
    public ulong cr0, cr2, cr3, cr4, cr8;
    public ulong efer;
    public ulong apic_base;
    public fixed ulong interrupt_bitmap[4]; // (KVM_NR_INTERRUPTS + 63) / 64
}

/// <summary>struct kvm_fpu (asm/kvm.h): 416 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmFpu
{
    public fixed byte fpr[8 * 16];
    public ushort fcw;
    public ushort fsw;
    public byte ftwx;
    public byte pad1;
    public ushort last_opcode;
    public ulong last_ip;
    public ulong last_dp;
    public fixed byte xmm[16 * 16];
    public uint mxcsr;
    public uint pad2;
}

/// <summary>struct kvm_msr_entry (asm/kvm.h): 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmMsrEntry
{
    public uint index;
    public uint reserved;
    public ulong data;
}

/// <summary>struct kvm_msrs (asm/kvm.h) without its flexible entries[]: 8 bytes, the size the ioctl number encodes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmMsrs
{
    public uint nmsrs;
    public uint pad;
}

/// <summary>struct kvm_userspace_memory_region (linux/kvm.h): 32 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmUserspaceMemoryRegion
{
    public uint slot;
    public uint flags;
    public ulong guest_phys_addr;
    public ulong memory_size;
    public ulong userspace_addr;
}

/// <summary>struct kvm_cpuid_entry2 (asm/kvm.h): 40 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmCpuidEntry2
{
    public uint function;
    public uint index;
    public uint flags;
    public uint eax, ebx, ecx, edx;
    public fixed uint padding[3];
}

/// <summary>struct kvm_cpuid2 (asm/kvm.h) without its flexible entries[]: 8 bytes, the size the ioctl number encodes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmCpuid2
{
    public uint nent;
    public uint padding;
}

/// <summary>struct kvm_pit_config (linux/kvm.h): 64 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmPitConfig
{
    public uint flags;
    public fixed uint pad[15];
}

/// <summary>struct kvm_irq_level (linux/kvm.h): 8 bytes (irq shares a union with status).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmIrqLevel
{
    public uint irq;
    public uint level;
}

/// <summary>struct kvm_lapic_state (asm/kvm.h): the local APIC's 1 KiB register page.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmLapicState
{
    public const int KVM_APIC_REG_SIZE = 0x400;
    public const int APIC_LVT0 = 0x350;
    public const int APIC_LVT1 = 0x360;

    public fixed byte regs[KVM_APIC_REG_SIZE];
}

/// <summary>struct kvm_mp_state (linux/kvm.h): 4 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmMpState
{
    public uint mp_state;
}

/// <summary>
/// struct kvm_run (linux/kvm.h): the page shared with the kernel by mmap of a vCPU fd. Only the header and the exit
/// union members this engine reads are declared; the size is the kernel's (header, 256-byte union, sync regs).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 2352)]
internal unsafe struct KvmRun
{
    // in
    [FieldOffset(0)] public byte request_interrupt_window;
    [FieldOffset(1)] public byte immediate_exit;

    // out
    [FieldOffset(8)] public uint exit_reason;
    [FieldOffset(12)] public byte ready_for_interrupt_injection;
    [FieldOffset(13)] public byte if_flag;
    [FieldOffset(14)] public ushort flags;
    [FieldOffset(16)] public ulong cr8;
    [FieldOffset(24)] public ulong apic_base;

    // The exit union (KVM_EXIT_IO, KVM_EXIT_MMIO, ...), 256 bytes from offset 32.
    [FieldOffset(32)] public KvmRunIo io;
    [FieldOffset(32)] public KvmRunMmio mmio;
    [FieldOffset(32)] public KvmRunFailEntry fail_entry;
    [FieldOffset(32)] public KvmRunInternal @internal;
    [FieldOffset(32)] public KvmRunSystemEvent system_event;

    [FieldOffset(288)] public ulong kvm_valid_regs;
    [FieldOffset(296)] public ulong kvm_dirty_regs;
}

/// <summary>kvm_run.io: the data lives in the kvm_run page at <c>data_offset</c>, <c>count</c> items of <c>size</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmRunIo
{
    public byte direction;
    public byte size;
    public ushort port;
    public uint count;
    public ulong data_offset;
}

/// <summary>kvm_run.mmio.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmRunMmio
{
    public ulong phys_addr;
    public fixed byte data[8];
    public uint len;
    public byte is_write;
}

/// <summary>kvm_run.fail_entry.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmRunFailEntry
{
    public ulong hardware_entry_failure_reason;
    public uint cpu;
}

/// <summary>kvm_run.internal.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct KvmRunInternal
{
    public uint suberror;
    public uint ndata;
    public fixed ulong data[16];
}

/// <summary>kvm_run.system_event (the post-5.18 layout: type, ndata, then data[]; flags aliases data[0]).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmRunSystemEvent
{
    public uint type;
    public uint ndata;
    public ulong flags;
}
