// The CPU state for the kernel's 64-bit entry, checked the way the CPU will use it: page tables walked from CR3,
// GDT descriptors decoded, control registers and segments as the boot protocol asks.
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class LongModeTests
{
    private const ulong Gib = 1UL << 30;

    [Fact]
    public void Page_tables_identity_map_the_first_four_GiB_with_2_MiB_pages()
    {
        using var memory = new GuestMemory(64 << 20);
        LongMode.WriteTables(memory);

        ulong[] probes = [0, 0x7000, 0x100200, 0x1000000 + 0x12345, (64 << 20) - 1, Gib + 5, (3 * Gib) + 0x1fffff, 0xfee00000, (4 * Gib) - 1];
        foreach (var address in probes)
        {
            Assert.Equal(address, Walk(memory, LongMode.Pml4Address, address));
        }

        Assert.Null(Walk(memory, LongMode.Pml4Address, 4 * Gib)); // nothing above: PDPT entry 4 is empty
    }

    [Fact]
    public void Gdt_has_flat_64_bit_code_at_boot_cs_and_flat_data_at_boot_ds()
    {
        var code = Decode(LongMode.Gdt[LongMode.CodeSelector / 8]);
        Assert.Equal((Base: 0UL, Limit: 0xfffffu, Type: 0xb, S: 1, Dpl: 0, P: 1, L: 1, Db: 0, G: 1), code);

        var data = Decode(LongMode.Gdt[LongMode.DataSelector / 8]);
        Assert.Equal((Base: 0UL, Limit: 0xfffffu, Type: 0x3, S: 1, Dpl: 0, P: 1, L: 0, Db: 1, G: 1), data);

        var tss = Decode(LongMode.Gdt[LongMode.TssSelector / 8]);
        Assert.Equal(0xb, tss.Type); // busy 64-bit TSS
        Assert.Equal(0, tss.S);
        Assert.Equal(1, tss.P);

        Assert.Equal(0UL, LongMode.Gdt[0]);
        Assert.Equal(0x00af9b000000ffffUL, LongMode.GdtEntry(0xa09b, 0, 0xfffff)); // the value Linux's own boot GDT uses
    }

    [Fact]
    public void Gdt_and_idt_are_written_where_sregs_point()
    {
        using var memory = new GuestMemory(1 << 20);
        LongMode.WriteTables(memory);
        var sregs = LongMode.Sregs(default);

        Assert.Equal(LongMode.GdtAddress, sregs.gdt.@base);
        for (var i = 0; i < LongMode.Gdt.Length; i++)
        {
            Assert.Equal(LongMode.Gdt[i], memory.ReadUInt64(sregs.gdt.@base + ((ulong)i * 8)));
        }

        Assert.Equal((LongMode.Gdt.Length * 8) - 1, sregs.gdt.limit);
        Assert.Equal(0UL, memory.ReadUInt64(sregs.idt.@base));
    }

    [Fact]
    public void Sregs_enter_long_mode_with_the_boot_selectors_loaded()
    {
        var sregs = LongMode.Sregs(default);

        Assert.NotEqual(0UL, sregs.cr0 & LongMode.Cr0Pe);
        Assert.NotEqual(0UL, sregs.cr0 & LongMode.Cr0Pg);
        Assert.Equal(0UL, sregs.cr0 & ((1UL << 29) | (1UL << 30))); // NW and CD clear: caching on
        Assert.Equal(LongMode.Pml4Address, sregs.cr3);
        Assert.NotEqual(0UL, sregs.cr4 & LongMode.Cr4Pae);
        Assert.Equal(LongMode.EferLme | LongMode.EferLma, sregs.efer);

        Assert.Equal(LongMode.CodeSelector, sregs.cs.selector);
        Assert.Equal(1, sregs.cs.l);
        Assert.Equal(0, sregs.cs.db);
        Assert.Equal(0xffffffffu, sregs.cs.limit); // the byte limit of a 4 KiB-granular 0xfffff
        foreach (var segment in new[] { sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss })
        {
            Assert.Equal(LongMode.DataSelector, segment.selector);
            Assert.Equal(1, segment.present);
            Assert.Equal(0UL, segment.@base);
        }

        Assert.Equal(LongMode.TssSelector, sregs.tr.selector);
    }

    [Fact]
    public void Regs_start_at_the_64_bit_entry_with_rsi_on_the_zero_page_and_interrupts_off()
    {
        var regs = LongMode.Regs(0x100200, LinuxBoot.BootParamsAddress);
        Assert.Equal(0x100200UL, regs.rip);
        Assert.Equal(0x7000UL, regs.rsi);
        Assert.Equal(0x2UL, regs.rflags); // IF clear; bit 1 is always set
    }

    [Fact]
    public void Boot_structures_do_not_overlap()
    {
        (ulong Start, ulong End, string What)[] ranges =
        [
            (LongMode.GdtAddress, LongMode.GdtAddress + ((ulong)LongMode.Gdt.Length * 8), "GDT"),
            (LongMode.IdtAddress, LongMode.IdtAddress + 8, "IDT"),
            (LinuxBoot.BootParamsAddress, LinuxBoot.BootParamsAddress + 4096, "boot_params"),
            (LongMode.StackPointer - 0x800, LongMode.StackPointer, "stack"),
            (LongMode.Pml4Address, LongMode.PdAddress + ((ulong)LongMode.IdentityMappedGiB * 4096), "page tables"),
            (LinuxBoot.CommandLineAddress, LinuxBoot.CommandLineAddress + 2048, "command line"),
            (MpTable.Address, MpTable.Address + MpTable.MaxSize, "MP table"),
        ];
        foreach (var a in ranges)
        {
            foreach (var b in ranges.Where(r => r != a))
            {
                Assert.False(a.Start < b.End && b.Start < a.End, $"{a.What} overlaps {b.What}");
            }

            Assert.True(a.End <= LinuxBoot.EbdaStart || a.What == "MP table", $"{a.What} reaches into the EBDA");
        }
    }

    /// <summary>A 4-level walk as the MMU does it (2 MiB pages at the PD level); null where a level is not present.</summary>
    private static ulong? Walk(GuestMemory memory, ulong cr3, ulong virtualAddress)
    {
        const ulong present = 1;
        const ulong addressMask = 0x000f_ffff_ffff_f000;
        var pml4e = memory.ReadUInt64(cr3 + (((virtualAddress >> 39) & 0x1ff) * 8));
        if ((pml4e & present) == 0)
        {
            return null;
        }

        var pdpte = memory.ReadUInt64((pml4e & addressMask) + (((virtualAddress >> 30) & 0x1ff) * 8));
        if ((pdpte & present) == 0)
        {
            return null;
        }

        var pde = memory.ReadUInt64((pdpte & addressMask) + (((virtualAddress >> 21) & 0x1ff) * 8));
        if ((pde & present) == 0)
        {
            return null;
        }

        Assert.True((pde & LongMode.PteHuge) != 0, "expected a 2 MiB page");
        Assert.True((pde & LongMode.PteWritable) != 0, "expected a writable page");
        return (pde & 0x000f_ffff_ffe0_0000) | (virtualAddress & 0x1fffff);
    }

    private static (ulong Base, uint Limit, int Type, int S, int Dpl, int P, int L, int Db, int G) Decode(ulong entry) => (
        ((entry >> 16) & 0xffffff) | ((entry >> 32) & 0xff000000),
        (uint)((entry & 0xffff) | ((entry >> 32) & 0xf0000)),
        (int)((entry >> 40) & 0xf),
        (int)((entry >> 44) & 1),
        (int)((entry >> 45) & 3),
        (int)((entry >> 47) & 1),
        (int)((entry >> 53) & 1),
        (int)((entry >> 54) & 1),
        (int)((entry >> 55) & 1));
}
