using Orchestrator.Actors.Settings;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Kvm;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Node;

/// <summary>
/// Picks the host's hypervisor driver from config: qemu, kvm (the native engine; needs a usable /dev/kvm), or auto
/// (the native engine where /dev/kvm works, QEMU elsewhere).
/// </summary>
public static class Drivers
{
    public static IHypervisor Create(OrchestratorSettings settings) => (settings.Host.Driver switch
    {
        "auto" => KvmDriver.IsAvailable(out _) ? "kvm" : "qemu",
        var named => named,
    }) switch
    {
        "kvm" => KvmDriver.IsAvailable(out var reason)
            ? new KvmDriver(new KvmDriverOptions { RunDirectory = Path.Combine(settings.DataDir, "run") })
            : throw new InvalidOperationException($"orchestrator.host.driver = kvm, but {reason}"),
        "qemu" => new QemuDriver(new QemuDriverOptions
        {
            RunDirectory = Path.Combine(settings.DataDir, "run"),
            QemuBinary = settings.Host.QemuBinary,
            Accel = settings.Host.Accel switch
            {
                "kvm" => QemuAccel.Kvm,
                "tcg" => QemuAccel.Tcg,
                _ => QemuAccel.Auto,
            },
            FenceAfter = settings.Host.FenceAfter,
        }),
        var other => throw new InvalidOperationException($"driver '{other}' is not available in this build"),
    };
}
