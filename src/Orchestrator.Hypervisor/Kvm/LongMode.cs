// CPU state for the kernel's 64-bit entry (boot.rst, "64-bit Boot Protocol"): long mode with paging on, identity-mapped
// page tables covering the kernel, zero page and command line, a GDT with flat __BOOT_CS (0x10) and __BOOT_DS (0x18),
// interrupts off, RSI = the zero page.
namespace Orchestrator.Hypervisor.Kvm;

internal static class LongMode
{
    public const ulong GdtAddress = 0x500;
    public const ulong IdtAddress = 0x540; // after the GDT's five entries (0x500..0x528)
    public const ulong Pml4Address = 0x9000;
    public const ulong PdptAddress = 0xa000;
    public const ulong PdAddress = 0xb000;

    /// <summary>Identity-mapped with 2 MiB pages: all of RAM this engine gives a guest (at most 3 GiB) and the APIC pages.</summary>
    public const int IdentityMappedGiB = 4;

    public const ulong StackPointer = 0x8ff0;

    public const ushort CodeSelector = 0x10; // __BOOT_CS
    public const ushort DataSelector = 0x18; // __BOOT_DS
    public const ushort TssSelector = 0x20;

    // Control register and EFER bits (asm/processor-flags.h, msr-index.h).
    public const ulong Cr0Pe = 1UL << 0;
    public const ulong Cr0Mp = 1UL << 1;
    public const ulong Cr0Et = 1UL << 4;
    public const ulong Cr0Ne = 1UL << 5;
    public const ulong Cr0Wp = 1UL << 16;
    public const ulong Cr0Pg = 1UL << 31;
    public const ulong Cr4Pae = 1UL << 5;
    public const ulong EferLme = 1UL << 8;
    public const ulong EferLma = 1UL << 10;

    // Page-table entry bits.
    public const ulong PtePresent = 1UL << 0;
    public const ulong PteWritable = 1UL << 1;
    public const ulong PteHuge = 1UL << 7; // PS: a 2 MiB page in a page directory

    /// <summary>
    /// GDT entries as (flags, base, limit) in the descriptor's own split encoding. Flags: access byte in the low 8
    /// bits, then G/DB/L/AVL in bits 12-15. 0xa09b: present ring-0 code, execute/read, L=1 (64-bit), G=1. 0xc093:
    /// present ring-0 data, read/write, DB=1, G=1. 0x808b: present busy 64-bit TSS (VMX refuses an unusable TR).
    /// </summary>
    public static readonly ulong[] Gdt =
    [
        0,                                  // null
        0,                                  // unused: keeps __BOOT_CS at 0x10 as the protocol asks
        GdtEntry(0xa09b, 0, 0xfffff),       // 0x10 __BOOT_CS
        GdtEntry(0xc093, 0, 0xfffff),       // 0x18 __BOOT_DS
        GdtEntry(0x808b, 0, 0xfffff),       // 0x20 TSS
    ];

    /// <summary>The x86 segment descriptor encoding of (flags, base, limit).</summary>
    public static ulong GdtEntry(ushort flags, uint @base, uint limit) =>
        (((ulong)@base & 0xff000000) << (56 - 24)) |
        (((ulong)flags & 0x0000f0ff) << 40) |
        (((ulong)limit & 0x000f0000) << (48 - 16)) |
        (((ulong)@base & 0x00ffffff) << 16) |
        ((ulong)limit & 0x0000ffff);

