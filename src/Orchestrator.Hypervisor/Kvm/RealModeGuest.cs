// The engine's smoke test, before any Linux: eleven bytes of 16-bit code that print "OK" on COM1 and halt. If this runs,
// /dev/kvm, memory slots, vCPU creation, KVM_RUN, the port I/O path and the serial model all work.
namespace Orchestrator.Hypervisor.Kvm;

public static class RealModeGuest
{
    public const ulong LoadAddress = 0x1000;

    /// <summary>The line the guest prints.</summary>
    public const string Output = "OK";

    /// <summary>mov dx,0x3f8; mov al,'O'; out dx,al; mov al,'K'; out dx,al; mov al,'\n'; out dx,al; hlt.</summary>
    public static ReadOnlySpan<byte> Code =>
    [
        0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xb0, (byte)'O',  // mov al, 'O'
        0xee,             // out dx, al
        0xb0, (byte)'K',  // mov al, 'K'
        0xee,             // out dx, al
        0xb0, (byte)'\n', // mov al, '\n'
        0xee,             // out dx, al
        0xf4,             // hlt
    ];
}
