using Akka.Configuration;
using Orchestrator.Actors.Settings;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Accel;
using Orchestrator.Hypervisor.Kvm;
using Orchestrator.Hypervisor.Networking;
using Orchestrator.Hypervisor.Qemu;
using Orchestrator.Hypervisor.Storage;
using Orchestrator.Domain.Storage;

namespace Orchestrator.Node;

/// <summary>
/// The host's driver and accelerator, as decided at start: <paramref name="Verdict"/> is what its VMs run on and why;
/// <paramref name="Native"/> is the native engine's own probe where driver = auto or kvm asked for it.
/// </summary>
public sealed record HostDriverChoice(string Driver, AcceleratorVerdict Verdict, AcceleratorVerdict? Native = null)
{
    /// <summary>One line for the log and the demo.</summary>
    public string Summary => Driver switch
    {
        "kvm" => $"native KVM engine: {Verdict.Reason}{(Verdict.FromCache ? " [cached]" : "")}",
        "qemu" => $"QEMU with {Verdict.Summary}" +
                  (Native is { IsHardware: false } native ? $"; native engine not used: {native.Reason}" : ""),
        _ => $"{Driver} driver",
    };
}

/// <summary>
/// Picks the host's hypervisor driver from config, with its accelerator proved by a boot: qemu (KVM where the probe
/// boots a guest under it, TCG otherwise), kvm (the native engine; refuses to start where its probe fails), or auto
/// (the native engine where its probe boots, QEMU elsewhere).
/// </summary>
public static class Drivers
{
    /// <exception cref="ConfigurationException">the configuration asks for what the probe disproved; the message says what it saw.</exception>
    public static async Task<HostDriverChoice> ChooseAsync(OrchestratorSettings settings, CancellationToken cancellationToken)
    {
        var host = settings.Host;
        var mode = AcceleratorChoice.ParseMode(host.Accel);
        if (host.Driver == "simulated")
        {
            return new HostDriverChoice("simulated", AcceleratorVerdict.Configured("none", "", "simulated hosts run nothing"));
        }

        var probe = host.EffectiveAccelProbe;
        var image = settings.Images.Find(probe.Image);
        AcceleratorVerdict? native = null;
        if (host.Driver is "kvm" or "auto" && mode != AccelMode.Tcg)
        {
            native = image is null
                ? NoProbeImage(probe.Image)
                : await AcceleratorChoice.ForNativeAsync(image, probe.Deadline, Path.Combine(settings.DataDir, "run", "probe"),
                    probe.CachePath(settings.DataDir, "kvm"), cancellationToken);
            if (native.IsHardware)
            {
                return new HostDriverChoice("kvm", native, native);
            }
        }

        if (host.Driver == "kvm")
        {
            var why = native?.Reason ?? "accel = tcg";
            throw new ConfigurationException($"orchestrator.host.driver = kvm, but the native engine's probe did not boot a guest: {why}");
        }

        if (image is null && mode != AccelMode.Tcg)
        {
            var verdict = NoProbeImage(probe.Image);
            return mode == AccelMode.Kvm
                ? throw new ConfigurationException($"orchestrator.host.accel = kvm, but the accelerator probe cannot run: {verdict.Reason}")
                : new HostDriverChoice("qemu", verdict, native);
        }

        try
        {
            var options = new QemuProbeOptions(host.QemuBinary, image!, probe.Deadline, SpeedCheck: QemuAcceleratorProbe.TimedLoop);
            var verdict = await AcceleratorChoice.ForQemuAsync(mode, options, probe.CachePath(settings.DataDir, "qemu"), cancellationToken);
            return new HostDriverChoice("qemu", verdict, native);
        }
        catch (HypervisorException ex)
        {
            throw new ConfigurationException($"orchestrator.host.{ex.Message}");
        }
    }

    public static IHypervisor Create(OrchestratorSettings settings, HostDriverChoice choice) => choice.Driver switch
    {
        "kvm" => new KvmDriver(new KvmDriverOptions { RunDirectory = Path.Combine(settings.DataDir, "run") }),
        "qemu" => new QemuDriver(new QemuDriverOptions
        {
            RunDirectory = Path.Combine(settings.DataDir, "run"),
            Networking = new HostNetworking(Path.Combine(settings.DataDir, "run", "net"), settings.NetworkUnderlay, settings.NetworkNat),
            QemuBinary = settings.Host.QemuBinary,
            Accelerator = choice.Verdict,
            FenceAfter = settings.Host.FenceAfter,
            StoragePools = StoragePools(settings),
        }),
        var other => throw new InvalidOperationException($"driver '{other}' is not available in this build"),
    };

    /// <summary>The host's configured pools (a default dir pool under the data directory when none is).</summary>
    public static IReadOnlyList<IStoragePool> StoragePools(OrchestratorSettings settings) =>
        (settings.Storage ?? StorageSettings.Create(null, settings.DataDir)).Pools
        .Select(p => p.Info.Kind == StoragePoolKinds.Rbd
            ? (IStoragePool)new RbdStoragePool(p.Info, new RbdLocation(p.CephConf!, p.CephPool!, p.CephUser))
            : new DirStoragePool(p.Info, p.Path))
        .ToList();

    private static AcceleratorVerdict NoProbeImage(string name) => AcceleratorVerdict.Decide(
        [new ProbeAttempt(AcceleratorVerdict.Kvm, "", ProbeOutcome.Unavailable, 0,
            $"the probe image '{name}' is not in the image catalog (orchestrator.host.accel-probe.image; the demo image is built by images/build-demo-image.sh)")],
        QemuAcceleratorProbe.TcgCpuModel, 0, DateTimeOffset.UtcNow);
}
