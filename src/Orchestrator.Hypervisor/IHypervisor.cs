using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Hypervisor;

/// <summary>
/// A guest image from the catalog: files the operator registered. Tenants name an image; they never give paths.
/// </summary>
/// <param name="BurnCpu">the demo guest's CPU burner is switched on (for the shares benchmark and tests).</param>
/// <summary>
/// A guest image: a kernel and initrd, and for a full OS its root disk (qcow2, the base of each VM's copy-on-write
/// overlay, attached as /dev/vda) and the kernel command line it boots with (<see cref="KernelAppend"/>, e.g.
/// <c>root=/dev/vda ro</c>). <see cref="RootDiskFormat"/> is the root disk's format as it was checked (an imported image may be
/// raw): each overlay names it, so QEMU never guesses it from the content.
/// </summary>
public sealed record GuestImage(string Name, string KernelPath, string InitrdPath, string Description, bool BurnCpu = false,
    string? RootDiskPath = null, string? KernelAppend = null, string RootDiskFormat = "qcow2");

/// <summary>What a switch of a running VM's disk layer (a live snapshot) did.</summary>
public enum DiskSwitch
{
    /// <summary>The VM wrote to that layer already: nothing to do.</summary>
    AlreadyThere,

    /// <summary>Switched without the guest's help: the frozen layer is as a power cut would leave it.</summary>
    CrashConsistent,

    /// <summary>Switched with the guest's filesystems frozen by its agent.</summary>
    Frozen,
}

/// <summary>How a driver asked a guest to power off.</summary>
public enum ShutdownRoute
{
    /// <summary>The guest's own agent accepted guest-shutdown.</summary>
    GuestAgent,

    /// <summary>The ACPI power button (QMP system_powerdown).</summary>
    AcpiPowerButton,

    /// <summary>The engine has no way to ask: it stopped the VM itself.</summary>
    StoppedByHost,
}

/// <summary>What a guest's agent says about it: its OS, hostname and addresses (<c>ip/prefix</c>, loopback left out).</summary>
public sealed record GuestInfo(string Os, string Hostname, IReadOnlyList<string> Addresses);

/// <summary>
/// What a driver needs to start one VM. <see cref="Name"/> is the tenant's (validated) VM name: drivers must
/// never put it on a command line or in a path; the QEMU driver hands it to the guest inside its initramfs.
/// </summary>
public sealed record VmLaunchSpec(
    VmId VmId,
    string Name,
    int Vcpus,
    int MemoryMiB,
    GuestImage Image,
    Epoch Epoch,
    bool BurnCpu = false,
    GuestSeed? Seed = null,
    VmDiskRequest? Disk = null,
    IReadOnlyList<NicAssignment>? Nics = null,
    IReadOnlyList<Orchestrator.Domain.Storage.VolumeAssignment>? Volumes = null,
    Orchestrator.Domain.Shares.DiskThrottle? DiskThrottle = null);

/// <summary>
/// The VM's persistent disk: <paramref name="SizeGiB"/> in the host's pool <paramref name="PoolId"/> (null: the host's
/// first pool). Null on a launch spec: the VM has none (what it writes lives and dies with its process).
/// <paramref name="Layer"/> is the layer file QEMU writes (null: the VM's own id), an overlay on the snapshot layer
/// <paramref name="Backing"/> (null: the image) when it is made.
/// </summary>
public sealed record VmDiskRequest(int SizeGiB, string? PoolId = null, string? Layer = null, string? Backing = null);

/// <summary>
/// What the guest reads from its NoCloud seed disk (volume "cidata"): <paramref name="Hostname"/>, the SSH keys and the
/// user-data, written into files as they are and never onto a command line. Null on a launch spec: no seed disk.
/// </summary>
public sealed record GuestSeed(string Hostname, IReadOnlyList<string> SshKeys, byte[] UserData)
{
    public static GuestSeed For(string vmName, VmBootstrap? bootstrap) =>
        new(bootstrap?.Hostname ?? vmName, bootstrap?.EffectiveSshKeys ?? [], bootstrap?.UserData ?? []);
}

/// <summary>A VM process found on this host that may belong to a previous run of the node.</summary>
public sealed record DiscoveredVm(VmId VmId, Epoch Epoch, int Pid);

public sealed record VcpuInfo(int Index, int ThreadId);

/// <summary>Something that happened to a running VM, pushed by the driver.</summary>
public abstract record VmEvent
{
    private VmEvent() { }

