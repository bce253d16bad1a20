// The ABI with the kernel: every struct this engine hands to an ioctl, and every ioctl number, against the values of
// the kernel's own headers (<linux/kvm.h>, <asm/kvm.h>, <asm/bootparam.h> of Linux 6.x, x86-64), which are stable ABI.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class KvmAbiTests
{
    [Fact]
    public void Structs_have_the_kernels_sizes()
    {
        Assert.Equal(144, Unsafe.SizeOf<KvmRegs>());
        Assert.Equal(24, Unsafe.SizeOf<KvmSegment>());
        Assert.Equal(16, Unsafe.SizeOf<KvmDtable>());
        Assert.Equal(312, Unsafe.SizeOf<KvmSregs>());
        Assert.Equal(416, Unsafe.SizeOf<KvmFpu>());
        Assert.Equal(32, Unsafe.SizeOf<KvmUserspaceMemoryRegion>());
        Assert.Equal(8, Unsafe.SizeOf<KvmCpuid2>());
        Assert.Equal(40, Unsafe.SizeOf<KvmCpuidEntry2>());
        Assert.Equal(64, Unsafe.SizeOf<KvmPitConfig>());
        Assert.Equal(8, Unsafe.SizeOf<KvmIrqLevel>());
        Assert.Equal(1024, Unsafe.SizeOf<KvmLapicState>());
        Assert.Equal(4, Unsafe.SizeOf<KvmMpState>());
        Assert.Equal(8, Unsafe.SizeOf<KvmMsrs>());
        Assert.Equal(16, Unsafe.SizeOf<KvmMsrEntry>());
        Assert.Equal(2352, Unsafe.SizeOf<KvmRun>());
    }

    [Fact]
    public void Kvm_sregs_fields_sit_where_the_kernel_puts_them()
    {
        Assert.Equal(0, Offset<KvmSregs>("cs"));
        Assert.Equal(192, Offset<KvmSregs>("gdt"));
        Assert.Equal(208, Offset<KvmSregs>("idt"));
        Assert.Equal(224, Offset<KvmSregs>("cr0"));
        Assert.Equal(240, Offset<KvmSregs>("cr3"));
        Assert.Equal(248, Offset<KvmSregs>("cr4"));
        Assert.Equal(264, Offset<KvmSregs>("efer"));
        Assert.Equal(272, Offset<KvmSregs>("apic_base"));
        Assert.Equal(280, Offset<KvmSregs>("interrupt_bitmap"));
        Assert.Equal(128, Offset<KvmFpu>("fcw"));
        Assert.Equal(408, Offset<KvmFpu>("mxcsr"));
        Assert.Equal(128, Offset<KvmRegs>("rip"));
        Assert.Equal(136, Offset<KvmRegs>("rflags"));
    }

    [Fact]
    public void Kvm_run_header_and_exit_union_sit_where_the_kernel_puts_them()
    {
        Assert.Equal(0, Offset<KvmRun>("request_interrupt_window"));
        Assert.Equal(1, Offset<KvmRun>("immediate_exit"));
        Assert.Equal(8, Offset<KvmRun>("exit_reason"));
        Assert.Equal(12, Offset<KvmRun>("ready_for_interrupt_injection"));
        Assert.Equal(13, Offset<KvmRun>("if_flag"));
        Assert.Equal(14, Offset<KvmRun>("flags"));
        Assert.Equal(16, Offset<KvmRun>("cr8"));
        Assert.Equal(24, Offset<KvmRun>("apic_base"));
        Assert.Equal(288, Offset<KvmRun>("kvm_valid_regs"));
        Assert.Equal(296, Offset<KvmRun>("kvm_dirty_regs"));

        // Union members at 32, and their fields as the kernel's offsetof(struct kvm_run, io.port) etc. give them.
        Assert.Equal(32, Offset<KvmRun>("io"));
        Assert.Equal(32, Offset<KvmRun>("mmio"));
        Assert.Equal(32, Offset<KvmRun>("system_event"));
        Assert.Equal(33 - 32, Offset<KvmRunIo>("size"));
        Assert.Equal(34 - 32, Offset<KvmRunIo>("port"));
        Assert.Equal(36 - 32, Offset<KvmRunIo>("count"));
        Assert.Equal(40 - 32, Offset<KvmRunIo>("data_offset"));
        Assert.Equal(40 - 32, Offset<KvmRunMmio>("data"));
        Assert.Equal(48 - 32, Offset<KvmRunMmio>("len"));
        Assert.Equal(52 - 32, Offset<KvmRunMmio>("is_write"));
        Assert.Equal(40 - 32, Offset<KvmRunFailEntry>("cpu"));
        Assert.Equal(40 - 32, Offset<KvmRunInternal>("data"));
        Assert.Equal(40 - 32, Offset<KvmRunSystemEvent>("flags"));
    }

    [Fact]
    public void Ioctl_numbers_match_the_kernel_headers()
    {
        // From <linux/kvm.h> through the _IO/_IOR/_IOW/_IOWR macros, as a C compiler computes them.
        var expected = new Dictionary<string, (uint Actual, uint Kernel)>
        {
            ["KVM_GET_API_VERSION"] = (KvmIoctls.KVM_GET_API_VERSION, 0xae00),
            ["KVM_CREATE_VM"] = (KvmIoctls.KVM_CREATE_VM, 0xae01),
            ["KVM_CHECK_EXTENSION"] = (KvmIoctls.KVM_CHECK_EXTENSION, 0xae03),
            ["KVM_GET_VCPU_MMAP_SIZE"] = (KvmIoctls.KVM_GET_VCPU_MMAP_SIZE, 0xae04),
            ["KVM_GET_SUPPORTED_CPUID"] = (KvmIoctls.KVM_GET_SUPPORTED_CPUID, 0xc008ae05),
            ["KVM_CREATE_VCPU"] = (KvmIoctls.KVM_CREATE_VCPU, 0xae41),
            ["KVM_SET_USER_MEMORY_REGION"] = (KvmIoctls.KVM_SET_USER_MEMORY_REGION, 0x4020ae46),
            ["KVM_SET_TSS_ADDR"] = (KvmIoctls.KVM_SET_TSS_ADDR, 0xae47),
            ["KVM_CREATE_IRQCHIP"] = (KvmIoctls.KVM_CREATE_IRQCHIP, 0xae60),
            ["KVM_IRQ_LINE"] = (KvmIoctls.KVM_IRQ_LINE, 0x4008ae61),
            ["KVM_CREATE_PIT2"] = (KvmIoctls.KVM_CREATE_PIT2, 0x4040ae77),
            ["KVM_RUN"] = (KvmIoctls.KVM_RUN, 0xae80),
            ["KVM_GET_REGS"] = (KvmIoctls.KVM_GET_REGS, 0x8090ae81),
            ["KVM_SET_REGS"] = (KvmIoctls.KVM_SET_REGS, 0x4090ae82),
            ["KVM_GET_SREGS"] = (KvmIoctls.KVM_GET_SREGS, 0x8138ae83),
            ["KVM_SET_SREGS"] = (KvmIoctls.KVM_SET_SREGS, 0x4138ae84),
            ["KVM_SET_MSRS"] = (KvmIoctls.KVM_SET_MSRS, 0x4008ae89),
            ["KVM_GET_FPU"] = (KvmIoctls.KVM_GET_FPU, 0x81a0ae8c),
            ["KVM_SET_FPU"] = (KvmIoctls.KVM_SET_FPU, 0x41a0ae8d),
            ["KVM_GET_LAPIC"] = (KvmIoctls.KVM_GET_LAPIC, 0x8400ae8e),
            ["KVM_SET_LAPIC"] = (KvmIoctls.KVM_SET_LAPIC, 0x4400ae8f),
            ["KVM_SET_CPUID2"] = (KvmIoctls.KVM_SET_CPUID2, 0x4008ae90),
            ["KVM_GET_MP_STATE"] = (KvmIoctls.KVM_GET_MP_STATE, 0x8004ae98),
        };

        foreach (var (name, (actual, kernel)) in expected)
        {
            Assert.True(actual == kernel, $"{name} is 0x{actual:x}, the kernel's is 0x{kernel:x}");
        }
    }

    [Fact]
    public void Boot_params_and_setup_header_fields_sit_where_the_kernel_puts_them()
    {
        Assert.Equal(4096, Unsafe.SizeOf<BootParams>());
        Assert.Equal(123, Unsafe.SizeOf<SetupHeader>());
        Assert.Equal(20, Unsafe.SizeOf<BootE820Entry>());

        Assert.Equal(0x0c0, Offset<BootParams>("ext_ramdisk_image"));
        Assert.Equal(0x0c4, Offset<BootParams>("ext_ramdisk_size"));
        Assert.Equal(0x0c8, Offset<BootParams>("ext_cmd_line_ptr"));
        Assert.Equal(0x1e8, Offset<BootParams>("e820_entries"));
        Assert.Equal(0x1f1, Offset<BootParams>("hdr"));
        Assert.Equal(0x2d0, Offset<BootParams>("e820_table"));

        // offsetof(struct boot_params, hdr.X) in the kernel, i.e. the offsets boot.rst documents.
        var header = new Dictionary<string, int>
        {
            ["setup_sects"] = 0x1f1,
            ["syssize"] = 0x1f4,
            ["vid_mode"] = 0x1fa,
            ["boot_flag"] = 0x1fe,
            ["jump"] = 0x200,
            ["header"] = 0x202,
            ["version"] = 0x206,
            ["type_of_loader"] = 0x210,
            ["loadflags"] = 0x211,
            ["code32_start"] = 0x214,
            ["ramdisk_image"] = 0x218,
            ["ramdisk_size"] = 0x21c,
            ["heap_end_ptr"] = 0x224,
            ["cmd_line_ptr"] = 0x228,
            ["initrd_addr_max"] = 0x22c,
            ["kernel_alignment"] = 0x230,
            ["relocatable_kernel"] = 0x234,
            ["xloadflags"] = 0x236,
            ["cmdline_size"] = 0x238,
            ["payload_offset"] = 0x248,
            ["payload_length"] = 0x24c,
            ["pref_address"] = 0x258,
            ["init_size"] = 0x260,
            ["handover_offset"] = 0x264,
        };
        foreach (var (field, offset) in header)
        {
            Assert.True(0x1f1 + Offset<SetupHeader>(field) == offset, $"hdr.{field} is at 0x{0x1f1 + Offset<SetupHeader>(field):x}, the kernel's at 0x{offset:x}");
        }
    }

    private static int Offset<T>(string field) => (int)Marshal.OffsetOf<T>(field);
}
