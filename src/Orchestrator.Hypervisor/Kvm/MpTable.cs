// An Intel MultiProcessor Specification 1.4 table in the EBDA: without ACPI it is how Linux learns about the
// application processors and the IOAPIC (Firecracker writes the same one). Interrupt routing is the identity that
// KVM's default GSI routing implements: ISA IRQ n -> IOAPIC pin n, LINT0 ExtINT, LINT1 NMI.
using System.Buffers.Binary;
using System.Text;

namespace Orchestrator.Hypervisor.Kvm;

internal static class MpTable
{
    public const ulong Address = LinuxBoot.EbdaStart;

    /// <summary>Linux only looks for the floating pointer in the EBDA's first KiB, where the whole table must fit.</summary>
    public const int MaxSize = 1024;

    public const uint LocalApicAddress = 0xfee00000;
    public const uint IoApicAddress = 0xfec00000;
    public const int IsaIrqs = 16;

    /// <summary>The most vCPUs whose processor entries still fit in <see cref="MaxSize"/>.</summary>
    public const int MaxCpus = (MaxSize - FloatingPointerSize - HeaderSize - BusSize - IoApicSize - (IsaIrqs * IntSrcSize) - (2 * IntSrcSize)) / ProcessorSize;

    private const int FloatingPointerSize = 16;
    private const int HeaderSize = 44;
    private const int ProcessorSize = 20;
    private const int BusSize = 8;
    private const int IoApicSize = 8;
    private const int IntSrcSize = 8;

    private const byte ApicVersion = 0x14;
    private const byte IoApicVersion = 0x11;
    private const byte CpuEnabled = 0x01;
    private const byte CpuBootProcessor = 0x02;
    private const uint CpuSignature = 0x600; // family 6: what the entry would say on any modern CPU
    private const uint CpuFeatureFpu = 0x001;
    private const uint CpuFeatureApic = 0x200;
    private const byte MpInt = 0;
    private const byte MpNmi = 1;
    private const byte MpExtInt = 3;

    /// <summary>Builds the table for <paramref name="cpus"/> processors (APIC ids 0..cpus-1, the IOAPIC's id after them).</summary>
    public static byte[] Build(int cpus)
    {
        if (cpus < 1 || cpus > MaxCpus)
        {
            throw new ArgumentOutOfRangeException(nameof(cpus), cpus, $"the MP table holds 1..{MaxCpus} processors");
        }

        var ioApicId = (byte)cpus;
        var entries = new List<byte[]>();
        for (var cpu = 0; cpu < cpus; cpu++)
        {
            var processor = new byte[ProcessorSize];
            processor[0] = 0; // MP_PROCESSOR
            processor[1] = (byte)cpu;
            processor[2] = ApicVersion;
            processor[3] = (byte)(CpuEnabled | (cpu == 0 ? CpuBootProcessor : 0));
            BinaryPrimitives.WriteUInt32LittleEndian(processor.AsSpan(4), CpuSignature);
            BinaryPrimitives.WriteUInt32LittleEndian(processor.AsSpan(8), CpuFeatureFpu | CpuFeatureApic);
            entries.Add(processor);
        }

        var bus = new byte[BusSize];
        bus[0] = 1; // MP_BUS
        bus[1] = 0; // bus id
        Encoding.ASCII.GetBytes("ISA   ").CopyTo(bus, 2);
        entries.Add(bus);

        var ioApic = new byte[IoApicSize];
        ioApic[0] = 2; // MP_IOAPIC
        ioApic[1] = ioApicId;
        ioApic[2] = IoApicVersion;
        ioApic[3] = 1; // enabled
        BinaryPrimitives.WriteUInt32LittleEndian(ioApic.AsSpan(4), IoApicAddress);
        entries.Add(ioApic);

        for (var irq = 0; irq < IsaIrqs; irq++)
        {
            // MP_INTSRC: type, irqtype, irqflag (0: conforms to the bus), source bus, source irq, IOAPIC id, pin.
            entries.Add([3, MpInt, 0, 0, 0, (byte)irq, ioApicId, (byte)irq]);
        }

        // MP_LINTSRC: the PIC's output into every local APIC's LINT0, NMI into LINT1.
        entries.Add([4, MpExtInt, 0, 0, 0, 0, 0xff, 0]);
        entries.Add([4, MpNmi, 0, 0, 0, 0, 0xff, 1]);

        var tableLength = HeaderSize + entries.Sum(e => e.Length);
        var table = new byte[FloatingPointerSize + tableLength];

        // The floating pointer ("_MP_") first, then the configuration table ("PCMP") right after it.
        var floating = table.AsSpan(0, FloatingPointerSize);
        Encoding.ASCII.GetBytes("_MP_").CopyTo(floating);
        BinaryPrimitives.WriteUInt32LittleEndian(floating[4..], (uint)(Address + FloatingPointerSize));
        floating[8] = 1; // length in 16-byte units
        floating[9] = 4; // spec revision 1.4
        // feature bytes 11-15 zero: a configuration table is present; no IMCR (virtual wire mode).
        floating[10] = Checksum(floating);

        var header = table.AsSpan(FloatingPointerSize, HeaderSize);
        Encoding.ASCII.GetBytes("PCMP").CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], (ushort)tableLength);
        header[6] = 4; // spec revision
        Encoding.ASCII.GetBytes("ORCHESTR").CopyTo(header[8..]);
        Encoding.ASCII.GetBytes("KVM MICROVM ").CopyTo(header[16..]);
        BinaryPrimitives.WriteUInt16LittleEndian(header[34..], (ushort)entries.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(header[36..], LocalApicAddress);

        var offset = FloatingPointerSize + HeaderSize;
        foreach (var entry in entries)
        {
            entry.CopyTo(table, offset);
            offset += entry.Length;
        }

        table[FloatingPointerSize + 7] = Checksum(table.AsSpan(FloatingPointerSize, tableLength));
        return table;
    }

    /// <summary>The byte that makes the structure's bytes sum to zero (mod 256); the checksum byte itself must be 0 when called.</summary>
    internal static byte Checksum(ReadOnlySpan<byte> bytes)
    {
        var sum = 0;
        foreach (var b in bytes)
        {
            sum += b;
        }

        return (byte)(-sum & 0xff);
    }
}