    /// <summary>One line the guest printed on its serial console.</summary>
    public sealed record ConsoleLine(string Text) : VmEvent;

    /// <summary>QMP SHUTDOWN: the guest powered off (GuestInitiated) or the host asked it to.</summary>
    public sealed record Shutdown(bool GuestInitiated, string Reason) : VmEvent;

    /// <summary>QMP STOP: vCPUs paused.</summary>
    public sealed record Stopped : VmEvent;

    /// <summary>QMP RESUME: vCPUs running.</summary>
    public sealed record Resumed : VmEvent;

    public sealed record GuestPanicked : VmEvent;

    /// <summary>The VM process is gone (QMP closed and the pid no longer exists). Always the last event.</summary>
    public sealed record Exited(string Reason) : VmEvent;
}

/// <summary>
/// One hypervisor driver on one host (QEMU, native KVM, simulated). Blocking work happens inside the
/// returned tasks; callers (actors) never block on them.
/// </summary>
public interface IHypervisor : IAsyncDisposable
{
    /// <summary>"qemu", "kvm" or "simulated".</summary>
    string Name { get; }

    /// <summary>What this host's guests run on, as the host's accelerator probe found; the host registers with it.</summary>
    HostAccelerator Acceleration => new(HostAccelerator.Tcg, "", "");

    /// <summary>
    /// Starts the VM and returns once its process runs and its control channel (QMP) is connected.
    /// Throws <see cref="HypervisorException"/> with a reason a person can act on (binary missing, image
    /// unreadable, disk full…); leaves no process and no files behind when it throws.
    /// </summary>
    Task<IVmHandle> StartAsync(VmLaunchSpec spec, CancellationToken cancellationToken);

    /// <summary>VM processes of this host that are alive now (e.g. left by a previous run of the node).</summary>
    Task<IReadOnlyList<DiscoveredVm>> DiscoverAsync(CancellationToken cancellationToken);

    /// <summary>Takes over a discovered live VM without restarting it.</summary>
    Task<IVmHandle> AdoptAsync(DiscoveredVm vm, CancellationToken cancellationToken);

    /// <summary>Kills a discovered VM that this host must not run, and removes its files.</summary>
    Task KillAsync(DiscoveredVm vm, CancellationToken cancellationToken);

    /// <summary>Removes what the driver keeps for a VM (run directory, overlay) once it is gone.</summary>
    void Cleanup(VmId vmId);

    /// <summary>The storage pools this host offers its VMs' disks (reported at registration); none by default.</summary>
    IReadOnlyList<Orchestrator.Domain.Storage.StoragePoolInfo> StoragePools => [];

