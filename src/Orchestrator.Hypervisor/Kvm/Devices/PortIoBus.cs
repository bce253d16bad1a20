// Port I/O dispatch for KVM_EXIT_IO: devices claim port ranges; what nobody claims reads as all ones (an ISA bus with
// nothing on it floats high, which is how Linux's probes tell an absent device) and swallows writes.
namespace Orchestrator.Hypervisor.Kvm.Devices;

/// <summary>A device on the port I/O bus, accessed one byte at a time (every device here is byte-wide).</summary>
internal interface IPortDevice
{
    byte Read(ushort port);

    void Write(ushort port, byte value);
}

/// <summary>An interrupt line into the in-kernel PIC/IOAPIC.</summary>
internal interface IInterruptLine
{
    /// <summary>An edge: the line goes high then low (ISA interrupts are edge-triggered).</summary>
    void Pulse();
}

internal sealed class PortIoBus
{
    private readonly List<(ushort First, ushort Count, IPortDevice Device)> _ranges = [];
    private long _unclaimedReads;
    private long _unclaimedWrites;

    public long UnclaimedReads => Interlocked.Read(ref _unclaimedReads);
    public long UnclaimedWrites => Interlocked.Read(ref _unclaimedWrites);

    public PortIoBus Register(ushort first, ushort count, IPortDevice device)
    {
        foreach (var (otherFirst, otherCount, _) in _ranges)
        {
            if (first < otherFirst + otherCount && otherFirst < first + count)
            {
                throw new InvalidOperationException($"ports 0x{first:x}+{count} overlap 0x{otherFirst:x}+{otherCount}");
            }
        }

        _ranges.Add((first, count, device));
        return this;
    }

    /// <summary>An IN of data.Length bytes (1, 2 or 4) at <paramref name="port"/>: byte i comes from port + i.</summary>
    public void Read(ushort port, Span<byte> data)
    {
        for (var i = 0; i < data.Length; i++)
        {
            var p = (ushort)(port + i);
            if (Find(p) is { } device)
            {
                data[i] = device.Read(p);
            }
            else
            {
                Interlocked.Increment(ref _unclaimedReads);
                data[i] = 0xff;
            }
        }
    }

    public void Write(ushort port, ReadOnlySpan<byte> data)
    {
        for (var i = 0; i < data.Length; i++)
        {
            var p = (ushort)(port + i);
            if (Find(p) is { } device)
            {
                device.Write(p, data[i]);
            }
            else
            {
                Interlocked.Increment(ref _unclaimedWrites);
            }
        }
    }

    private IPortDevice? Find(ushort port)
    {
        // A handful of ranges: a linear scan beats any index here.
        foreach (var (first, count, device) in _ranges)
        {
            if (port >= first && port < first + count)
            {
                return device;
            }
        }

        return null;
    }
}
