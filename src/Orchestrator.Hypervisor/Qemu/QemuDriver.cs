using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Shares;
using Orchestrator.Domain.Storage;
using Orchestrator.Hypervisor.Accel;
using Orchestrator.Hypervisor.Storage;
using Orchestrator.Hypervisor.Networking;
using Orchestrator.Guard.Protocol;

namespace Orchestrator.Hypervisor.Qemu;

/// <summary>
/// One <c>qemu-system-x86_64</c> process per VM, controlled over QMP, spawned by the host's fence guard (which kills
/// them when the node's heartbeats stop, and whose death kills them). VMs outlive the driver: disposing it detaches.
/// </summary>
public sealed class QemuDriver : IHypervisor
{
    /// <summary>sun_path is 108 bytes; QEMU and some tools are stricter, so the driver keeps well below.</summary>
    internal const int MaxSocketPathLength = 99;

    private const string BaseAppend = "console=ttyS0 quiet panic=-1";

    /// <summary>The id of the guest agent's chardev, as QMP query-chardev names it.</summary>
    internal const string QgaChardev = "qga0";
    private static readonly string SampleVmDir = new('0', 32);

    private readonly QemuDriverOptions _options;
    private readonly string _runDirectory;
    private readonly string _vmsDirectory;
    private readonly GuardClient _guard;
    private readonly ConcurrentDictionary<VmId, QemuVmHandle> _handles = new();

    public QemuDriver(QemuDriverOptions options)
    {
        _options = options;
        _runDirectory = Path.GetFullPath(options.RunDirectory);
        _vmsDirectory = Path.Combine(_runDirectory, "vms");
        var guardSocket = Path.Combine(_runDirectory, "guard.sock");
        CheckSocketPath(guardSocket);
        CheckSocketPath(VmPaths.For(_vmsDirectory, SampleVmDir).QmpSocket);
        CheckSocketPath(VmPaths.For(_vmsDirectory, SampleVmDir).ConsoleSocket);

        var guardPath = options.GuardPath ?? DefaultGuardPath();
        _guard = new GuardClient(guardSocket, Path.Combine(_runDirectory, "guard.log"), options.FenceAfter, guardPath);
    }

    public string Name => "qemu";

    /// <summary>"kvm" or "tcg": what VMs started by this driver use.</summary>
    public string Accelerator => _options.Accelerator.Accelerator;

    internal QemuDriverOptions Options => _options;

    public HostAccelerator Acceleration => _options.Accelerator.ForHost();

    public string RunDirectory => _runDirectory;

