// The Linux x86 boot protocol, the way a 64-bit loader uses it (Documentation/arch/x86/boot.rst, "64-bit Boot
// Protocol"): read the bzImage's setup header, load its protected-mode part at 1 MiB, put the initramfs high in RAM,
// and fill the zero page (boot_params) with the e820 map, the command line and the initramfs location.
using System.Runtime.InteropServices;
using System.Text;

namespace Orchestrator.Hypervisor.Kvm;

/// <summary>A bzImage's setup header, checked: what a loader needs to know to place and start the kernel.</summary>
internal sealed class BzImage
{
    /// <summary>Oldest protocol accepted: 2.06 added cmdline_size; anything built this century is newer.</summary>
    public const ushort MinimumProtocol = 0x0206;

    private BzImage(SetupHeader header, byte[] headerBytes, long fileLength)
    {
        Header = header;
        HeaderBytes = headerBytes;
        FileLength = fileLength;
    }

    public SetupHeader Header { get; }

    /// <summary>Bytes 0x1f1..end of the setup header as the file has them: the loader copies these into boot_params.</summary>
    public byte[] HeaderBytes { get; }

    public long FileLength { get; }

    public ushort Version => Header.version;

    /// <summary>setup_sects, where 0 means 4 (boot.rst: "for backwards compatibility").</summary>
    public int SetupSectors => Header.setup_sects == 0 ? 4 : Header.setup_sects;

    /// <summary>The protected-mode kernel starts after the boot sector and the setup sectors.</summary>
    public long ProtectedModeOffset => (SetupSectors + 1) * 512L;

    /// <summary>syssize counts 16-byte paragraphs of protected-mode code. Signed kernels carry a signature after it.</summary>
    public ulong ProtectedModeSize => (ulong)Header.syssize * 16;

    /// <summary>Largest command line the kernel accepts, without the terminating NUL.</summary>
    public uint CommandLineSize => Header.cmdline_size;

    public uint InitrdAddressMax => Header.initrd_addr_max;

    /// <summary>Memory the kernel needs from where it runs while it decompresses and sets up (protocol 2.10+).</summary>
    public uint InitSize => Version >= 0x020a ? Header.init_size : (uint)Math.Min(ProtectedModeSize * 4, uint.MaxValue);

    public static BzImage Read(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        var head = new byte[(int)Math.Min(file.Length, 4096)];
        file.ReadExactly(head);
        return Parse(head, file.Length, path);
    }

    /// <summary>Parses and checks the header in <paramref name="head"/> (the file's first bytes, at least 1 KiB).</summary>
    public static BzImage Parse(ReadOnlySpan<byte> head, long fileLength, string what = "kernel")
    {
        const int headerEnd = SetupHeader.OffsetInBootParams + 0x7b;
        if (head.Length < 1024 || fileLength < 1024)
        {
            throw new HypervisorException($"{what}: {fileLength} bytes is too short to be a bzImage");
        }

        var header = MemoryMarshal.Read<SetupHeader>(head[SetupHeader.OffsetInBootParams..headerEnd]);
        if (header.boot_flag != SetupHeader.BootFlagMagic)
        {
            throw new HypervisorException($"{what}: not a Linux kernel image (no 0xAA55 boot flag at 0x1fe)");
        }

        if (header.header != SetupHeader.HeaderMagic)
        {
            throw new HypervisorException($"{what}: no \"HdrS\" setup header at 0x202 (a pre-2.00 or non-Linux image)");
        }

        if (header.version < MinimumProtocol)
        {
            throw new HypervisorException(
                $"{what}: boot protocol {header.version >> 8}.{header.version & 0xff:D2} is older than the 2.06 this loader needs");
        }

        if ((header.loadflags & SetupHeader.LoadedHigh) == 0)
        {
            throw new HypervisorException($"{what}: a zImage (loaded low) rather than a bzImage");
        }

        if (header.version >= 0x020c && (header.xloadflags & SetupHeader.XlfKernel64) == 0)
        {
            throw new HypervisorException($"{what}: the kernel has no 64-bit entry point (XLF_KERNEL_64 unset); build it for x86-64");
        }

        // The header runs from 0x1f1 to the end of the jump at 0x200 (0x202 + its 8-bit displacement).
        var end = 0x202 + head[0x201];
        if (end > head.Length)
        {
            throw new HypervisorException($"{what}: setup header end 0x{end:x} is implausible");
        }

        var image = new BzImage(header, head[SetupHeader.OffsetInBootParams..Math.Min(end, headerEnd)].ToArray(), fileLength);
        if (image.ProtectedModeSize == 0 || image.ProtectedModeOffset + (long)image.ProtectedModeSize > fileLength)
        {
            throw new HypervisorException(
                $"{what}: syssize says {image.ProtectedModeSize} bytes of kernel at {image.ProtectedModeOffset}, but the file has {fileLength}");
        }

        return image;
    }
}

