// A 16450-class UART (8250 register set with scratch, no FIFO) at COM1, enough for Linux's 8250 driver and its
// console: transmit, loopback, divisor latch, and the THRE/receive interrupts on IRQ 4. Pure logic, fed with port
// accesses; the KVM exit loop calls it, and the tests script it.
namespace Orchestrator.Hypervisor.Kvm.Devices;

internal sealed class Serial8250 : IPortDevice
{
    public const ushort Com1Base = 0x3f8;
    public const uint Com1Irq = 4;
    public const ushort PortCount = 8;

    // Register offsets from the base port.
    public const int Data = 0;       // RBR (read) / THR (write); DLL when DLAB
    public const int Ier = 1;        // DLM when DLAB
    public const int Iir = 2;        // IIR (read) / FCR (write)
    public const int Lcr = 3;
    public const int Mcr = 4;
    public const int Lsr = 5;
    public const int Msr = 6;
    public const int Scr = 7;

    public const byte IerRxData = 0x01;     // ERBFI
    public const byte IerThrEmpty = 0x02;   // ETBEI
    public const byte IirNoInterrupt = 0x01;
    public const byte IirThrEmpty = 0x02;
    public const byte IirRxData = 0x04;
    public const byte LcrDlab = 0x80;
    public const byte McrDtr = 0x01;
    public const byte McrRts = 0x02;
    public const byte McrOut1 = 0x04;
    public const byte McrOut2 = 0x08;
    public const byte McrLoop = 0x10;
    public const byte LsrDataReady = 0x01;
    public const byte LsrThrEmpty = 0x20;
    public const byte LsrTransmitterEmpty = 0x40;
    public const byte MsrCts = 0x10;
    public const byte MsrDsr = 0x20;
    public const byte MsrRi = 0x40;
    public const byte MsrDcd = 0x80;

    private const int ReceiveCapacity = 64;

    private readonly object _lock = new();
    private readonly ushort _base;
    private readonly IInterruptLine _irq;
    private readonly Action<byte> _transmit;
    private readonly Queue<byte> _receive = new();
    private byte _ier;
    private byte _lcr;
    private byte _mcr;
    private byte _scr;
    private byte _dll = 0x0c; // 9600 baud, as a BIOS would leave it
    private byte _dlm;
    private bool _thrEmptyPending;

    /// <param name="transmit">Each byte the guest sends, in order (called under the device lock: keep it short).</param>
    public Serial8250(IInterruptLine irq, Action<byte> transmit, ushort basePort = Com1Base)
    {
        _irq = irq;
        _transmit = transmit;
        _base = basePort;
    }

    public byte Read(ushort port)
    {
        byte value;
        lock (_lock)
        {
            value = (port - _base) switch
            {
                Data when Dlab => _dll,
                Data => _receive.TryDequeue(out var received) ? received : (byte)0,
                Ier when Dlab => _dlm,
                Ier => _ier,
                Iir => ReadIir(),
                Lcr => _lcr,
                Mcr => _mcr,
                Lsr => (byte)(LsrThrEmpty | LsrTransmitterEmpty | (_receive.Count > 0 ? LsrDataReady : 0)),
                Msr => ModemStatus(),
                Scr => _scr,
                _ => 0xff,
            };
        }

        return value;
    }

    public void Write(ushort port, byte value)
    {
        var raise = false;
        lock (_lock)
        {
            switch (port - _base)
            {
                case Data when Dlab:
                    _dll = value;
                    break;
                case Data:
                    raise = Transmit(value);
                    break;
                case Ier when Dlab:
                    _dlm = value;
                    break;
                case Ier:
                    raise = SetIer(value);
                    break;
                case Iir:
                    // FCR: bit 1 clears the receive FIFO. No FIFO is reported (IIR bits 7:6 stay 0), so Linux sees a 16450.
                    if ((value & 0x02) != 0)
                    {
                        _receive.Clear();
                    }

                    break;
                case Lcr:
                    _lcr = value;
                    break;
                case Mcr:
                    _mcr = (byte)(value & 0x1f);
                    break;
                case Scr:
                    _scr = value;
                    break;
                default:
                    // LSR and MSR writes are factory-test only: ignored.
                    break;
            }
        }

        if (raise)
        {
            _irq.Pulse();
        }
    }

    /// <summary>Bytes for the guest to read (console input). Beyond a small buffer they are dropped, as on an overrun.</summary>
    public void EnqueueInput(ReadOnlySpan<byte> bytes)
    {
        bool raise;
        lock (_lock)
        {
            raise = Receive(bytes);
        }

        if (raise)
        {
            _irq.Pulse();
        }
    }

    private bool Dlab => (_lcr & LcrDlab) != 0;

    private bool Loopback => (_mcr & McrLoop) != 0;

    /// <summary>The THR empties at once (no baud-rate delay): THRE is pending again right after every write.</summary>
    private bool Transmit(byte value)
    {
        var raise = false;
        if (Loopback)
        {
            raise = Receive([value]);
        }
        else
        {
            _transmit(value);
        }

        _thrEmptyPending = true;
        return raise || (_ier & IerThrEmpty) != 0;
    }

    private bool SetIer(byte value)
    {
        var before = _ier;
        _ier = (byte)(value & 0x0f);

        // Enabling ETBEI with the THR empty (it always is) raises THRE at once; Linux's 8250 startup tests exactly this
        // (re-enabling must re-assert it, else it marks the port UART_BUG_THRE and polls it with a timer).
        var raise = false;
        if ((_ier & IerThrEmpty) != 0)
        {
            _thrEmptyPending = true;
            raise = true;
        }

        if ((_ier & IerRxData) != 0 && (before & IerRxData) == 0 && _receive.Count > 0)
        {
            raise = true;
        }

        return raise;
    }

    private bool Receive(ReadOnlySpan<byte> bytes)
    {
        var wasEmpty = _receive.Count == 0;
        foreach (var b in bytes)
        {
            if (_receive.Count < ReceiveCapacity)
            {
                _receive.Enqueue(b);
            }
        }

        return wasEmpty && _receive.Count > 0 && (_ier & IerRxData) != 0;
    }

    /// <summary>Highest-priority pending interrupt; reading it acknowledges a THRE interrupt (and only that one).</summary>
    private byte ReadIir()
    {
        if ((_ier & IerRxData) != 0 && _receive.Count > 0)
        {
            return IirRxData;
        }

        if ((_ier & IerThrEmpty) != 0 && _thrEmptyPending)
        {
            _thrEmptyPending = false;
            return IirThrEmpty;
        }

        return IirNoInterrupt;
    }

    /// <summary>In loopback the modem outputs feed the inputs (RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD); otherwise a modem is always there.</summary>
    private byte ModemStatus()
    {
        if (!Loopback)
        {
            return MsrDcd | MsrDsr | MsrCts;
        }

        var msr = 0;
        msr |= (_mcr & McrRts) != 0 ? MsrCts : 0;
        msr |= (_mcr & McrDtr) != 0 ? MsrDsr : 0;
        msr |= (_mcr & McrOut1) != 0 ? MsrRi : 0;
        msr |= (_mcr & McrOut2) != 0 ? MsrDcd : 0;
        return (byte)msr;
    }
}
