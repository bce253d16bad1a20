// The 8042 keyboard controller, as little of it as Linux needs (the set Firecracker implements): status and data
// ports, the controller command byte (CTR) read/write, self-tests, and the CPU reset line, which `reboot=k` pulses
// (command 0xFE). No keyboard is attached; keyboard commands are acknowledged so nothing waits on a timeout.
namespace Orchestrator.Hypervisor.Kvm.Devices;

internal sealed class I8042 : IPortDevice
{
    public const ushort DataPort = 0x60;
    public const ushort CommandPort = 0x64;
    public const uint KeyboardIrq = 1;

    public const byte StatusOutputFull = 0x01;
    public const byte StatusInputFull = 0x02;
    public const byte StatusSystem = 0x04;       // self-test passed
    public const byte StatusCommand = 0x08;      // last write was to the command port
    public const byte StatusUnlocked = 0x10;     // keyboard not inhibited

    public const byte CmdReadCtr = 0x20;
    public const byte CmdWriteCtr = 0x60;
    public const byte CmdDisableAux = 0xa7;
    public const byte CmdEnableAux = 0xa8;
    public const byte CmdTestAux = 0xa9;
    public const byte CmdSelfTest = 0xaa;
    public const byte CmdTestKeyboard = 0xab;
    public const byte CmdDisableKeyboard = 0xad;
    public const byte CmdEnableKeyboard = 0xae;
    public const byte CmdReadOutputPort = 0xd0;
    public const byte CmdWriteOutputPort = 0xd1;
    public const byte CmdWriteKeyboardBuffer = 0xd2;
    public const byte CmdWriteAuxBuffer = 0xd3;
    public const byte CmdWriteAux = 0xd4;
    public const byte CmdPulseReset = 0xfe;

    public const byte CtrKeyboardInterrupt = 0x01;
    public const byte CtrSystem = 0x04;
    public const byte CtrKeyboardDisabled = 0x10;
    public const byte CtrAuxDisabled = 0x20;

    public const byte SelfTestPassed = 0x55;
    public const byte Ack = 0xfa;

    private const int BufferCapacity = 16;

    private readonly object _lock = new();
    private readonly IInterruptLine _keyboardIrq;
    private readonly Action _reset;
    private readonly Queue<byte> _output = new();
    private byte _ctr = CtrKeyboardInterrupt | CtrSystem;
    private byte _outputPort = 0x01; // bit 0 high: the CPU is not held in reset
    private byte _pendingCommand;
    private byte _lastRead;
    private bool _lastWriteWasCommand;

    /// <param name="reset">The guest asked the controller to reset the CPU: the VM's reboot (or, here, its end).</param>
    public I8042(IInterruptLine keyboardIrq, Action reset)
    {
        _keyboardIrq = keyboardIrq;
        _reset = reset;
    }

    public byte Read(ushort port)
    {
        lock (_lock)
        {
            if (port == CommandPort)
            {
                return (byte)(StatusSystem | StatusUnlocked | (_output.Count > 0 ? StatusOutputFull : 0) |
                              (_lastWriteWasCommand ? StatusCommand : 0));
            }

            if (port == DataPort && _output.TryDequeue(out var value))
            {
                _lastRead = value;
            }

            // Reading an empty buffer returns what was last there, as the real latch does.
            return _lastRead;
        }
    }

    public void Write(ushort port, byte value)
    {
        var reset = false;
        var interrupt = false;
        lock (_lock)
        {
            if (port == CommandPort)
            {
                _lastWriteWasCommand = true;
                reset = Command(value);
            }
            else if (port == DataPort)
            {
                _lastWriteWasCommand = false;
                (reset, interrupt) = Data(value);
            }
        }

        if (interrupt)
        {
            _keyboardIrq.Pulse();
        }

        if (reset)
        {
            _reset();
        }
    }

    /// <returns>Whether the command resets the CPU.</returns>
    private bool Command(byte command)
    {
        _pendingCommand = 0;
        switch (command)
        {
            case CmdReadCtr:
                Push(_ctr);
                break;
            case CmdWriteCtr:
            case CmdWriteOutputPort:
            case CmdWriteKeyboardBuffer:
            case CmdWriteAuxBuffer:
            case CmdWriteAux:
                _pendingCommand = command; // the parameter follows on the data port
                break;
            case CmdDisableAux:
                _ctr |= CtrAuxDisabled;
                break;
            case CmdEnableAux:
                _ctr &= unchecked((byte)~CtrAuxDisabled);
                break;
            case CmdTestAux:
            case CmdTestKeyboard:
                Push(0x00); // interface test: no error
                break;
            case CmdSelfTest:
                Push(SelfTestPassed);
                break;
            case CmdDisableKeyboard:
                _ctr |= CtrKeyboardDisabled;
                break;
            case CmdEnableKeyboard:
                _ctr &= unchecked((byte)~CtrKeyboardDisabled);
                break;
            case CmdReadOutputPort:
                Push(_outputPort);
                break;
            case >= 0xf0:
                // Pulse output lines: bit 0 low pulses the CPU reset line (0xFE is the usual form).
                return (command & 0x01) == 0;
        }

        return false;
    }

    /// <returns>Whether the write resets the CPU, and whether it produced keyboard data (IRQ 1).</returns>
    private (bool Reset, bool Interrupt) Data(byte value)
    {
        var command = _pendingCommand;
        _pendingCommand = 0;
        switch (command)
        {
            case CmdWriteCtr:
                _ctr = value;
                return (false, false);
            case CmdWriteOutputPort:
                _outputPort = value;
                return ((value & 0x01) == 0, false);
            case CmdWriteKeyboardBuffer:
                Push(value);
                return (false, KeyboardInterruptEnabled);
            case CmdWriteAuxBuffer:
            case CmdWriteAux:
                return (false, false); // no aux (mouse) device: Linux runs with i8042.noaux
            default:
                // A byte for the keyboard itself. There is none, but an ACK keeps a driver from waiting out a timeout.
                Push(Ack);
                return (false, KeyboardInterruptEnabled);
        }
    }

    private bool KeyboardInterruptEnabled => (_ctr & CtrKeyboardInterrupt) != 0;

    private void Push(byte value)
    {
        if (_output.Count < BufferCapacity)
        {
            _output.Enqueue(value);
        }
    }
}
