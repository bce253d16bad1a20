// One running QEMU VM: its QMP connection, the tail of its serial console, and the watch for its exit.
using System.Text;
using System.Text.Json;
using Orchestrator.Domain;

namespace Orchestrator.Hypervisor.Qemu;

internal sealed class QemuVmHandle : IVmHandle
{
    private static readonly TimeSpan ConsolePollInterval = TimeSpan.FromMilliseconds(75);
    private static readonly TimeSpan QuitGrace = TimeSpan.FromSeconds(2);

    /// <summary>How long a guest whose agent listens has to accept a shutdown before the power button is pressed instead.</summary>
    private static readonly TimeSpan AgentShutdownTimeout = TimeSpan.FromSeconds(3);

    /// <summary>How long to wait for an error reply to guest-shutdown (success has none).</summary>
    private static readonly TimeSpan AgentShutdownErrorWait = TimeSpan.FromMilliseconds(500);

    private readonly QemuDriver _driver;
    private readonly VmEventChannel _events = new();
    private readonly TaskCompletionSource<string> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _detach = new();
    private readonly CancellationTokenSource _stopTail = new();
    private QmpClient? _qmp;
    private Task _tail = Task.CompletedTask;
    private Task _monitor = Task.CompletedTask;
    private volatile bool _killRequested;
    private volatile string? _shutdownReason;
    private int _disposed;

    public QemuVmHandle(QemuDriver driver, VmId vmId, Epoch epoch, int pid, VmPaths paths, string marker)
    {
        _driver = driver;
        VmId = vmId;
        Epoch = epoch;
        Pid = pid;
        Paths = paths;
        Marker = marker;
    }

    public VmId VmId { get; }
    public Epoch Epoch { get; }
    public int Pid { get; }
    public string ConsoleLogPath => Paths.ConsoleLog;
    internal VmPaths Paths { get; }
    internal string Marker { get; }

    /// <summary>Completes with the exit reason once the process is gone and <see cref="VmEvent.Exited"/> is queued.</summary>
    internal Task<string> Exited => _exited.Task;

    /// <summary>Connects QMP; once connected, starts the console tail and the exit watch.</summary>
    internal async Task ConnectAsync(CancellationToken cancellationToken)
    {
        _qmp = await QmpClient.ConnectAsync(Paths.QmpSocket, OnQmpEvent, cancellationToken);
        _tail = Task.Run(TailConsoleAsync, CancellationToken.None);
        _monitor = Task.Run(WatchExitAsync, CancellationToken.None);
    }

    public void Subscribe(Action<VmEvent> onEvent) => _events.Subscribe(onEvent);

    public async Task<IReadOnlyList<VcpuInfo>> QueryVcpusAsync(CancellationToken cancellationToken)
    {
        var result = await ExecuteAsync("query-cpus-fast", cancellationToken);
        var vcpus = new List<VcpuInfo>();
        foreach (var cpu in result.EnumerateArray())
        {
            vcpus.Add(new VcpuInfo(cpu.GetProperty("cpu-index").GetInt32(), cpu.GetProperty("thread-id").GetInt32()));
        }

        return vcpus.OrderBy(v => v.Index).ToList();
    }

    public async Task<IConsoleConnection> ConnectConsoleAsync(Action<byte[]> onOutput, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return await SerialSocketConnection.ConnectAsync(Paths.ConsoleSocket, onOutput, cancellationToken);
    }

    public Task PauseAsync(CancellationToken cancellationToken) => ExecuteAsync("stop", cancellationToken);

    public Task ResumeAsync(CancellationToken cancellationToken) => ExecuteAsync("cont", cancellationToken);

    public async Task<ShutdownRoute> RequestShutdownAsync(CancellationToken cancellationToken)
    {
        if (await TryAgentShutdownAsync(cancellationToken))
        {
            return ShutdownRoute.GuestAgent;
        }

        await ExecuteAsync("system_powerdown", cancellationToken);
        return ShutdownRoute.AcpiPowerButton;
    }

    public async Task<GuestInfo?> QueryGuestAsync(CancellationToken cancellationToken)
    {
        if (!await AgentListensAsync(cancellationToken))
        {
            return null;
        }

        try
        {
            await using var agent = await QgaClient.ConnectAsync(Paths.QgaSocket, cancellationToken);
            return await agent.QueryInfoAsync(cancellationToken);
        }
        catch (Exception ex) when (IsAgentFailure(ex))
        {
            return null;
        }
    }