/// <summary>Where a Linux boot put things in guest memory.</summary>
internal sealed record LinuxBootLayout(
    ulong KernelAddress,
    ulong KernelSize,
    ulong EntryPoint,
    ulong BootParamsAddress,
    ulong CommandLineAddress,
    ulong InitrdAddress,
    ulong InitrdSize,
    string CommandLine);

/// <summary>Loads a bzImage and an initramfs into guest memory and writes boot_params.</summary>
internal static class LinuxBoot
{
    /// <summary>boot_params, below the page tables (the Firecracker layout).</summary>
    public const ulong BootParamsAddress = 0x7000;
    public const ulong CommandLineAddress = 0x20000;

    /// <summary>Where the protocol puts the protected-mode kernel of a bzImage (code32_start's default).</summary>
    public const ulong KernelAddress = 0x100000;

    /// <summary>The 64-bit entry (startup_64) is 0x200 bytes into the protected-mode kernel.</summary>
    public const ulong Entry64Offset = 0x200;

    /// <summary>The top of conventional memory we report: the last KiB below 640 KiB is the EBDA, where the MP table lives.</summary>
    public const ulong EbdaStart = 0x9fc00;

    private const ulong PageSize = 0x1000;

    /// <summary>
    /// Loads <paramref name="kernel"/> and <paramref name="initrdPath"/> into <paramref name="memory"/> and writes the zero page.
    /// Throws <see cref="HypervisorException"/> when the command line is too long or memory too small.
    /// </summary>
    public static LinuxBootLayout Load(GuestMemory memory, BzImage kernel, string kernelPath, string initrdPath, string commandLine)
    {
        var initrdSize = (ulong)new FileInfo(initrdPath).Length;
        var layout = Plan(memory.Size, kernel, initrdSize, commandLine);

        memory.LoadFile(kernelPath, kernel.ProtectedModeOffset, layout.KernelSize, layout.KernelAddress);
        memory.LoadFile(initrdPath, 0, layout.InitrdSize, layout.InitrdAddress);

        var cmdline = Encoding.ASCII.GetBytes(layout.CommandLine + "\0");
        memory.Write(layout.CommandLineAddress, cmdline);

        var zeroPage = BuildBootParams(kernel, layout, memory.Size);
        memory.Write(layout.BootParamsAddress, MemoryMarshal.AsBytes(new ReadOnlySpan<BootParams>(in zeroPage)));
        return layout;
    }

