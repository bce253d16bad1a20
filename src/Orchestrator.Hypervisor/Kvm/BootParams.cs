// The Linux x86 boot protocol's structures (asm/bootparam.h, Documentation/arch/x86/boot.rst): struct boot_params (the
// "zero page") and struct setup_header, with the fields this loader reads or writes at the kernel's offsets.
using System.Runtime.InteropServices;

namespace Orchestrator.Hypervisor.Kvm;

/// <summary>struct setup_header: 123 bytes, packed, at offset 0x1f1 of both a bzImage and boot_params.</summary>
[StructLayout(LayoutKind.Explicit, Size = 0x7b)]
internal struct SetupHeader
{
    public const int OffsetInBootParams = 0x1f1;

    public const ushort BootFlagMagic = 0xAA55;
    public const uint HeaderMagic = 0x53726448; // "HdrS" little-endian

    public const byte LoadedHigh = 0x01;   // loadflags: protected-mode code loads at 0x100000 (a bzImage)
    public const byte CanUseHeap = 0x80;
    public const ushort XlfKernel64 = 0x01; // xloadflags: has the 64-bit entry at load address + 0x200
    public const ushort XlfCanBeLoadedAbove4G = 0x02;

    [FieldOffset(0x00)] public byte setup_sects;
    [FieldOffset(0x01)] public ushort root_flags;
    [FieldOffset(0x03)] public uint syssize;
    [FieldOffset(0x07)] public ushort ram_size;
    [FieldOffset(0x09)] public ushort vid_mode;
    [FieldOffset(0x0b)] public ushort root_dev;
    [FieldOffset(0x0d)] public ushort boot_flag;
    [FieldOffset(0x0f)] public ushort jump;
    [FieldOffset(0x11)] public uint header;
    [FieldOffset(0x15)] public ushort version;
    [FieldOffset(0x17)] public uint realmode_swtch;
    [FieldOffset(0x1b)] public ushort start_sys_seg;
    [FieldOffset(0x1d)] public ushort kernel_version;
    [FieldOffset(0x1f)] public byte type_of_loader;
    [FieldOffset(0x20)] public byte loadflags;
    [FieldOffset(0x21)] public ushort setup_move_size;
    [FieldOffset(0x23)] public uint code32_start;
    [FieldOffset(0x27)] public uint ramdisk_image;
    [FieldOffset(0x2b)] public uint ramdisk_size;
    [FieldOffset(0x2f)] public uint bootsect_kludge;
    [FieldOffset(0x33)] public ushort heap_end_ptr;
    [FieldOffset(0x35)] public byte ext_loader_ver;
    [FieldOffset(0x36)] public byte ext_loader_type;
    [FieldOffset(0x37)] public uint cmd_line_ptr;
    [FieldOffset(0x3b)] public uint initrd_addr_max;
    [FieldOffset(0x3f)] public uint kernel_alignment;
    [FieldOffset(0x43)] public byte relocatable_kernel;
    [FieldOffset(0x44)] public byte min_alignment;
    [FieldOffset(0x45)] public ushort xloadflags;
    [FieldOffset(0x47)] public uint cmdline_size;
    [FieldOffset(0x4b)] public uint hardware_subarch;
    [FieldOffset(0x4f)] public ulong hardware_subarch_data;
    [FieldOffset(0x57)] public uint payload_offset;
    [FieldOffset(0x5b)] public uint payload_length;
    [FieldOffset(0x5f)] public ulong setup_data;
    [FieldOffset(0x67)] public ulong pref_address;
    [FieldOffset(0x6f)] public uint init_size;
    [FieldOffset(0x73)] public uint handover_offset;
    [FieldOffset(0x77)] public uint kernel_info_offset;
}

/// <summary>struct boot_e820_entry: 20 bytes, packed.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct BootE820Entry
{
    public const uint Ram = 1;      // E820_TYPE_RAM
    public const uint Reserved = 2; // E820_TYPE_RESERVED

    public ulong addr;
    public ulong size;
    public uint type;
}

/// <summary>struct boot_params: the 4 KiB zero page the 64-bit entry finds through RSI.</summary>
[StructLayout(LayoutKind.Explicit, Size = 4096)]
internal unsafe struct BootParams
{
    public const int E820MaxEntries = 128; // E820_MAX_ENTRIES_ZEROPAGE

    [FieldOffset(0x0c0)] public uint ext_ramdisk_image;
    [FieldOffset(0x0c4)] public uint ext_ramdisk_size;
    [FieldOffset(0x0c8)] public uint ext_cmd_line_ptr;
    [FieldOffset(0x1e8)] public byte e820_entries;
    [FieldOffset(0x1ef)] public byte sentinel;
    [FieldOffset(SetupHeader.OffsetInBootParams)] public SetupHeader hdr;
    [FieldOffset(0x2d0)] public fixed byte e820_table[E820MaxEntries * 20];
}