    /// <summary>guest-shutdown when the guest's agent listens and accepts it in time; false when the power button must do.</summary>
    private async Task<bool> TryAgentShutdownAsync(CancellationToken cancellationToken)
    {
        if (!await AgentListensAsync(cancellationToken))
        {
            return false;
        }

        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(AgentShutdownTimeout);
            await using var agent = await QgaClient.ConnectAsync(Paths.QgaSocket, timeout.Token);
            await agent.ShutdownAsync(AgentShutdownErrorWait, timeout.Token);
            return true;
        }
        catch (Exception ex) when (IsAgentFailure(ex) && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>
    /// Whether a program in the guest holds the agent's virtio-serial port open (QMP query-chardev's frontend-open): a
    /// guest without qemu-guest-agent never does, and then nobody waits for an answer that cannot come.
    /// </summary>
    internal async Task<bool> AgentListensAsync(CancellationToken cancellationToken)
    {
        try
        {
            var chardevs = await ExecuteAsync("query-chardev", cancellationToken);
            return chardevs.EnumerateArray().Any(c =>
                c.TryGetProperty("label", out var label) && label.GetString() == QemuDriver.QgaChardev &&
                c.TryGetProperty("frontend-open", out var open) && open.ValueKind == JsonValueKind.True);
        }
        catch (HypervisorException)
        {
            return false;
        }
    }

    private static bool IsAgentFailure(Exception ex) =>
        ex is IOException or System.Net.Sockets.SocketException or QgaException or JsonException or OperationCanceledException;

    public async Task KillAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        _killRequested = true;
        if (!_exited.Task.IsCompleted && _qmp is { } qmp)
        {
            try
            {
                using var grace = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                grace.CancelAfter(QuitGrace);
                await qmp.ExecuteAsync("quit", null, grace.Token);
                await _exited.Task.WaitAsync(grace.Token);
            }
            catch (Exception ex) when (ex is QmpException or IOException ||
                                       (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                // quit may lose the race with the connection closing, or QEMU may hang: SIGKILL settles it.
            }
        }

        if (!_exited.Task.IsCompleted)
        {
            await _driver.KillProcessAsync(Pid, Marker, cancellationToken);
        }

        await _exited.Task.WaitAsync(cancellationToken);
    }

    private Task<JsonElement> ExecuteAsync(string command, CancellationToken cancellationToken) => ExecuteAsync(command, null, cancellationToken);

    private async Task<JsonElement> ExecuteAsync(string command, object? arguments, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var qmp = _qmp ?? throw new HypervisorException($"VM {VmId}: QMP is not connected");
        try
        {
            return await qmp.ExecuteAsync(command, arguments, cancellationToken);
        }
        catch (QmpException ex)
        {
            throw new HypervisorException($"VM {VmId}: {ex.Message}", ex);
        }
        catch (QmpDisconnectedException ex)
        {
            throw new HypervisorException($"VM {VmId}: QEMU is gone ({command} not done)", ex);
        }
    }

    // ---- Volumes (issue 18): hot attach and detach over QMP, names from the volume's id only.

    /// <summary>How long a guest has to let go of an unplugged disk (q35's ACPI hot-plug is quick; a native PCIe unplug waits 5 s).</summary>
    private static readonly TimeSpan UnplugTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Unplugs waiting for QEMU's DEVICE_DELETED, by device id.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, TaskCompletionSource> _unplugging = new();

    public async Task AttachVolumeAsync(Domain.Storage.VolumeAssignment volume, CancellationToken cancellationToken)
    {
        if ((await QueryVolumesAsync(cancellationToken)).Contains(volume.NodeName))
        {
            return; // plugged already (an attach repeated, or a VM started with it)
        }

        var file = await _driver.EnsureVolumeAsync(volume, cancellationToken);
        await ExecuteAsync("blockdev-add", new Dictionary<string, object>
        {
            ["driver"] = file.Format,
            ["node-name"] = volume.NodeName,
            ["discard"] = "unmap",
            ["file"] = Storage.BlockFiles.QmpOptions(file.DriveFile),
        }, cancellationToken);
        var throttled = QemuDriver.VolumeThrottleNode(volume.NodeName);
        await ExecuteAsync("blockdev-add", new Dictionary<string, object>
        {
            ["driver"] = "throttle", ["node-name"] = throttled, ["throttle-group"] = QemuDriver.DiskThrottleGroupId, ["file"] = volume.NodeName,
        }, cancellationToken);
        HypervisorException? refused = null;
        for (var slot = 0; slot < Domain.Storage.VolumeRecord.MaxPerVm; slot++)
        {
            var device = new Dictionary<string, object>
            {
                ["driver"] = "virtio-blk-pci", ["drive"] = throttled, ["id"] = volume.DeviceId, ["serial"] = volume.Serial,
            };
            if (QemuDriver.VolumeBus(_driver.Options, slot) is { } bus)
            {
                device["bus"] = bus;
            }

            try
            {
                await ExecuteAsync("device_add", device, cancellationToken);
                return;
            }
            catch (HypervisorException ex) when (ex.InnerException is QmpException && QemuDriver.VolumeBus(_driver.Options, slot) is not null)
            {
                refused = ex; // that slot holds another volume: the next
            }
        }

        await ExecuteAsync("blockdev-del", new Dictionary<string, object> { ["node-name"] = throttled }, CancellationToken.None);
        await ExecuteAsync("blockdev-del", new Dictionary<string, object> { ["node-name"] = volume.NodeName }, CancellationToken.None);
        throw new HypervisorException($"VM {VmId}: no free slot for volume {volume.Id} ({refused?.Message})");
    }

    public async Task DetachVolumeAsync(string nodeName, CancellationToken cancellationToken)
    {
        var plugged = await QueryVolumesAsync(cancellationToken);
        if (!plugged.Contains(nodeName))
        {
            return;
        }

        var deviceId = Domain.Storage.VolumeAssignment.DeviceIdOf(nodeName);
        var deleted = _unplugging.GetOrAdd(deviceId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        try
        {
            await ExecuteAsync("device_del", new Dictionary<string, object> { ["id"] = deviceId }, cancellationToken);
            try
            {
                await deleted.Task.WaitAsync(UnplugTimeout, cancellationToken);
            }
            catch (TimeoutException)
            {
                throw new HypervisorException(
                    $"VM {VmId}: the guest did not let go of volume device {deviceId} within {UnplugTimeout.TotalSeconds:F0} s (it stays attached)");
            }
        }
        finally
        {
            _unplugging.TryRemove(deviceId, out _);
        }

        if ((await QueryNodeNamesAsync(cancellationToken)).Contains(QemuDriver.VolumeThrottleNode(nodeName)))
        {
            await ExecuteAsync("blockdev-del", new Dictionary<string, object> { ["node-name"] = QemuDriver.VolumeThrottleNode(nodeName) }, cancellationToken);
        }

        await ExecuteAsync("blockdev-del", new Dictionary<string, object> { ["node-name"] = nodeName }, cancellationToken);
    }

    // ---- Snapshots (issue 18): a live external snapshot, the layer QEMU writes now frozen under its new top.

    public async Task<DiskSwitch> SwitchDiskLayerAsync(VmDiskRequest disk, bool freezeGuest, CancellationToken cancellationToken)
    {
        var path = _driver.DiskLayerPath(VmId, disk);
        if (Storage.BlockFiles.SameFile(await QueryDiskFileAsync(cancellationToken), path))
        {
            return DiskSwitch.AlreadyThere; // a sync repeated, or started on that layer
        }

        // QEMU makes the new overlay (its backing: the file it writes now) and moves its writes there in one transaction:
        // the guest waits only for the requests in flight, not for any copy.
        async Task SnapshotAsync(CancellationToken ct)
        {
            // Over the top layer, under the disk's throttle filter: the new layer's writes stay capped.
            var top = await QueryDiskTopAsync(ct);
            var over = top?.Node is { } node
                ? new Dictionary<string, object> { ["node-name"] = node, ["snapshot-node-name"] = LayerNodeName(path) }
                : new Dictionary<string, object> { ["device"] = QemuDriver.DiskDrive }; // started before its disk was throttled
            over["snapshot-file"] = path;
            over["format"] = "qcow2";
            over["mode"] = "absolute-paths";
            await ExecuteAsync("blockdev-snapshot-sync", over, ct);
            if (Storage.BlockFiles.Rbd.TryParse(path) is null)
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
        }

        if (freezeGuest && await AgentListensAsync(cancellationToken))
        {
            try
            {
                await using var agent = await QgaClient.ConnectAsync(Paths.QgaSocket, cancellationToken);
                await agent.WithFrozenFilesystemsAsync(SnapshotAsync, cancellationToken);
                return DiskSwitch.Frozen;
            }
            catch (Exception ex) when (IsAgentFailure(ex))
            {
                // The agent would not freeze (no fsfreeze in this guest, or it stopped answering): crash-consistent instead,
                // unless the snapshot itself went through and only the thaw failed.
                if (Storage.BlockFiles.SameFile(await QueryDiskFileAsync(cancellationToken), path))
                {
                    return DiskSwitch.Frozen;
                }
            }
        }

        await SnapshotAsync(cancellationToken);
        return DiskSwitch.CrashConsistent;
    }

    /// <summary>The file the VM's persistent disk writes to now (its top layer); null when it has none.</summary>
    private async Task<string?> QueryDiskFileAsync(CancellationToken cancellationToken) => (await QueryDiskTopAsync(cancellationToken))?.File;

    /// <summary>
    /// The top layer of the VM's persistent disk: its file, and its block node when the disk is throttled (the throttle
    /// filter's child, which query-block shows as the filter's backing image); null when the VM has no disk.
    /// </summary>
    private async Task<(string File, string? Node)?> QueryDiskTopAsync(CancellationToken cancellationToken)
    {
        var blocks = await ExecuteAsync("query-block", cancellationToken);
        foreach (var block in blocks.EnumerateArray())
        {
            if (!block.TryGetProperty("inserted", out var inserted))
            {
                continue;
            }

            if (block.TryGetProperty("device", out var device) && device.GetString() == QemuDriver.DiskDrive)
            {
                return inserted.TryGetProperty("file", out var legacy) && legacy.GetString() is { } file ? (file, null) : null;
            }

            if (inserted.TryGetProperty("node-name", out var root) && root.GetString() == QemuDriver.DiskDrive
                && inserted.TryGetProperty("image", out var image) && image.TryGetProperty("backing-image", out var child)
                && child.TryGetProperty("filename", out var childFile) && childFile.GetString() is { } top)
            {
                var nodes = await ExecuteAsync("query-named-block-nodes", new Dictionary<string, object> { ["flat"] = true }, cancellationToken);
                var node = nodes.EnumerateArray()
                    .Where(n => n.TryGetProperty("drv", out var drv) && drv.GetString() == "qcow2"
                                && n.TryGetProperty("file", out var f) && f.GetString() == top)
                    .Select(n => n.GetProperty("node-name").GetString())
                    .FirstOrDefault();
                return (top, node);
            }
        }

        return null;
    }

    /// <summary>A layer's block node name: from its path only, within QEMU's 31 characters.</summary>
    private static string LayerNodeName(string path) =>
        "dl" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(path)))[..24];

