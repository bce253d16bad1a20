// The UART against scripted port I/O, the way Linux's 8250 driver and its console drive it.
using Orchestrator.Hypervisor.Kvm.Devices;
using static Orchestrator.Hypervisor.Kvm.Devices.Serial8250;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class Serial8250Tests
{
    private const ushort Base = Com1Base;

    private readonly CountingIrq _irq = new();
    private readonly List<byte> _sent = [];
    private readonly Serial8250 _uart;

    public Serial8250Tests() => _uart = new Serial8250(_irq, _sent.Add);

    [Fact]
    public void Transmit_register_is_always_empty_and_bytes_go_out_in_order()
    {
        Assert.Equal(LsrThrEmpty | LsrTransmitterEmpty, In(Lsr));
        foreach (var b in "hi\n"u8)
        {
            Out(Data, b);
            Assert.Equal(LsrThrEmpty | LsrTransmitterEmpty, In(Lsr) & (LsrThrEmpty | LsrTransmitterEmpty));
        }

        Assert.Equal("hi\n"u8.ToArray(), _sent);
        Assert.Equal(0, _irq.Count); // interrupts off: the console polls LSR instead
    }

    [Fact]
    public void Divisor_latch_shadows_data_and_ier_while_dlab_is_set()
    {
        Out(Lcr, LcrDlab | 0x03);
        Out(Data, 0x01); // DLL: 115200 baud
        Out(Ier, 0x00);  // DLM
        Assert.Equal(0x01, In(Data));
        Assert.Equal(0x00, In(Ier));
        Assert.Empty(_sent); // a divisor write is not a character

        Out(Lcr, 0x03);  // 8N1, DLAB off
        Out(Data, (byte)'x');
        Assert.Equal("x"u8.ToArray(), _sent);
        Assert.Equal(0x03, In(Lcr));
    }

    [Fact]
    public void Enabling_the_thre_interrupt_raises_irq_4_and_iir_reports_it_once()
    {
        Assert.Equal(IirNoInterrupt, In(Iir));
        Out(Ier, IerThrEmpty);
        Assert.Equal(1, _irq.Count);
        Assert.Equal(IirThrEmpty, In(Iir));
        Assert.Equal(IirNoInterrupt, In(Iir)); // reading IIR acknowledged it

        // Linux's startup test: re-enabling THRI must re-assert THRE (else it marks the UART buggy and polls it).
        Out(Ier, 0);
        Out(Ier, IerThrEmpty);
        Assert.Equal(2, _irq.Count);
        Assert.Equal(IirThrEmpty, In(Iir));
    }

    [Fact]
    public void Each_byte_sent_with_thre_enabled_raises_a_new_interrupt()
    {
        Out(Ier, IerThrEmpty);
        In(Iir);
        var before = _irq.Count;
        Out(Data, (byte)'a');
        Out(Data, (byte)'b');
        Assert.Equal(before + 2, _irq.Count);
        Assert.Equal(IirThrEmpty, In(Iir));
    }

    [Fact]
    public void Loopback_feeds_transmitted_bytes_back_and_modem_outputs_to_inputs()
    {
        Out(Mcr, McrLoop | McrOut2 | McrRts);
        Assert.Equal(MsrDcd | MsrCts, In(Msr)); // what Linux's autoconfig checks (0x90)

        Out(Data, 0x5a);
        Assert.Empty(_sent);
        Assert.Equal(LsrDataReady, In(Lsr) & LsrDataReady);
        Assert.Equal(0x5a, In(Data));
        Assert.Equal(0, In(Lsr) & LsrDataReady);

        Out(Mcr, 0);
        Assert.Equal(MsrDcd | MsrDsr | MsrCts, In(Msr)); // out of loopback: a modem is present
    }

    [Fact]
    public void Received_bytes_raise_the_data_interrupt_when_enabled()
    {
        Out(Ier, IerRxData);
        _uart.EnqueueInput("ok"u8);
        Assert.Equal(1, _irq.Count);
        Assert.Equal(IirRxData, In(Iir));
        Assert.Equal((byte)'o', In(Data));
        Assert.Equal((byte)'k', In(Data));
        Assert.Equal(IirNoInterrupt, In(Iir));
    }

    [Fact]
    public void Scratch_register_keeps_its_value_and_ier_keeps_its_low_nibble()
    {
        Out(Scr, 0xa5);
        Assert.Equal(0xa5, In(Scr));
        Out(Ier, 0xff);
        Assert.Equal(0x0f, In(Ier));
    }

    private byte In(int register) => _uart.Read((ushort)(Base + register));

    private void Out(int register, byte value) => _uart.Write((ushort)(Base + register), value);
}

internal sealed class CountingIrq : Orchestrator.Hypervisor.Kvm.Devices.IInterruptLine
{
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public void Pulse() => Interlocked.Increment(ref _count);
}
