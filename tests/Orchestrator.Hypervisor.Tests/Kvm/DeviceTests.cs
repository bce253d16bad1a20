// The other legacy devices and the plumbing around them, against scripted port I/O.
using Orchestrator.Hypervisor.Kvm.Devices;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class DeviceTests
{
    [Fact]
    public void I8042_pulsing_the_reset_line_resets_the_guest()
    {
        var resets = 0;
        var kbc = new I8042(new CountingIrq(), () => resets++);

        Assert.Equal(0, kbc.Read(I8042.CommandPort) & I8042.StatusInputFull); // Linux's kb_wait() before it writes
        kbc.Write(I8042.CommandPort, I8042.CmdPulseReset);
        Assert.Equal(1, resets);

        kbc.Write(I8042.CommandPort, 0xff); // pulse with bit 0 high: no reset line
        Assert.Equal(1, resets);

        kbc.Write(I8042.CommandPort, I8042.CmdWriteOutputPort);
        kbc.Write(I8042.DataPort, 0x00); // output port bit 0 low holds the CPU in reset
        Assert.Equal(2, resets);
    }

    [Fact]
    public void I8042_answers_the_controller_commands_linux_sends_at_boot()
    {
        var kbc = new I8042(new CountingIrq(), () => { });

        kbc.Write(I8042.CommandPort, I8042.CmdReadCtr);
        Assert.Equal(I8042.StatusOutputFull, kbc.Read(I8042.CommandPort) & I8042.StatusOutputFull);
        var ctr = kbc.Read(I8042.DataPort);
        Assert.Equal(0, kbc.Read(I8042.CommandPort) & I8042.StatusOutputFull);

        kbc.Write(I8042.CommandPort, I8042.CmdWriteCtr);
        kbc.Write(I8042.DataPort, (byte)(ctr | 0x40));
        kbc.Write(I8042.CommandPort, I8042.CmdReadCtr);
        Assert.Equal(ctr | 0x40, kbc.Read(I8042.DataPort));

        kbc.Write(I8042.CommandPort, I8042.CmdSelfTest);
        Assert.Equal(I8042.SelfTestPassed, kbc.Read(I8042.DataPort));
        kbc.Write(I8042.CommandPort, I8042.CmdTestKeyboard);
        Assert.Equal(0x00, kbc.Read(I8042.DataPort));
    }

    [Fact]
    public void I8042_acknowledges_keyboard_bytes_with_irq_1()
    {
        var irq = new CountingIrq();
        var kbc = new I8042(irq, () => { });
        kbc.Write(I8042.DataPort, 0xf2); // "identify": no keyboard, but an ACK instead of a timeout
        Assert.Equal(1, irq.Count);
        Assert.Equal(I8042.Ack, kbc.Read(I8042.DataPort));
    }

    [Fact]
    public void Cmos_clock_reads_the_time_in_bcd_with_no_update_in_progress()
    {
        var now = new DateTimeOffset(2026, 11, 24, 13, 45, 59, TimeSpan.Zero);
        var rtc = new CmosRtc(() => now);

        byte Read(byte register)
        {
            rtc.Write(CmosRtc.IndexPort, (byte)(0x80 | register)); // bit 7 (NMI mask) is not part of the index
            return rtc.Read(CmosRtc.DataPort);
        }

        Assert.Equal(0, Read(CmosRtc.StatusA) & 0x80);
        Assert.Equal(0x59, Read(CmosRtc.Seconds));
        Assert.Equal(0x45, Read(CmosRtc.Minutes));
        Assert.Equal(0x13, Read(CmosRtc.Hours));
        Assert.Equal(0x24, Read(CmosRtc.DayOfMonth));
        Assert.Equal(0x11, Read(CmosRtc.Month));
        Assert.Equal(0x26, Read(CmosRtc.Year));
        Assert.Equal(0x20, Read(CmosRtc.Century));
        Assert.Equal(0x80, Read(CmosRtc.StatusD));

        rtc.Write(CmosRtc.IndexPort, CmosRtc.StatusB);
        rtc.Write(CmosRtc.DataPort, CmosRtc.StatusBValue | 0x04); // binary mode
        Assert.Equal(59, Read(CmosRtc.Seconds));
    }

    [Fact]
    public void Unclaimed_ports_read_as_all_ones_and_multi_byte_accesses_split_by_port()
    {
        var uart = new Serial8250(new CountingIrq(), _ => { });
        var bus = new PortIoBus().Register(Serial8250.Com1Base, Serial8250.PortCount, uart);

        var data = new byte[4];
        bus.Read(0x2f8, data);
        Assert.Equal(new byte[] { 0xff, 0xff, 0xff, 0xff }, data);
        Assert.Equal(4, bus.UnclaimedReads);

        bus.Write(Serial8250.Com1Base + Serial8250.Scr, [0x11]);
        var word = new byte[2];
        bus.Read(Serial8250.Com1Base + Serial8250.Msr, word);
        Assert.Equal(0x11, word[1]); // the second byte of a word read at MSR is SCR

        Assert.Throws<InvalidOperationException>(() => bus.Register(0x3fc, 2, uart));
    }

    [Fact]
    public void Console_sink_logs_every_byte_and_emits_lines_without_cr_lf()
    {
        var lines = new List<string>();
        using var log = new MemoryStream();
        var sink = new ConsoleSink(log, lines.Add);
        foreach (var b in "ORCHESTRATOR-GUEST-READY k1\r\npartial"u8)
        {
            sink.Write(b);
        }

        Assert.Equal(["ORCHESTRATOR-GUEST-READY k1"], lines);
        Assert.Equal("ORCHESTRATOR-GUEST-READY k1\r\npartial", System.Text.Encoding.ASCII.GetString(log.ToArray()));
        sink.Dispose();
        Assert.Equal(["ORCHESTRATOR-GUEST-READY k1", "partial"], lines);
        sink.Write((byte)'x'); // after the end: dropped, no exception
    }

    [Fact]
    public void Console_sink_keeps_emitting_lines_when_its_log_fails()
    {
        var lines = new List<string>();
        var sink = new ConsoleSink(new FullDisk(), lines.Add);
        foreach (var b in "one\ntwo\nthree"u8)
        {
            sink.Write(b);
        }

        sink.Dispose();
        Assert.Equal(["one", "two", "three"], lines);
    }

    [Fact]
    public void Console_sink_cuts_a_line_that_never_ends()
    {
        var lines = new List<string>();
        var sink = new ConsoleSink(null, lines.Add);
        for (var i = 0; i < ConsoleSink.MaxLineBytes + 10; i++)
        {
            sink.Write((byte)'a');
        }

        Assert.Single(lines);
        Assert.Equal(ConsoleSink.MaxLineBytes, lines[0].Length);
    }

    /// <summary>A log on a disk that is full: every write, flush and close fails as write(2) with ENOSPC does.</summary>
    private sealed class FullDisk : MemoryStream
    {
        public override void WriteByte(byte value) => throw new IOException("No space left on device");

        public override void Flush() => throw new IOException("No space left on device");

        protected override void Dispose(bool disposing) => throw new IOException("No space left on device");
    }
}