    public Task SetDiskThrottleAsync(Domain.Shares.DiskThrottle throttle, CancellationToken cancellationToken) =>
        ExecuteAsync("qom-set", new Dictionary<string, object>
        {
            ["path"] = "/objects/" + QemuDriver.DiskThrottleGroupId, ["property"] = "limits", ["value"] = QemuDriver.DiskThrottleLimits(throttle),
        }, cancellationToken);

    private async Task<IReadOnlyList<string>> QueryNodeNamesAsync(CancellationToken cancellationToken)
    {
        var nodes = await ExecuteAsync("query-named-block-nodes", new Dictionary<string, object> { ["flat"] = true }, cancellationToken);
        return nodes.EnumerateArray()
            .Select(n => n.TryGetProperty("node-name", out var name) ? name.GetString() : null)
            .OfType<string>()
            .Distinct()
            .ToList();
    }

    public async Task<IReadOnlyList<string>> QueryVolumesAsync(CancellationToken cancellationToken) =>
        (await QueryNodeNamesAsync(cancellationToken)).Where(Domain.Storage.VolumeAssignment.IsNodeName).ToList();

    private void OnQmpEvent(QmpEvent qmpEvent)
    {
        if (qmpEvent.Name == "DEVICE_DELETED" && qmpEvent.Data.ValueKind == JsonValueKind.Object
            && qmpEvent.Data.TryGetProperty("device", out var device) && device.GetString() is { } id
            && _unplugging.TryGetValue(id, out var unplugged))
        {
            unplugged.TrySetResult();
        }

        VmEvent? mapped = qmpEvent.Name switch
        {
            "SHUTDOWN" => MapShutdown(qmpEvent.Data),
            "STOP" => new VmEvent.Stopped(),
            "RESUME" => new VmEvent.Resumed(),
            "GUEST_PANICKED" => new VmEvent.GuestPanicked(),
            _ => null,
        };
        if (mapped is not null)
        {
            _events.Publish(mapped);
        }
    }

