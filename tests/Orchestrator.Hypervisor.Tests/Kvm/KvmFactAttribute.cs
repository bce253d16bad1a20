// Tests that need a working /dev/kvm: skipped elsewhere (CI has none), with the reason in the skip message. "Working"
// is the node's own rule: the native engine's probe boots the demo image to its banner, not merely opens /dev/kvm
// (a nested host's KVM opens and then crawls).
using Orchestrator.Hypervisor.Accel;
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class KvmFactAttribute : FactAttribute
{
    public KvmFactAttribute()
    {
        if (!KvmProbe.Available)
        {
            Skip = $"the native engine cannot boot a guest here: {KvmProbe.Reason}";
        }
    }
}

/// <summary>A test of how the engine behaves where /dev/kvm is missing; skipped where it works.</summary>
public sealed class NoKvmFactAttribute : FactAttribute
{
    public NoKvmFactAttribute()
    {
        if (KvmProbe.Opens)
        {
            Skip = "/dev/kvm opens here: the engine's own tests cover it";
        }
    }
}

internal static class KvmProbe
{
    private static readonly Lazy<(bool Available, string Reason)> Probe = new(() =>
    {
        if (!KvmDriver.IsAvailable(out var reason))
        {
            return (false, reason);
        }

        // Discovery is synchronous; the probe boots once per test process (and is cached per boot beside the QEMU one).
        var verdict = Task.Run(async () => await AcceleratorChoice.ForNativeAsync(await DemoImage.GetAsync(), TimeSpan.FromSeconds(5),
            Path.Combine(Path.GetTempPath(), "orchestrator-tests", "kvm-probe-run"), Path.Combine(Path.GetDirectoryName(TestAccelerator.CacheFile)!, "accel-probe.kvm.json"),
            CancellationToken.None)).GetAwaiter().GetResult();
        return (verdict.IsHardware, verdict.Reason);
    });

    public static bool Available => Probe.Value.Available;

    /// <summary>/dev/kvm opens (whether or not it boots anything).</summary>
    public static bool Opens => KvmDriver.IsAvailable(out _);

    public static string Reason => Probe.Value.Reason;
}