    /// <summary>Removes a deleted VM's persistent disk from this host's pools, for good. Nothing where there is none.</summary>
    Task DeleteDiskAsync(VmId vmId, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Removes a deleted volume's file from this host's pool <paramref name="pool"/>, for good. Nothing where there is none.</summary>
    Task DeleteVolumeAsync(string volumeId, string pool, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Removes a disk layer no longer needed (a deleted snapshot's, a restored VM's old top) from pool <paramref name="pool"/>.</summary>
    Task DeleteDiskLayerAsync(string layer, string pool, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Applies a running VM's NICs again (their security rules changed); idempotent. Nothing where there are none.</summary>
    Task UpdateNicsAsync(VmId vmId, IReadOnlyList<Orchestrator.Domain.Networks.NicAssignment> nics, CancellationToken cancellationToken) =>
        Task.CompletedTask;

    /// <summary>This host's address for the tenant networks' VXLAN (the host registers with it); null: none.</summary>
    string? NetworkUnderlay => null;

    /// <summary>Programs the VXLAN forwarding of this host's networks: for each, the hosts its frames go to (whole).</summary>
    Task SetNetworkPeersAsync(IReadOnlyList<Orchestrator.Domain.Networks.VxlanPeers> peers, CancellationToken cancellationToken) =>
        Task.CompletedTask;

    /// <summary>Shapes the VMs' NICs on this host (whole: a VM not listed is not shaped). Nothing where VMs have no NICs.</summary>
    Task SetNetworkBandwidthAsync(Networking.HostBandwidth bandwidth, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Tells the host's fence guard that the node is alive. Called from the host agent on a timer, so a hung
    /// actor system stops the heartbeats and the guard kills the VMs after fence-after.
    /// </summary>
    void Heartbeat();
}

/// <summary>A running VM owned by one VmActor.</summary>
public interface IVmHandle : IAsyncDisposable
{
    VmId VmId { get; }
    Epoch Epoch { get; }
    int Pid { get; }

    /// <summary>Where the serial console is written.</summary>
    string ConsoleLogPath { get; }

    /// <summary>
    /// Delivers events on a driver thread, in order; <see cref="VmEvent.Exited"/> comes last. Console lines
    /// are delivered from the start of the log (so an adopted VM's banner is seen again).
    /// </summary>
    void Subscribe(Action<VmEvent> onEvent);

    /// <summary>query-cpus-fast: the host thread of each vCPU.</summary>
    Task<IReadOnlyList<VcpuInfo>> QueryVcpusAsync(CancellationToken cancellationToken);

    Task PauseAsync(CancellationToken cancellationToken);
    Task ResumeAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Asks the guest to power off: through its agent when it runs one that answers, else the ACPI power button. The
    /// process exits when the guest complies. Says which way was taken.
    /// </summary>
    Task<ShutdownRoute> RequestShutdownAsync(CancellationToken cancellationToken);

    /// <summary>Ends the process now (QMP quit, then SIGKILL) and waits until it is gone.</summary>
    Task KillAsync(CancellationToken cancellationToken);

    /// <summary>
    /// What the guest's agent reports, or null at once when the guest runs none (or the driver has no agents); null too
    /// when the agent does not answer before <paramref name="cancellationToken"/>.
    /// </summary>
    Task<GuestInfo?> QueryGuestAsync(CancellationToken cancellationToken) => Task.FromResult<GuestInfo?>(null);

    /// <summary>
    /// Connects to the guest's serial port, both ways. The connection reads whatever the guest prints as fast as it
    /// comes and hands each chunk to <paramref name="onOutput"/> (on a driver thread), so a slow reader never stalls
    /// the guest. One connection per VM at a time. Throws <see cref="NotSupportedException"/> where the driver has none.
    /// </summary>
    Task<IConsoleConnection> ConnectConsoleAsync(Action<byte[]> onOutput, CancellationToken cancellationToken) =>
        throw new NotSupportedException("this VM's driver has no interactive serial console");

    /// <summary>Plugs the volume into the running VM (its file made in its pool first when new). Throws where the driver can't.</summary>
    Task AttachVolumeAsync(Orchestrator.Domain.Storage.VolumeAssignment volume, CancellationToken cancellationToken) =>
        throw new NotSupportedException("this VM's driver cannot attach volumes to a running VM");

    /// <summary>Unplugs the volume (by its node name) from the running VM once its guest let go of it; nothing when it is not plugged.</summary>
    Task DetachVolumeAsync(string nodeName, CancellationToken cancellationToken) =>
        throw new NotSupportedException("this VM's driver cannot detach volumes from a running VM");

    /// <summary>The node names (<see cref="Orchestrator.Domain.Storage.VolumeAssignment.NodeName"/>) of the volumes plugged into the running VM now.</summary>
    Task<IReadOnlyList<string>> QueryVolumesAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<string>>([]);

    /// <summary>Caps the VM's disks (its disk and volumes together) from now on; a driver whose VMs have no disks has nothing to cap.</summary>
    Task SetDiskThrottleAsync(Orchestrator.Domain.Shares.DiskThrottle throttle, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Makes the running VM write to <paramref name="disk"/>'s layer, a new overlay on the layer it writes now, which from
    /// then on never changes (a live external snapshot). Nothing when it writes there already. With
    /// <paramref name="freezeGuest"/>, the guest's agent freezes its filesystems around it; without one it is crash-consistent.
    /// </summary>
    Task<DiskSwitch> SwitchDiskLayerAsync(VmDiskRequest disk, bool freezeGuest, CancellationToken cancellationToken) =>
        throw new NotSupportedException("this VM's driver cannot snapshot a running VM's disk");
}

/// <summary>A live link to a guest's serial port.</summary>
public interface IConsoleConnection : IAsyncDisposable
{
    /// <summary>Types <paramref name="input"/> into the guest's serial port.</summary>
    ValueTask WriteAsync(ReadOnlyMemory<byte> input, CancellationToken cancellationToken);

    /// <summary>Completes with the reason once the link is gone (the VM exited, or the socket closed).</summary>
    Task<string> Closed { get; }
}

public sealed class HypervisorException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The VM's disk is locked by another process: its previous copy still holds it open (a host frozen or cut off, not yet
/// fenced). The disk's lock is the resource fence; the start may succeed once that copy is gone.
/// </summary>
public sealed class DiskLockedException(string message) : Exception(message);
