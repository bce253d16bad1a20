// Tests that need a working /dev/kvm: skipped elsewhere (CI has none), with the reason in the skip message.
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class KvmFactAttribute : FactAttribute
{
    public KvmFactAttribute()
    {
        if (!KvmProbe.Available)
        {
            Skip = $"no usable /dev/kvm: {KvmProbe.Reason}";
        }
    }
}

/// <summary>A test of how the engine behaves where /dev/kvm is missing; skipped where it works.</summary>
public sealed class NoKvmFactAttribute : FactAttribute
{
    public NoKvmFactAttribute()
    {
        if (KvmProbe.Available)
        {
            Skip = "/dev/kvm works here: the engine's own tests cover it";
        }
    }
}

internal static class KvmProbe
{
    private static readonly Lazy<(bool Available, string Reason)> Probe = new(() =>
    {
        var available = KvmDriver.IsAvailable(out var reason);
        return (available, reason);
    });

    public static bool Available => Probe.Value.Available;

    public static string Reason => Probe.Value.Reason;
}