    public async Task<IVmHandle> StartAsync(VmLaunchSpec spec, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (spec.Vcpus is < 1 or > 255)
        {
            throw new HypervisorException($"VM {spec.VmId}: {spec.Vcpus} vCPUs is outside 1..255");
        }

        if (spec.MemoryMiB < 32)
        {
            throw new HypervisorException($"VM {spec.VmId}: {spec.MemoryMiB} MiB of memory is too little to boot (at least 32)");
        }

        var qemu = ResolveBinary(_options.QemuBinary);
        GuestImageFiles.CheckReadable(spec.Image);

        var paths = VmPaths.For(_vmsDirectory, spec.VmId.Compact);
        var marker = Marker(spec.VmId);
        if (Directory.Exists(paths.Directory))
        {
            if (ReadPid(paths) is { } running && ProcessProbe.IsAlive(running, marker))
            {
                throw new HypervisorException($"VM {spec.VmId} already runs on this host (pid {running})");
            }

            DeleteDirectory(paths.Directory);
        }

        int? pid = null;
        QemuVmHandle? handle = null;
        try
        {
            EnsureDirectory(_vmsDirectory);
            EnsureDirectory(paths.Directory);
            GuestInitrd.Write(spec.Image.InitrdPath, paths.Initrd, spec.Name);
            if (spec.Seed is { } seed)
            {
                // Rebuilt at every start from the spec (the directory was cleared above); an adopted VM keeps the seed it runs with.
                await File.WriteAllBytesAsync(paths.Seed, NoCloudSeed.Build(spec.VmId, seed, DateTimeOffset.UtcNow), cancellationToken);
            }

            var disk = spec.Disk is { } wanted
                ? await PoolFor(spec.VmId, wanted).EnsureLayerAsync(wanted.Layer ?? spec.VmId.Compact, wanted.Backing, wanted.SizeGiB,
                    spec.Image.RootDiskPath, cancellationToken, spec.Image.RootDiskFormat)
                : null;
            if (disk is null && spec.Image.RootDiskPath is { } rootDisk)
            {
                await QemuImg.CreateQcow2Async(paths.RootDisk, rootDisk, null, cancellationToken, spec.Image.RootDiskFormat);
            }

            var volumes = new List<(VolumeAssignment Volume, PooledDisk File)>();
            foreach (var volume in spec.Volumes ?? [])
            {
                volumes.Add((volume, await EnsureVolumeAsync(volume, cancellationToken)));
            }

            await File.WriteAllTextAsync(paths.Epoch, spec.Epoch.ToString(), cancellationToken);
            await PlugNicsAsync(spec, cancellationToken);

            var argv = BuildArguments(qemu, spec, paths, _options, disk, volumes);
            var spawned = await _guard.SendAsync(
                new GuardRequest
                {
                    Op = GuardOps.Spawn,
                    VmId = spec.VmId.Compact,
                    Argv = argv,
                    WorkingDir = paths.Directory,
                    StdoutPath = paths.QemuLog,
                },
                cancellationToken);
            if (!spawned.Ok || spawned.Pid is null)
            {
                throw new HypervisorException($"VM {spec.VmId}: the fence guard could not start QEMU: {spawned.Error}");
            }

            pid = spawned.Pid.Value;
            handle = new QemuVmHandle(this, spec.VmId, spec.Epoch, pid.Value, paths, marker);
            await ConnectWhenReadyAsync(handle, cancellationToken);
            _handles[spec.VmId] = handle;
            return handle;
        }
        catch (Exception ex)
        {
            if (handle is not null)
            {
                await handle.DisposeAsync();
            }

            if (pid is { } started)
            {
                await KillProcessAsync(started, marker, CancellationToken.None);
            }

            DeleteDirectory(paths.Directory);
            await UnplugNicsAsync(spec.VmId);
            throw ex switch
            {
                HypervisorException or DiskLockedException or OperationCanceledException => ex,
                IOException io when IsDiskFull(io) =>
                    new HypervisorException($"VM {spec.VmId}: no space left in {_runDirectory} to prepare its files", ex),
                _ => new HypervisorException($"VM {spec.VmId} could not start: {ex.Message}", ex),
            };
        }
    }

    public Task<IReadOnlyList<DiscoveredVm>> DiscoverAsync(CancellationToken cancellationToken)
    {
        var found = new List<DiscoveredVm>();
        if (!Directory.Exists(_vmsDirectory))
        {
            return Task.FromResult<IReadOnlyList<DiscoveredVm>>(found);
        }

        foreach (var directory in Directory.EnumerateDirectories(_vmsDirectory))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!Guid.TryParseExact(Path.GetFileName(directory), "N", out var guid))
            {
                continue;
            }

