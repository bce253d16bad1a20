// The MC146818 CMOS clock at 0x70/0x71, read-only time: Linux reads the wall clock here at boot. Without it every read
// floats to 0xFF, the update-in-progress bit looks stuck, and the kernel spins its retry loop before giving up on 1970.
namespace Orchestrator.Hypervisor.Kvm.Devices;

internal sealed class CmosRtc : IPortDevice
{
    public const ushort IndexPort = 0x70;
    public const ushort DataPort = 0x71;

    public const byte Seconds = 0x00;
    public const byte Minutes = 0x02;
    public const byte Hours = 0x04;
    public const byte Weekday = 0x06;
    public const byte DayOfMonth = 0x07;
    public const byte Month = 0x08;
    public const byte Year = 0x09;
    public const byte StatusA = 0x0a;
    public const byte StatusB = 0x0b;
    public const byte StatusC = 0x0c;
    public const byte StatusD = 0x0d;
    public const byte Century = 0x32;

    /// <summary>Status A: 32.768 kHz time base, 1024 Hz rate, update-in-progress clear.</summary>
    public const byte StatusAValue = 0x26;

    /// <summary>Status B: 24-hour mode, BCD (DM clear), no interrupts enabled.</summary>
    public const byte StatusBValue = 0x02;

    /// <summary>Status D: the battery is good (VRT).</summary>
    public const byte StatusDValue = 0x80;

    private readonly object _lock = new();
    private readonly Func<DateTimeOffset> _clock;
    private readonly byte[] _ram = new byte[128];
    private byte _index;

    public CmosRtc(Func<DateTimeOffset>? clock = null)
    {
        _clock = clock ?? (() => DateTimeOffset.UtcNow);
        _ram[StatusA] = StatusAValue;
        _ram[StatusB] = StatusBValue;
        _ram[StatusD] = StatusDValue;
    }

    public byte Read(ushort port)
    {
        lock (_lock)
        {
            return port == DataPort ? ReadRegister(_index) : _index;
        }
    }

    public void Write(ushort port, byte value)
    {
        lock (_lock)
        {
            if (port == IndexPort)
            {
                _index = (byte)(value & 0x7f); // bit 7 is the NMI mask, not part of the index
            }
            else if (port == DataPort && _index is not (Seconds or Minutes or Hours or Weekday or DayOfMonth or Month or Year or Century
                         or StatusA or StatusC or StatusD))
            {
                // Status B and the general-purpose RAM keep what the guest writes; the clock itself is read-only.
                _ram[_index] = value;
            }
        }
    }

    private byte ReadRegister(byte index)
    {
        var now = _clock().UtcDateTime;
        return index switch
        {
            Seconds => Bcd(now.Second),
            Minutes => Bcd(now.Minute),
            Hours => Bcd(now.Hour),
            Weekday => Bcd((int)now.DayOfWeek + 1),
            DayOfMonth => Bcd(now.Day),
            Month => Bcd(now.Month),
            Year => Bcd(now.Year % 100),
            Century => Bcd(now.Year / 100),
            StatusC => 0, // no interrupt flags: reading clears them, and none are ever raised
            _ => _ram[index],
        };
    }

    /// <summary>BCD unless the guest switched Status B to binary (DM, bit 2).</summary>
    private byte Bcd(int value) =>
        (_ram[StatusB] & 0x04) != 0 ? (byte)value : (byte)(((value / 10) << 4) | (value % 10));
}