    /// <summary>Decides where everything goes without touching memory (pure; the tests check it).</summary>
    public static LinuxBootLayout Plan(ulong memorySize, BzImage kernel, ulong initrdSize, string commandLine)
    {
        if (commandLine.Length > kernel.CommandLineSize || commandLine.Any(c => c is < ' ' or > '~'))
        {
            throw new HypervisorException(
                $"kernel command line must be at most {kernel.CommandLineSize} printable ASCII characters ({commandLine.Length} given)");
        }

        // The decompressor runs the kernel at max(load address aligned up, pref_address) and needs init_size from
        // there (boot.rst: init_size); the initramfs must stay clear of that range.
        var alignment = Math.Max(kernel.Header.kernel_alignment, 0x200000u);
        var runAddress = Math.Max(AlignUp(KernelAddress, alignment), kernel.Version >= 0x020a ? kernel.Header.pref_address : 0);
        var kernelEnd = Math.Max(KernelAddress + kernel.ProtectedModeSize, runAddress + kernel.InitSize);

        // The initramfs goes as high as allowed: below the end of RAM and below initrd_addr_max, page aligned.
        var ceiling = Math.Min(memorySize, (ulong)kernel.InitrdAddressMax + 1);
        if (initrdSize > ceiling)
        {
            throw new HypervisorException($"the initramfs ({initrdSize >> 20} MiB) does not fit below 0x{ceiling:x}");
        }

        var initrdAddress = (ceiling - initrdSize) & ~(PageSize - 1);
        if (initrdAddress < kernelEnd)
        {
            var needed = (kernelEnd + AlignUp(initrdSize, PageSize) + (1 << 20) - 1) >> 20;
            throw new HypervisorException(
                $"{memorySize >> 20} MiB of guest memory is too little for this kernel and initramfs: at least {needed} MiB " +
                $"(the kernel needs up to 0x{kernelEnd:x} to decompress, the initramfs {initrdSize >> 10} KiB above it)");
        }

        return new LinuxBootLayout(
            KernelAddress,
            kernel.ProtectedModeSize,
            KernelAddress + Entry64Offset,
            BootParamsAddress,
            CommandLineAddress,
            initrdAddress,
            initrdSize,
            commandLine);
    }

    /// <summary>The zero page: the file's setup header, then what this loader decided (boot.rst, "Details of header fields").</summary>
    public static unsafe BootParams BuildBootParams(BzImage kernel, LinuxBootLayout layout, ulong memorySize)
    {
        var zeroPage = default(BootParams);
        var bytes = MemoryMarshal.AsBytes(new Span<BootParams>(ref zeroPage));
        kernel.HeaderBytes.CopyTo(bytes[SetupHeader.OffsetInBootParams..]);

        zeroPage.hdr.type_of_loader = 0xff; // "undefined" loader: no registered loader id
        zeroPage.hdr.loadflags = (byte)(zeroPage.hdr.loadflags | SetupHeader.LoadedHigh);
        zeroPage.hdr.code32_start = (uint)layout.KernelAddress;
        zeroPage.hdr.cmd_line_ptr = (uint)layout.CommandLineAddress;
        zeroPage.ext_cmd_line_ptr = (uint)(layout.CommandLineAddress >> 32);
        zeroPage.hdr.ramdisk_image = (uint)layout.InitrdAddress;
        zeroPage.ext_ramdisk_image = (uint)(layout.InitrdAddress >> 32);
        zeroPage.hdr.ramdisk_size = (uint)layout.InitrdSize;
        zeroPage.ext_ramdisk_size = (uint)(layout.InitrdSize >> 32);

        var map = E820Map(memorySize);
        // Safe: zeroPage is a local (it cannot move), and the span covers exactly its e820_table array.
        var table = MemoryMarshal.Cast<byte, BootE820Entry>(new Span<byte>(zeroPage.e820_table, BootParams.E820MaxEntries * 20));
        map.CopyTo(table);
        zeroPage.e820_entries = (byte)map.Length;
        return zeroPage;
    }

    /// <summary>
    /// RAM below the EBDA, the EBDA reserved (the MP table is there), nothing between 640 KiB and 1 MiB (the legacy
    /// VGA/BIOS hole, which Linux reserves by itself), and RAM from 1 MiB to the end.
    /// </summary>
    public static BootE820Entry[] E820Map(ulong memorySize) =>
    [
        new() { addr = 0, size = EbdaStart, type = BootE820Entry.Ram },
        new() { addr = EbdaStart, size = 0xa0000 - EbdaStart, type = BootE820Entry.Reserved },
        new() { addr = KernelAddress, size = memorySize - KernelAddress, type = BootE820Entry.Ram },
    ];

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) / alignment * alignment;
}
