using Orchestrator.Hypervisor.Accel;

namespace Orchestrator.Hypervisor.Qemu;

/// <summary>Host-level settings of the QEMU driver (operator configuration; nothing here comes from a tenant).</summary>
public sealed record QemuDriverOptions
{
    /// <summary>
    /// Holds <c>guard.sock</c>, <c>guard.log</c> and <c>vms/&lt;vmId&gt;/</c>. Keep it short: unix socket paths below it
    /// must stay under 100 characters, which leaves about 50 for this directory.
    /// </summary>
    public required string RunDirectory { get; init; }

    /// <summary>A path, or a name looked up on PATH.</summary>
    public string QemuBinary { get; init; } = "qemu-system-x86_64";

    /// <summary>
    /// The accelerator and CPU model every VM of this driver runs with: the host's probe verdict
    /// (<see cref="AcceleratorChoice.ForQemuAsync"/>). TCG unless a probe proved KVM.
    /// </summary>
    public AcceleratorVerdict Accelerator { get; init; } = AcceleratorChoice.TcgUnprobed;

    /// <summary>
    /// The guard kills every VM of this run directory when the node's heartbeats stop for this long. Takes effect when
    /// the guard starts; a guard already running keeps its own.
    /// </summary>
    public TimeSpan FenceAfter { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary><c>orchestrator-guard.dll</c> (run with dotnet) or an executable; null: the dll next to this assembly.</summary>
    public string? GuardPath { get; init; }

    /// <summary>Appended to the kernel command line of every VM (e.g. <c>orchestrator.poweroff=1</c> for tests).</summary>
    public string? ExtraKernelAppend { get; init; }

    /// <summary>
    /// q35 boots the demo image under TCG in about 2.2 s; microvm is no faster here and sometimes hangs in TSC
    /// calibration under TCG.
    /// </summary>
    public string Machine { get; init; } = "q35";

    /// <summary>How long a start may take until QMP answers, before it is abandoned.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Where VMs' persistent disks live (operator configuration); a launch names one by id, or gets the first.</summary>
    public IReadOnlyList<Storage.IStoragePool> StoragePools { get; init; } = [];
    /// <summary>Plugs VMs' NICs into their networks; null: this host runs no VM with a NIC (one that has any fails to start).</summary>
    public Networking.IHostNetworking? Networking { get; init; }
}