    /// <summary>The kvm_segment KVM_SET_SREGS wants for a descriptor (the hidden part a real CPU caches on load).</summary>
    public static KvmSegment SegmentFromDescriptor(ulong entry, ushort selector)
    {
        var limit = (uint)((entry & 0xffff) | ((entry >> 32) & 0xf0000));
        var granular = (byte)((entry >> 55) & 1);
        return new KvmSegment
        {
            @base = ((entry >> 16) & 0xffffff) | ((entry >> 32) & 0xff000000),
            limit = granular == 1 ? (limit << 12) | 0xfff : limit,
            selector = selector,
            type = (byte)((entry >> 40) & 0xf),
            s = (byte)((entry >> 44) & 1),
            dpl = (byte)((entry >> 45) & 3),
            present = (byte)((entry >> 47) & 1),
            avl = (byte)((entry >> 52) & 1),
            l = (byte)((entry >> 53) & 1),
            db = (byte)((entry >> 54) & 1),
            g = granular,
        };
    }

    /// <summary>Writes the GDT, an empty IDT and the identity-mapping page tables.</summary>
    public static void WriteTables(GuestMemory memory)
    {
        for (var i = 0; i < Gdt.Length; i++)
        {
            memory.WriteUInt64(GdtAddress + ((ulong)i * 8), Gdt[i]);
        }

        // An empty IDT: until the kernel loads its own, any exception is a triple fault, i.e. a clean VM reset.
        memory.WriteUInt64(IdtAddress, 0);

        memory.Clear(Pml4Address, 0x1000);
        memory.Clear(PdptAddress, 0x1000);
        memory.WriteUInt64(Pml4Address, PdptAddress | PtePresent | PteWritable);
        for (ulong gib = 0; gib < IdentityMappedGiB; gib++)
        {
            var pd = PdAddress + (gib * 0x1000);
            memory.WriteUInt64(PdptAddress + (gib * 8), pd | PtePresent | PteWritable);
            for (ulong entry = 0; entry < 512; entry++)
            {
                var physical = ((gib * 512) + entry) << 21;
                memory.WriteUInt64(pd + (entry * 8), physical | PtePresent | PteWritable | PteHuge);
            }
        }
    }

    /// <summary>
    /// <paramref name="reset"/> (the vCPU's state from KVM_GET_SREGS) switched to long mode: flat segments from the GDT,
    /// paging on with CR3 at the tables, PAE, LME|LMA. CR0 gets what Linux's own startup_32 sets (PE MP ET NE WP PG),
    /// which also clears the CD/NW bits a reset leaves set.
    /// </summary>
    public static KvmSregs Sregs(KvmSregs reset)
    {
        var sregs = reset;
        var code = SegmentFromDescriptor(Gdt[CodeSelector / 8], CodeSelector);
        var data = SegmentFromDescriptor(Gdt[DataSelector / 8], DataSelector);
        sregs.cs = code;
        sregs.ds = data;
        sregs.es = data;
        sregs.fs = data;
        sregs.gs = data;
        sregs.ss = data;
        sregs.tr = SegmentFromDescriptor(Gdt[TssSelector / 8], TssSelector);

        sregs.gdt.@base = GdtAddress;
        sregs.gdt.limit = (ushort)((Gdt.Length * 8) - 1);
        sregs.idt.@base = IdtAddress;
        sregs.idt.limit = 7;

        sregs.cr0 = Cr0Pe | Cr0Mp | Cr0Et | Cr0Ne | Cr0Wp | Cr0Pg;
        sregs.cr3 = Pml4Address;
        sregs.cr4 = Cr4Pae;
        sregs.efer = EferLme | EferLma;
        return sregs;
    }

    /// <summary>General registers at the 64-bit entry: RIP there, RSI = boot_params, interrupts off (RFLAGS bit 1 is fixed).</summary>
    public static KvmRegs Regs(ulong entryPoint, ulong bootParams) => new()
    {
        rip = entryPoint,
        rsi = bootParams,
        rsp = StackPointer,
        rbp = StackPointer,
        rflags = 0x2,
    };

    /// <summary>FPU state after FNINIT: x87 control word 0x37f, all SSE exceptions masked (what Firecracker sets).</summary>
    public static KvmFpu Fpu() => new() { fcw = 0x37f, mxcsr = 0x1f80 };
}