            var vmId = new VmId(guid);
            var paths = VmPaths.For(_vmsDirectory, vmId.Compact);
            if (ReadPid(paths) is { } pid && ProcessProbe.IsAlive(pid, Marker(vmId)))
            {
                found.Add(new DiscoveredVm(vmId, ReadEpoch(paths), pid));
            }
        }

        return Task.FromResult<IReadOnlyList<DiscoveredVm>>(found);
    }

    public async Task<IVmHandle> AdoptAsync(DiscoveredVm vm, CancellationToken cancellationToken)
    {
        var marker = Marker(vm.VmId);
        if (!ProcessProbe.IsAlive(vm.Pid, marker))
        {
            throw new HypervisorException($"VM {vm.VmId} (pid {vm.Pid}) is no longer running");
        }

        var paths = VmPaths.For(_vmsDirectory, vm.VmId.Compact);
        var handle = new QemuVmHandle(this, vm.VmId, vm.Epoch, vm.Pid, paths, marker);
        try
        {
            await ConnectWhenReadyAsync(handle, cancellationToken);
        }
        catch (Exception ex)
        {
            await handle.DisposeAsync();
            throw ex is HypervisorException or OperationCanceledException
                ? ex
                : new HypervisorException($"VM {vm.VmId}: cannot adopt pid {vm.Pid}: {ex.Message}", ex);
        }

        _handles[vm.VmId] = handle;
        return handle;
    }

    public async Task KillAsync(DiscoveredVm vm, CancellationToken cancellationToken)
    {
        if (_handles.TryGetValue(vm.VmId, out var handle) && handle.Pid == vm.Pid)
        {
            await handle.KillAsync(cancellationToken);
            await handle.DisposeAsync();
        }
        else
        {
            await KillProcessAsync(vm.Pid, Marker(vm.VmId), cancellationToken);
        }

        Cleanup(vm.VmId);
    }

    public void Cleanup(VmId vmId)
    {
        _handles.TryRemove(vmId, out _);
        DeleteDirectory(VmPaths.For(_vmsDirectory, vmId.Compact).Directory);
        if (_options.Networking is not null)
        {
            // A few ip and nft commands: not on the caller's (an actor's) thread. A start of the same VM waits for them.
            _unplugs[vmId] = Task.Run(() => UnplugNicsAsync(vmId));
        }
    }

    private readonly ConcurrentDictionary<VmId, Task> _unplugs = new();

    /// <summary>Completes once the VM's NICs are gone from this host after <see cref="Cleanup"/> (at once if none were).</summary>
    public Task UnpluggedAsync(VmId vmId) => _unplugs.TryGetValue(vmId, out var unplug) ? unplug : Task.CompletedTask;

    private async Task PlugNicsAsync(VmLaunchSpec spec, CancellationToken cancellationToken)
    {
        if (spec.Nics is not { Count: > 0 } nics)
        {
            return;
        }

        if (_options.Networking is not { } networking)
        {
            throw new HypervisorException($"VM {spec.VmId} has {nics.Count} NIC(s) and this host has no networking configured");
        }

        if (_unplugs.TryRemove(spec.VmId, out var unplug))
        {
            await unplug;
        }

        await networking.PlugAsync(spec.VmId, nics, cancellationToken);
    }

    private async Task UnplugNicsAsync(VmId vmId)
    {
        if (_options.Networking is { } networking)
        {
            try
            {
                await networking.UnplugAsync(vmId, CancellationToken.None);
            }
            catch (HypervisorException)
            {
                // A device already gone is what was wanted; anything left is removed with its network later.
            }
        }
    }

    public void Heartbeat() => _guard.Heartbeat();

    public IReadOnlyList<StoragePoolInfo> StoragePools => _options.StoragePools.Select(p => p.Info).ToList();

    public async Task DeleteDiskAsync(VmId vmId, CancellationToken cancellationToken)
    {
        foreach (var pool in _options.StoragePools)
        {
            await pool.DeleteDiskAsync(vmId, cancellationToken);
        }
    }

    /// <summary>The volume's file in its pool on this host, made (blank) or grown as the ledger says.</summary>
    internal Task<PooledDisk> EnsureVolumeAsync(VolumeAssignment volume, CancellationToken cancellationToken) =>
        PoolNamed(volume.Pool, $"volume {volume.Id}").EnsureVolumeAsync(volume.Id, volume.SizeGiB, cancellationToken);

    public Task DeleteVolumeAsync(string volumeId, string pool, CancellationToken cancellationToken) =>
        PoolNamed(pool, $"volume {volumeId}").DeleteVolumeAsync(volumeId, cancellationToken);

    public Task DeleteDiskLayerAsync(string layer, string pool, CancellationToken cancellationToken) =>
        PoolNamed(pool, $"disk layer {layer}").DeleteLayerAsync(layer, cancellationToken);

    /// <summary>Where the VM's disk layer is on this host: the file its QEMU opens.</summary>
    internal string DiskLayerPath(VmId vmId, VmDiskRequest disk) => PoolFor(vmId, disk).LayerPath(disk.Layer ?? vmId.Compact);

    public string? NetworkUnderlay => _options.Networking?.Underlay;

    public Task UpdateNicsAsync(VmId vmId, IReadOnlyList<NicAssignment> nics, CancellationToken cancellationToken) =>
        _options.Networking is { } networking && nics.Count > 0 ? networking.PlugAsync(vmId, nics, cancellationToken) : Task.CompletedTask;

    public Task SetNetworkPeersAsync(IReadOnlyList<VxlanPeers> peers, CancellationToken cancellationToken) =>
        _options.Networking?.SetPeersAsync(peers, cancellationToken) ?? Task.CompletedTask;

    public Task SetNetworkBandwidthAsync(HostBandwidth bandwidth, CancellationToken cancellationToken) =>
        _options.Networking?.SetBandwidthAsync(bandwidth, cancellationToken) ?? Task.CompletedTask;

    private IStoragePool PoolNamed(string pool, string what) =>
        _options.StoragePools.FirstOrDefault(p => p.Info.Id == pool)
        ?? throw new HypervisorException($"{what}: its pool '{pool}' is not configured on this host (orchestrator.storage.pools)");

    private IStoragePool PoolFor(VmId vmId, VmDiskRequest disk) =>
        (disk.PoolId is null ? _options.StoragePools.FirstOrDefault() : _options.StoragePools.FirstOrDefault(p => p.Info.Id == disk.PoolId))
        ?? throw new HypervisorException(disk.PoolId is null
            ? $"VM {vmId} has a disk but this host has no storage pool (orchestrator.storage.pools)"
            : $"VM {vmId}: its disk's pool '{disk.PoolId}' is not configured on this host (orchestrator.storage.pools)");

    public async ValueTask DisposeAsync()
    {
        // Detach only: the VMs keep running under the guard, and the next driver adopts them.
        foreach (var handle in _handles.Values)
        {
            await handle.DisposeAsync();
        }

        _handles.Clear();
        await _guard.DisposeAsync();
    }

    /// <summary>The guard's pid (starting the guard if none runs). For diagnostics and tests.</summary>
    internal async Task<int> GetGuardPidAsync(CancellationToken cancellationToken)
    {
        var hello = await _guard.SendAsync(new GuardRequest { Op = GuardOps.Hello }, cancellationToken);
        return hello.GuardPid ?? throw new HypervisorException($"the fence guard did not say its pid: {hello.Error}");
    }

    /// <summary>
    /// Ends this run directory's fence guard, and with it any VM it still holds. For a process done with its VMs for
    /// good, such as a benchmark; a node never does this, its guard outlives it on purpose. The driver starts no VM after.
    /// </summary>
    public async Task StopGuardAsync(CancellationToken cancellationToken)
    {
        var pid = await GetGuardPidAsync(cancellationToken);
        // First the client: a heartbeat or request after the kill would start a new guard.
        await _guard.DisposeAsync();
        try
        {
            using var guard = Process.GetProcessById(pid);
            guard.Kill();
            await guard.WaitForExitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            // It exited by itself meanwhile.
        }
    }

    internal void Forget(QemuVmHandle handle) =>
        _handles.TryRemove(new KeyValuePair<VmId, QemuVmHandle>(handle.VmId, handle));

    /// <summary>The exit code the guard saw for one of its children, when it knows.</summary>
    internal async Task<int?> TryGetExitCodeAsync(int pid)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            var status = await _guard.SendAsync(new GuardRequest { Op = GuardOps.Status, Pid = pid }, timeout.Token, startIfAbsent: false);
            return status is { Ok: true, Running: false } ? status.ExitCode : null;
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or HypervisorException or System.Net.Sockets.SocketException)
        {
            return null;
        }
    }

    /// <summary>SIGKILL through the guard (the parent), or directly when the guard cannot; waits until it is gone.</summary>
    internal async Task KillProcessAsync(int pid, string marker, CancellationToken cancellationToken)
    {
        if (!ProcessProbe.IsAlive(pid, marker))
        {
            return;
        }

        var killed = false;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(3));
            var reply = await _guard.SendAsync(new GuardRequest { Op = GuardOps.Kill, Pid = pid }, timeout.Token, startIfAbsent: false);
            killed = reply.Ok;
        }
        catch (Exception ex) when (ex is IOException or HypervisorException or System.Net.Sockets.SocketException ||
                                   (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // No guard, or not its child (a guard restarted since): kill it ourselves below.
        }

        if (!killed && ProcessProbe.IsAlive(pid, marker))
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                process.Kill();
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Gone already.
            }
        }

        var deadline = Environment.TickCount64 + 10_000;
        while (ProcessProbe.IsAlive(pid, marker))
        {
            if (Environment.TickCount64 > deadline)
            {
                throw new HypervisorException($"pid {pid} survived SIGKILL for 10 s");
            }

            await Task.Delay(25, cancellationToken);
        }
    }

    /// <summary>Waits for QEMU's QMP socket and connects, failing fast with QEMU's own words when it exits first.</summary>
    private async Task ConnectWhenReadyAsync(QemuVmHandle handle, CancellationToken cancellationToken)
    {
        var deadline = Environment.TickCount64 + (long)_options.StartTimeout.TotalMilliseconds;
        Exception? lastError = null;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!ProcessProbe.IsAlive(handle.Pid, handle.Marker))
            {
                var code = await TryGetExitCodeAsync(handle.Pid);
                var said = Tail(handle.Paths.QemuLog);
                var message = $"QEMU exited while starting VM {handle.VmId}{(code is { } c ? $" (exit code {c})" : "")}: {said}";
                // QEMU's image locking: another process (the VM's old copy on a frozen or fenced host) holds the disk.
                throw said.Contains("Failed to get \"write\" lock", StringComparison.Ordinal)
                    ? new DiskLockedException(message)
                    : new HypervisorException(message);
            }

            if (Environment.TickCount64 > deadline)
            {
                throw new HypervisorException(
                    $"VM {handle.VmId}: QMP at {handle.Paths.QmpSocket} did not answer within {_options.StartTimeout.TotalSeconds:F0} s" +
                    (lastError is null ? "" : $" ({lastError.Message})"));
            }

            if (File.Exists(handle.Paths.QmpSocket))
            {
                try
                {
                    using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    attempt.CancelAfter(TimeSpan.FromSeconds(5));
                    await handle.ConnectAsync(attempt.Token);
                    return;
                }
                catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException ||
                                           (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                {
                    // Not listening yet, or another client holds QEMU's single QMP connection.
                    lastError = ex;
                }
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    internal static string[] BuildArguments(string qemu, VmLaunchSpec spec, VmPaths paths, QemuDriverOptions options, PooledDisk? disk = null,
        IReadOnlyList<(VolumeAssignment Volume, PooledDisk File)>? volumes = null)
    {
        var kvm = options.Accelerator.IsHardware;
        var append = BaseAppend;
        if (spec.BurnCpu)
        {
            append += " orchestrator.burn=1";
        }

        if (!string.IsNullOrWhiteSpace(spec.Image.KernelAppend))
        {
            append += " " + spec.Image.KernelAppend.Trim();
        }

        if (!string.IsNullOrWhiteSpace(options.ExtraKernelAppend))
        {
            append += " " + options.ExtraKernelAppend.Trim();
        }

        // Only ids, numbers and our own paths: the tenant's VM name reaches the guest inside its initrd, its bootstrap
        // inside the seed disk.
        string[] seedDisk = spec.Seed is null
            ? []
            :
            [
                "-drive", $"file={EscapeOption(paths.Seed)},if=none,id=seed0,format=raw,readonly=on",
                "-device", "virtio-blk-pci,drive=seed0",
            ];
        // Taps the host made beforehand (HostNetworking), named from the VM's id; QEMU runs no scripts. host_mtu tells
        // the guest's driver its MTU: the VXLAN between hosts takes 50 bytes of the underlay's 1500.
        string[] nics =
        [
            .. (spec.Nics ?? []).SelectMany(nic => new[]
            {
                "-netdev", $"tap,id=nic{nic.Index},ifname={NetworkDeviceNames.Tap(spec.VmId, nic.Index)},script=no,downscript=no",
                "-device", $"virtio-net-pci,netdev=nic{nic.Index},mac={nic.Mac},host_mtu={HostNetworking.GuestMtu}",
            }),
        ];
        string[] rootDisk = spec.Image.RootDiskPath is null || disk is not null
            ? []
            : [.. ThrottledDisk(RootDrive, paths.RootDisk, "qcow2"), "-device", $"virtio-blk-pci,drive={RootDrive}"];
        string[] diskThrottle = ["-object", DiskThrottleGroup(spec.DiskThrottle ?? DiskThrottle.None)];
        return
        [
            qemu,
            "-name", $"guest=vm-{spec.VmId.Compact},debug-threads=on",
            "-machine", options.Machine,
            "-accel", kvm ? "kvm" : "tcg,thread=multi",
            // The model the probe booted with: plain `host` aborts QEMU on hosts that refuse one of its MSRs.
            "-cpu", options.Accelerator.CpuModel,
            "-smp", spec.Vcpus.ToString(CultureInfo.InvariantCulture),
            "-m", spec.MemoryMiB.ToString(CultureInfo.InvariantCulture),
            "-kernel", spec.Image.KernelPath,
            "-initrd", paths.Initrd,
            "-append", append,
            // The serial port both ways on a socket the node connects to (again, after a restart); logfile= writes every
            // byte the guest prints to console.log whether or not anyone is connected.
            "-chardev", $"socket,id=con0,path={EscapeOption(paths.ConsoleSocket)},server=on,wait=off," +
                        $"logfile={EscapeOption(paths.ConsoleLog)},logappend=on",
            "-serial", "chardev:con0",
            // The -chardev form (rather than -qmp unix:…) lets a path hold a comma, escaped as ",,".
            "-chardev", $"socket,id=qmp0,path={EscapeOption(paths.QmpSocket)},server=on,wait=off",
            "-mon", "chardev=qmp0,mode=control",
            // The guest agent's port, always there: a guest that runs qemu-guest-agent opens it, one that doesn't never
            // does (QMP query-chardev tells which, so nobody waits on a guest without an agent).
            "-chardev", $"socket,id={QgaChardev},path={EscapeOption(paths.QgaSocket)},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-device", $"virtserialport,chardev={QgaChardev},name=org.qemu.guest_agent.0",
            .. diskThrottle,
            .. rootDisk,
            .. PersistentDisk(disk),
            "-display", "none",
            "-monitor", "none",
            "-nodefaults",
            "-no-user-config",
            "-pidfile", paths.PidFile,
            "-sandbox", "on",
            "-no-reboot",
            .. seedDisk,
            .. nics,
            .. VolumeSlots(options),
            .. (volumes ?? []).SelectMany((v, slot) => VolumeArguments(v.Volume, v.File, VolumeBus(options, slot))),
        ];
    }

    // ---- Volumes (issue 18): each a qcow2 blockdev and a virtio-blk device named from the volume's id only, on a slot that
    // can be hot-plugged. q35's root bus takes no hot-plugged devices: a root port per volume a VM may have does.

    private static bool HasRootPorts(QemuDriverOptions options) => options.Machine.Contains("q35", StringComparison.Ordinal);

    /// <summary>The bus a volume's device goes on: a root port of its own on q35, the root bus (ACPI hotplug) on pc.</summary>
    internal static string? VolumeBus(QemuDriverOptions options, int slot) => HasRootPorts(options) ? $"vslot{slot}" : null;

    /// <summary>The hot-plug root ports (no I/O window: virtio-blk needs none, and 8 windows would take a quarter of the I/O space).</summary>
    private static string[] VolumeSlots(QemuDriverOptions options) => HasRootPorts(options)
        ? [.. Enumerable.Range(0, VolumeRecord.MaxPerVm).SelectMany(slot => new[]
            {
                "-device", $"pcie-root-port,id=vslot{slot},chassis={VolumeChassisBase + slot},io-reserve=0",
            })]
        : [];

    private const int VolumeChassisBase = 100;

    private static string[] VolumeArguments(VolumeAssignment volume, PooledDisk file, string? bus) =>
    [
        "-blockdev", $"driver={file.Format},node-name={volume.NodeName},discard=unmap,{BlockFiles.CommandLineOptions(file.DriveFile, "file.")}",
        "-blockdev", $"driver=throttle,throttle-group={DiskThrottleGroupId},file={volume.NodeName},node-name={VolumeThrottleNode(volume.NodeName)}",
        "-device", $"virtio-blk-pci,drive={VolumeThrottleNode(volume.NodeName)},id={volume.DeviceId},serial={volume.Serial}{(bus is null ? "" : ",bus=" + bus)}",
    ];

    // ---- Disk I/O limits (issue 18, part 6): one QEMU throttle group per VM, as libvirt's iotune with a group name, so that a
    // tenant's IOPS and bandwidth cap its disk and volumes together. Each disk is a throttle filter node over its format node;
    // the group is always there (no limit: zeros) so that a running VM's limits change with one qom-set.

    /// <summary>The VM's throttle group (one per QEMU process, so a fixed id: nothing of the tenant's).</summary>
    internal const string DiskThrottleGroupId = "iotg0";

    /// <summary>The throttle filter over a volume's format node (the device's drive).</summary>
    internal static string VolumeThrottleNode(string volumeNode) => "vt" + volumeNode[2..];

    internal static string DiskThrottleGroup(DiskThrottle throttle) =>
        string.Create(CultureInfo.InvariantCulture,
            $"throttle-group,id={DiskThrottleGroupId},x-iops-total={throttle.Iops ?? 0},x-bps-total={throttle.Bps ?? 0}");

    /// <summary>The group's limits as QMP's qom-set takes them (0: none).</summary>
    internal static Dictionary<string, object> DiskThrottleLimits(DiskThrottle throttle) => new()
    {
        ["iops-total"] = throttle.Iops ?? 0,
        ["bps-total"] = throttle.Bps ?? 0,
    };

    /// <summary>
    /// A disk as three block nodes: the file, its format (<c>{node}-fmt</c>: the top layer a snapshot goes over), and the
    /// throttle filter <paramref name="node"/> the device writes through. QEMU's image locking stays on.
    /// </summary>
    private static string[] ThrottledDisk(string node, string path, string format) =>
    [
        "-blockdev", $"{BlockFiles.CommandLineOptions(path)},node-name={node}-file,discard=unmap",
        "-blockdev", $"driver={format},file={node}-file,node-name={node}-fmt,discard=unmap",
        "-blockdev", $"driver=throttle,throttle-group={DiskThrottleGroupId},file={node}-fmt,node-name={node}",
    ];

    private const string RootDrive = "root0";

    /// <summary>
    /// The VM's persistent disk from its pool, virtio-blk with QEMU's image locking left on (a second QEMU opening it
    /// fails). The guest finds it by its serial; an image's root disk is found by its label, so either works as the root.
    /// </summary>
    private static string[] PersistentDisk(PooledDisk? disk) => disk is null
        ? []
        :
        [
            .. ThrottledDisk(DiskDrive, disk.DriveFile, disk.Format),
            "-device", $"virtio-blk-pci,drive={DiskDrive},serial={DiskSerial}",
        ];

    /// <summary>The throttle node the VM's persistent disk device writes through (the device's drive).</summary>
    internal const string DiskDrive = "disk0";

    /// <summary>The serial the VM's persistent disk shows its guest (/sys/block/vdX/serial).</summary>
    public const string DiskSerial = "orchestrator-disk";

    /// <summary>What /proc/&lt;pid&gt;/cmdline of this VM's QEMU contains, and nothing else's does.</summary>
    internal static string Marker(VmId vmId) => "guest=vm-" + vmId.Compact;

    internal static string EscapeOption(string value) => value.Replace(",", ",,", StringComparison.Ordinal);

    /// <summary>An absolute path to the QEMU binary: <paramref name="binary"/> itself when it has a slash, else found on PATH.</summary>
    internal static string ResolveBinary(string binary)
    {
        if (binary.Contains('/'))
        {
            return File.Exists(binary)
                ? Path.GetFullPath(binary)
                : throw new HypervisorException($"QEMU binary {binary} does not exist (QemuDriverOptions.QemuBinary)");
        }

        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':'))
        {
            var candidate = Path.Combine(directory.Length == 0 ? "." : directory, binary);
            if (File.Exists(candidate) && (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0)
            {
                return candidate;
            }
        }

        throw new HypervisorException($"QEMU binary '{binary}' is not on PATH: install qemu-system-x86 or set QemuDriverOptions.QemuBinary");
    }

    private static void CheckSocketPath(string path)
    {
        if (path.Length > MaxSocketPathLength)
        {
            throw new HypervisorException(
                $"unix socket path {path} is {path.Length} characters, over the limit of {MaxSocketPathLength}: " +
                "choose a shorter QemuDriverOptions.RunDirectory");
        }
    }

    internal static void EnsureDirectory(string path)
    {
        // Sockets and consoles of every tenant's VMs live here: owner only.
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private static void DeleteDirectory(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Best effort: a leftover directory is replaced at the next start of that VM.
        }
    }

    private static int? ReadPid(VmPaths paths)
    {
        try
        {
            return int.TryParse(File.ReadAllText(paths.PidFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static Epoch ReadEpoch(VmPaths paths)
    {
        try
        {
            return long.TryParse(File.ReadAllText(paths.Epoch).Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var epoch)
                ? new Epoch(epoch)
                : Epoch.Zero;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return Epoch.Zero;
        }
    }

    internal static string Tail(string path, int maxLines = 12)
    {
        try
        {
            var lines = File.ReadAllLines(path).Where(l => l.Length > 0).TakeLast(maxLines).ToArray();
            return lines.Length == 0 ? "(QEMU printed nothing)" : string.Join(Environment.NewLine, lines);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return "(no QEMU output)";
        }
    }

    private static bool IsDiskFull(IOException ex) =>
        ex.HResult == 28 /* ENOSPC */ || ex.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase);

    private static string DefaultGuardPath()
    {
        // The executable that hosts this driver (the node) references the guard project, so the guard's dll and
        // runtimeconfig sit next to this assembly in its bin folder.
        var here = Path.GetDirectoryName(typeof(QemuDriver).Assembly.Location);
        return Path.Combine(string.IsNullOrEmpty(here) ? AppContext.BaseDirectory : here, "orchestrator-guard.dll");
    }
}

/// <summary>The files of one VM under the run directory.</summary>
internal sealed record VmPaths(
    string Directory, string QmpSocket, string PidFile, string ConsoleLog, string Initrd, string Epoch, string QemuLog,
    string ConsoleSocket, string Seed, string QgaSocket, string RootDisk)
{
    public static VmPaths For(string vmsDirectory, string compactId)
    {
        var directory = Path.Combine(vmsDirectory, compactId);
        return new VmPaths(
            directory,
            Path.Combine(directory, "qmp.sock"),
            Path.Combine(directory, "qemu.pid"),
            Path.Combine(directory, "console.log"),
            Path.Combine(directory, "initrd.img"),
            Path.Combine(directory, "epoch"),
            Path.Combine(directory, "qemu.log"),
            Path.Combine(directory, "console.sock"),
            Path.Combine(directory, "seed.iso"),
            Path.Combine(directory, "qga.sock"),
            Path.Combine(directory, "disk.qcow2"));
    }
}
