// Checks of the engine's host side that need no /dev/kvm: the libc calls (mmap, mincore, sigaction, tgkill), the kick
// signal's handler, and loading a real kernel with its boot structures. The harness runs them first, so a trimmed or
// otherwise broken build shows up as such rather than as a guest that never boots.
using System.Runtime.InteropServices;

namespace Orchestrator.Hypervisor.Kvm;

public static class KvmPreflight
{
    public sealed record Check(string Name, bool Ok, string Detail);

    public static IReadOnlyList<Check> Run(GuestImage image, int memoryMiB = 128)
    {
        return
        [
            Try("kick signal has a handler and a kick leaves the process alive", KickSignal),
            Try($"'{image.Name}' kernel, initramfs and boot tables load into {memoryMiB} MiB of guest memory", () => Load(image, memoryMiB)),
        ];
    }

    private static Check Try(string name, Func<string> check)
    {
        try
        {
            return new Check(name, true, check());
        }
        catch (Exception ex)
        {
            return new Check(name, false, ex.Message);
        }
    }

    private static string KickSignal()
    {
        var signal = VcpuKick.Signal;
        var handler = VcpuKick.CurrentDisposition(signal);
        if (handler == LibC.SIG_DFL || handler == LibC.SIG_IGN)
        {
            throw new HypervisorException($"signal {signal} has no handler");
        }

        // A thread that takes a few kicks while blocked: SIG_DFL for a real-time signal would have killed us.
        var tid = 0;
        using var ready = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var thread = new Thread(() =>
        {
            Volatile.Write(ref tid, LibC.Gettid());
            ready.Set();
            release.Wait(TimeSpan.FromSeconds(10));
        }) { IsBackground = true };
        thread.Start();
        ready.Wait(TimeSpan.FromSeconds(10));
        for (var i = 0; i < 3; i++)
        {
            if (!VcpuKick.Send(tid))
            {
                throw new HypervisorException($"tgkill found no thread {tid}");
            }
        }

        release.Set();
        thread.Join();
        return $"SIGRTMIN+{VcpuKick.SignalOffset} = {signal}, handler at 0x{handler:x}";
    }

    private static string Load(GuestImage image, int memoryMiB)
    {
        using var memory = new GuestMemory((ulong)memoryMiB << 20);
        var kernel = BzImage.Read(image.KernelPath);
        var layout = LinuxBoot.Load(memory, kernel, image.KernelPath, image.InitrdPath, KvmDriver.BaseAppend);
        LongMode.WriteTables(memory);
        memory.Write(MpTable.Address, MpTable.Build(1));
        var zeroPage = memory.Read(LinuxBoot.BootParamsAddress, 4096);
        if (MemoryMarshal.Read<uint>(zeroPage.AsSpan(0x202)) != SetupHeader.HeaderMagic)
        {
            throw new HypervisorException("the zero page has no setup header");
        }

        return $"protocol {kernel.Version >> 8}.{kernel.Version & 0xff:D2}, entry 0x{layout.EntryPoint:x}, initramfs at 0x{layout.InitrdAddress:x}, " +
               $"{memory.ResidentBytes() >> 20} MiB resident";
    }
}
