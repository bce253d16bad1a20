using Orchestrator.Actors.Settings;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Node;

/// <summary>Picks the host's hypervisor driver from config.</summary>
public static class Drivers
{
    public static IHypervisor Create(OrchestratorSettings settings) => settings.Host.Driver switch
    {
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
