// The Linux boot protocol against the project's real demo kernel (a Debian cloud bzImage) and initramfs: header
// parsing, where things go, the zero page's contents, and the bytes really loaded into guest memory.
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class LinuxBootTests
{
    private const ulong Mib = 1 << 20;

    [Fact]
    public async Task Demo_kernel_setup_header_parses_as_a_64_bit_bzImage()
    {
        var image = await DemoImage.GetAsync();
        var kernel = BzImage.Read(image.KernelPath);
        var file = await File.ReadAllBytesAsync(image.KernelPath);

        Assert.Equal(SetupHeader.HeaderMagic, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(0x202)));
        Assert.Equal("HdrS", Encoding.ASCII.GetString(file, 0x202, 4));
        Assert.True(kernel.Version >= BzImage.MinimumProtocol, $"protocol 0x{kernel.Version:x}");
        Assert.Equal(file[0x1f1] == 0 ? 4 : file[0x1f1], kernel.SetupSectors);
        Assert.Equal((kernel.SetupSectors + 1) * 512L, kernel.ProtectedModeOffset);
        Assert.NotEqual(0, kernel.Header.xloadflags & SetupHeader.XlfKernel64);
        Assert.NotEqual(0, kernel.Header.loadflags & SetupHeader.LoadedHigh);

        // syssize paragraphs of protected-mode code follow the setup sectors; a signed kernel may carry more after it.
        Assert.Equal((ulong)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(0x1f4)) * 16, kernel.ProtectedModeSize);
        Assert.True(kernel.ProtectedModeOffset + (long)kernel.ProtectedModeSize <= file.Length);
        Assert.True(file.Length - kernel.ProtectedModeOffset - (long)kernel.ProtectedModeSize < 64 * 1024,
            "more than a signature's worth of bytes after the protected-mode kernel");
    }

    [Fact]
    public void Headers_that_are_not_a_bootable_bzImage_are_refused_with_the_reason()
    {
        var good = SyntheticHeader();
        Assert.Equal(0x020f, BzImage.Parse(good, good.Length).Version);

        var noFlag = SyntheticHeader();
        noFlag[0x1fe] = 0;
        Assert.Contains("0xAA55", Refusal(noFlag));

        var noMagic = SyntheticHeader();
        noMagic[0x202] = (byte)'X';
        Assert.Contains("HdrS", Refusal(noMagic));

        var old = SyntheticHeader();
        BinaryPrimitives.WriteUInt16LittleEndian(old.AsSpan(0x206), 0x0204);
        Assert.Contains("2.04", Refusal(old));

        var zImage = SyntheticHeader();
        zImage[0x211] = 0;
        Assert.Contains("zImage", Refusal(zImage));

        var no64 = SyntheticHeader();
        BinaryPrimitives.WriteUInt16LittleEndian(no64.AsSpan(0x236), 0);
        Assert.Contains("64-bit", Refusal(no64));

        var truncated = SyntheticHeader();
        BinaryPrimitives.WriteUInt32LittleEndian(truncated.AsSpan(0x1f4), 0x100000);
        Assert.Contains("syssize", Refusal(truncated));

        Assert.Contains("too short", Assert.Throws<HypervisorException>(() => BzImage.Parse(new byte[100], 100)).Message);
    }

    [Fact]
    public async Task Plan_puts_the_kernel_at_1_MiB_and_the_initramfs_high_and_clear_of_the_decompressor()
    {
        var image = await DemoImage.GetAsync();
        var kernel = BzImage.Read(image.KernelPath);
        var initrdSize = (ulong)new FileInfo(image.InitrdPath).Length;

        var layout = LinuxBoot.Plan(128 * Mib, kernel, initrdSize, KvmDriver.BaseAppend);

        Assert.Equal(0x100000UL, layout.KernelAddress);
        Assert.Equal(0x100200UL, layout.EntryPoint);
        Assert.Equal(kernel.ProtectedModeSize, layout.KernelSize);
        Assert.Equal(0UL, layout.InitrdAddress % 4096);
        Assert.True(layout.InitrdAddress + initrdSize <= 128 * Mib);
        Assert.True(layout.InitrdAddress + initrdSize - 1 <= kernel.InitrdAddressMax);
        Assert.True(128 * Mib - (layout.InitrdAddress + initrdSize) < 4096, "the initramfs is not as high as it can go");

        // Clear of where the kernel decompresses: from pref_address (16 MiB here) for init_size bytes.
        Assert.True(layout.InitrdAddress >= kernel.Header.pref_address + kernel.InitSize);
        Assert.True(layout.CommandLineAddress + kernel.CommandLineSize < LinuxBoot.EbdaStart);
    }

    [Fact]
    public async Task Too_little_memory_or_too_long_a_command_line_is_refused_before_anything_is_loaded()
    {
        var image = await DemoImage.GetAsync();
        var kernel = BzImage.Read(image.KernelPath);

        var small = Assert.Throws<HypervisorException>(() => LinuxBoot.Plan(48 * Mib, kernel, 1 * Mib, "console=ttyS0"));
        Assert.Contains("too little", small.Message);
        Assert.Contains("at least", small.Message);

        var longLine = new string('x', (int)kernel.CommandLineSize + 1);
        Assert.Contains("command line", Assert.Throws<HypervisorException>(() => LinuxBoot.Plan(128 * Mib, kernel, 1 * Mib, longLine)).Message);
        Assert.Contains("command line", Assert.Throws<HypervisorException>(() => LinuxBoot.Plan(128 * Mib, kernel, 1 * Mib, "a\nb")).Message);
    }

    [Fact]
    public async Task Boot_params_carry_the_e820_map_command_line_and_initramfs()
    {
        var image = await DemoImage.GetAsync();
        var kernel = BzImage.Read(image.KernelPath);
        var layout = LinuxBoot.Plan(256 * Mib, kernel, 1_000_000, "console=ttyS0");

        var zeroPage = LinuxBoot.BuildBootParams(kernel, layout, 256 * Mib);
        var bytes = MemoryMarshal.AsBytes(new ReadOnlySpan<BootParams>(in zeroPage)).ToArray();

        // The file's own setup header is carried over, then the loader's fields.
        Assert.Equal("HdrS", Encoding.ASCII.GetString(bytes, 0x202, 4));
        Assert.Equal(kernel.Version, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(0x206)));
        Assert.Equal(0xff, bytes[0x210]); // type_of_loader
        Assert.NotEqual(0, bytes[0x211] & SetupHeader.LoadedHigh);
        Assert.Equal((uint)layout.CommandLineAddress, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(0x228)));
        Assert.Equal((uint)layout.InitrdAddress, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(0x218)));
        Assert.Equal(1_000_000u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(0x21c)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(0x0c0))); // below 4 GiB: no high bits
        Assert.Equal(0, bytes[0x1ef]); // sentinel: the kernel would wipe "uninitialised" fields otherwise

        // e820: low RAM up to the EBDA, the EBDA reserved, RAM from 1 MiB to the end.
        Assert.Equal(3, bytes[0x1e8]);
        var e820 = Enumerable.Range(0, 3).Select(i => (
            Addr: BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(0x2d0 + (i * 20))),
            Size: BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(0x2d0 + (i * 20) + 8)),
            Type: BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(0x2d0 + (i * 20) + 16)))).ToArray();
        Assert.Equal((0UL, 0x9fc00UL, 1u), e820[0]);
        Assert.Equal((0x9fc00UL, 0x400UL, 2u), e820[1]);
        Assert.Equal((0x100000UL, (256 * Mib) - 0x100000, 1u), e820[2]);
        Assert.True(layout.InitrdAddress + layout.InitrdSize <= e820[2].Addr + e820[2].Size);
    }

    [Fact]
    public async Task Load_copies_the_protected_mode_kernel_initramfs_command_line_and_zero_page_into_guest_memory()
    {
        var image = await DemoImage.GetAsync();
        var kernel = BzImage.Read(image.KernelPath);
        using var memory = new GuestMemory(128 * Mib);

        var layout = LinuxBoot.Load(memory, kernel, image.KernelPath, image.InitrdPath, "console=ttyS0 quiet");

        var file = await File.ReadAllBytesAsync(image.KernelPath);
        var pm = file.AsSpan((int)kernel.ProtectedModeOffset, (int)kernel.ProtectedModeSize);
        Assert.True(pm.SequenceEqual(memory.Read(layout.KernelAddress, pm.Length)), "protected-mode kernel differs at 1 MiB");
        Assert.Equal(0UL, memory.ReadUInt64(layout.KernelAddress + layout.KernelSize)); // nothing past syssize (the signature stays out)

        var initrd = await File.ReadAllBytesAsync(image.InitrdPath);
        Assert.True(initrd.AsSpan().SequenceEqual(memory.Read(layout.InitrdAddress, initrd.Length)), "initramfs differs");

        Assert.Equal("console=ttyS0 quiet\0", Encoding.ASCII.GetString(memory.Read(layout.CommandLineAddress, 20)));
        var zeroPage = memory.Read(LinuxBoot.BootParamsAddress, 4096);
        Assert.Equal("HdrS", Encoding.ASCII.GetString(zeroPage, 0x202, 4));
        Assert.Equal((uint)layout.InitrdAddress, BinaryPrimitives.ReadUInt32LittleEndian(zeroPage.AsSpan(0x218)));
    }

    /// <summary>A minimal valid bzImage header (protocol 2.15, 64-bit entry) with 4 KiB of "kernel" after 2 setup sectors.</summary>
    private static byte[] SyntheticHeader()
    {
        var file = new byte[(3 * 512) + 4096];
        file[0x1f1] = 2; // setup_sects
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(0x1f4), 4096 / 16);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(0x1fe), 0xaa55);
        file[0x200] = 0xeb;
        file[0x201] = 0x6a; // jump to 0x26c, the end of a 2.15 header
        Encoding.ASCII.GetBytes("HdrS").CopyTo(file, 0x202);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(0x206), 0x020f);
        file[0x211] = SetupHeader.LoadedHigh;
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(0x22c), 0x7fffffff);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(0x238), 2047);
        BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(0x236), SetupHeader.XlfKernel64);
        return file;
    }

    private static string Refusal(byte[] head) => Assert.Throws<HypervisorException>(() => BzImage.Parse(head, head.Length)).Message;
}
