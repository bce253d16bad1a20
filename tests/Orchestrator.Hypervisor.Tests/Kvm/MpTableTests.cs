using System.Buffers.Binary;
using System.Text;
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class MpTableTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(KvmDriver.MaxVcpus)]
    public void Mp_table_is_checksummed_and_lists_every_cpu_the_bus_and_the_ioapic(int cpus)
    {
        var table = MpTable.Build(cpus);
        Assert.True(table.Length <= MpTable.MaxSize);

        // Floating pointer: "_MP_", pointing right behind itself, 16 bytes summing to 0.
        Assert.Equal("_MP_", Encoding.ASCII.GetString(table, 0, 4));
        Assert.Equal((uint)MpTable.Address + 16, BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(4)));
        Assert.Equal(0, Sum(table.AsSpan(0, 16)));

        // Configuration table: "PCMP", its length and entry count, summing to 0.
        var header = table.AsSpan(16);
        Assert.Equal("PCMP", Encoding.ASCII.GetString(table, 16, 4));
        var length = BinaryPrimitives.ReadUInt16LittleEndian(header[4..]);
        Assert.Equal(table.Length - 16, length);
        Assert.Equal(0, Sum(header[..length]));
        Assert.Equal(MpTable.LocalApicAddress, BinaryPrimitives.ReadUInt32LittleEndian(header[36..]));

        // Entries: cpus processors (the first is the BSP), one ISA bus, one IOAPIC, 16 ISA interrupts, 2 local ones.
        var count = BinaryPrimitives.ReadUInt16LittleEndian(header[34..]);
        Assert.Equal(cpus + 1 + 1 + 16 + 2, count);
        var offset = 44;
        for (var cpu = 0; cpu < cpus; cpu++)
        {
            Assert.Equal(0, header[offset]);          // MP_PROCESSOR
            Assert.Equal(cpu, header[offset + 1]);    // APIC id = vCPU index (KVM's default)
            Assert.Equal(cpu == 0 ? 3 : 1, header[offset + 3]); // enabled, BSP
            offset += 20;
        }

        Assert.Equal(1, header[offset]);
        Assert.Equal("ISA   ", Encoding.ASCII.GetString(header.Slice(offset + 2, 6)));
        offset += 8;
        Assert.Equal(2, header[offset]);
        Assert.Equal(cpus, header[offset + 1]); // IOAPIC id after the CPUs'
        Assert.Equal(MpTable.IoApicAddress, BinaryPrimitives.ReadUInt32LittleEndian(header[(offset + 4)..]));
        offset += 8;
        for (var irq = 0; irq < 16; irq++)
        {
            Assert.Equal(3, header[offset]);         // MP_INTSRC
            Assert.Equal(irq, header[offset + 5]);   // ISA IRQ n
            Assert.Equal(irq, header[offset + 7]);   // -> IOAPIC pin n
            offset += 8;
        }

        Assert.Equal(4, header[offset]);
        Assert.Equal(4, header[offset + 8]);
    }

    [Fact]
    public void Too_many_cpus_for_the_ebda_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => MpTable.Build(MpTable.MaxCpus + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => MpTable.Build(0));
        Assert.True(MpTable.MaxCpus >= KvmDriver.MaxVcpus);
    }

    private static int Sum(ReadOnlySpan<byte> bytes)
    {
        var sum = 0;
        foreach (var b in bytes)
        {
            sum += b;
        }

        return sum & 0xff;
    }
}