    private VmEvent.Shutdown MapShutdown(JsonElement data)
    {
        var guest = data.ValueKind == JsonValueKind.Object && data.TryGetProperty("guest", out var g) && g.ValueKind == JsonValueKind.True;
        var reason = data.ValueKind == JsonValueKind.Object && data.TryGetProperty("reason", out var r) ? r.GetString() ?? "" : "";
        _shutdownReason = guest ? $"guest shut down ({reason})" : $"shut down by the host ({reason})";
        return new VmEvent.Shutdown(guest, reason);
    }

    /// <summary>QMP closing means QEMU is exiting; Exited follows once the pid is really gone and the console drained.</summary>
    private async Task WatchExitAsync()
    {
        try
        {
            await _qmp!.Closed.WaitAsync(_detach.Token);
            while (ProcessProbe.IsAlive(Pid, Marker))
            {
                await Task.Delay(50, _detach.Token);
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }

        await _stopTail.CancelAsync();
        await _tail;

        string reason;
        if (_killRequested)
        {
            reason = "killed";
        }
        else if (_shutdownReason is { } shutdown)
        {
            reason = shutdown;
        }
        else
        {
            var code = await _driver.TryGetExitCodeAsync(Pid);
            reason = code is { } c ? $"QEMU exited unexpectedly (exit code {c})" : "QEMU exited unexpectedly";
        }

        _events.End(reason);
        _exited.TrySetResult(reason);
        _driver.Forget(this);
    }

    /// <summary>Polls console.log from its start (so an adopted VM's banner is seen again), one event per line.</summary>
    private async Task TailConsoleAsync()
    {
        var pending = new List<byte>();
        var buffer = new byte[16 * 1024];
        FileStream? log = null;
        try
        {
            while (true)
            {
                var stopping = _stopTail.IsCancellationRequested;
                log ??= TryOpen(Paths.ConsoleLog);
                if (log is not null)
                {
                    int read;
                    while ((read = await log.ReadAsync(buffer)) > 0)
                    {
                        Split(buffer.AsSpan(0, read), pending);
                    }
                }

                if (stopping)
                {
                    break;
                }

                try
                {
                    await Task.Delay(ConsolePollInterval, _stopTail.Token);
                }
                catch (OperationCanceledException)
                {
                    // One last read below: QEMU is gone, so the file is complete.
                }
            }

            if (pending.Count > 0)
            {
                Emit(pending);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            // The run directory was removed under us (Cleanup): nothing more to read.
        }
        finally
        {
            if (log is not null)
            {
                await log.DisposeAsync();
            }
        }
    }

    private void Split(ReadOnlySpan<byte> chunk, List<byte> pending)
    {
        while (true)
        {
            var newline = chunk.IndexOf((byte)'\n');
            if (newline < 0)
            {
                pending.AddRange(chunk);
                return;
            }

            pending.AddRange(chunk[..newline]);
            Emit(pending);
            chunk = chunk[(newline + 1)..];
        }
    }

    private void Emit(List<byte> line)
    {
        if (_detach.IsCancellationRequested)
        {
            line.Clear();
            return;
        }

        var text = Encoding.UTF8.GetString(line.ToArray()).TrimEnd('\r');
        line.Clear();
        _events.Publish(new VmEvent.ConsoleLine(text));
    }

    private static FileStream? TryOpen(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, useAsync: false);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Detaches (the VM keeps running): stops the tail and the event stream, closes QMP.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _detach.CancelAsync();
        _events.Detach();
        await _stopTail.CancelAsync();
        if (_qmp is not null)
        {
            await _qmp.DisposeAsync();
        }

        await Task.WhenAll(_tail, _monitor, _events.Delivery);
        _driver.Forget(this);
    }
}
