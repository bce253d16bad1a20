using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Orchestrator.Guard.Protocol;

namespace Orchestrator.Guard;

public sealed record GuardOptions(string SocketPath, TimeSpan FenceAfter, string? LogPath);

/// <summary>
/// The per-host fence guard: parent of every QEMU process of one data dir. It kills them all when the node's
/// heartbeats stop for fence-after, and (through PR_SET_PDEATHSIG) they die with it if it is killed.
/// </summary>
public sealed class FenceGuard : IDisposable
{
    private const int MaxRequestChars = 1 << 20;
    private const int RememberedExits = 256;

    private static readonly byte[] NewLine = "\n"u8.ToArray();

    private readonly GuardOptions _options;
    private readonly object _childrenLock = new();
    private readonly Dictionary<int, Child> _children = new();
    private readonly Dictionary<int, int> _exitCodes = new();
    private readonly Queue<int> _exitOrder = new();
    private readonly BlockingCollection<SpawnJob> _spawnQueue = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly object _logLock = new();
    private readonly StreamWriter? _log;
    private readonly string _setpriv;
    private readonly int _pid = Environment.ProcessId;

    private long _lastHeartbeat = Environment.TickCount64;
    private string? _stopReason;
    private FileStream? _lockFile;
    private Socket? _listener;

    public FenceGuard(GuardOptions options)
    {
        _options = options;
        if (options.LogPath is not null)
        {
            var stream = new FileStream(options.LogPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
            _log = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true };
        }

        _setpriv = File.Exists("/usr/bin/setpriv") ? "/usr/bin/setpriv" : "setpriv";
    }

    /// <summary>Serves until fenced or terminated; returns the process exit code.</summary>
    public int Run()
    {
        // One guard per socket: the lock lives as long as this process, even when it is killed -9.
        var lockPath = _options.SocketPath + ".lock";
        try
        {
            _lockFile = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            Log($"another guard holds {lockPath}; exiting");
            return 3;
        }

        try
        {
            File.Delete(_options.SocketPath);
            _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            _listener.Bind(new UnixDomainSocketEndPoint(_options.SocketPath));
            File.SetUnixFileMode(_options.SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            _listener.Listen(16);
        }
        catch (Exception ex) when (ex is SocketException or IOException or UnauthorizedAccessException)
        {
            Log($"cannot listen on {_options.SocketPath}: {ex.Message}");
            return 4;
        }

        // PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so every spawn happens on this
        // one thread, which lives as long as the guard.
        var spawner = new Thread(SpawnLoop) { IsBackground = true, Name = "guard-spawner" };
        spawner.Start();

        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);

        Log($"guard started: pid {_pid}, socket {_options.SocketPath}, fence-after {_options.FenceAfter.TotalMilliseconds:F0} ms");
        _ = AcceptLoopAsync(_listener);

        var fenceAfterMs = (long)_options.FenceAfter.TotalMilliseconds;
        while (!_stopping.IsCancellationRequested)
        {
            var silentMs = Environment.TickCount64 - Interlocked.Read(ref _lastHeartbeat);
            if (silentMs >= fenceAfterMs)
            {
                Stop($"no heartbeat for {silentMs} ms (fence-after {fenceAfterMs} ms)");
                break;
            }

            _stopping.Token.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(Math.Clamp(fenceAfterMs - silentMs, 10, 100)));
        }

        Fence();
        return 0;
    }

    private void OnSignal(PosixSignalContext context)
    {
        // Exit through Fence so the log says why and the socket goes away.
        context.Cancel = true;
        Stop($"received {context.Signal}");
    }

    private void Stop(string reason)
    {
        lock (_childrenLock)
        {
            _stopReason ??= reason;
        }

        _stopping.Cancel();
    }

    private void Fence()
    {
        List<Child> live;
        lock (_childrenLock)
        {
            live = _children.Values.ToList();
        }

        Log($"fencing: {_stopReason}; killing {live.Count} child(ren)");
        foreach (var child in live)
        {
            try
            {
                child.Process.Kill();
                Log($"killed pid {child.Process.Id} (vm {child.VmId})");
            }
            catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Already gone.
            }
        }

        foreach (var child in live)
        {
            try
            {
                child.Process.WaitForExit(2000);
            }
            catch (InvalidOperationException)
            {
            }
        }

        _spawnQueue.CompleteAdding();
        try
        {
            File.Delete(_options.SocketPath);
        }
        catch (IOException)
        {
        }

        _listener?.Dispose();
        Log("guard exiting");
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket connection;
            try
            {
                connection = await listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            // Connections are independent: a dead node's half-open connection must not block its successor.
            _ = ServeAsync(connection);
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        using var _ = socket;
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using var reader = new StreamReader(stream, new UTF8Encoding(false));
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                var line = await reader.ReadLineAsync(_stopping.Token);
                if (line is null)
                {
                    return;
                }

                if (line.Length == 0)
                {
                    continue;
                }

                GuardResponse response;
                if (line.Length > MaxRequestChars)
                {
                    response = GuardResponse.Failure("request too long");
                }
                else
                {
                    try
                    {
                        var request = JsonSerializer.Deserialize<GuardRequest>(line, GuardProtocol.Json);
                        response = request is null ? GuardResponse.Failure("empty request") : await HandleAsync(request);
                    }
                    catch (JsonException ex)
                    {
                        response = GuardResponse.Failure($"malformed request: {ex.Message}");
                    }
                }

                var bytes = JsonSerializer.SerializeToUtf8Bytes(response, GuardProtocol.Json);
                await stream.WriteAsync(bytes, _stopping.Token);
                await stream.WriteAsync(NewLine, _stopping.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // A closed connection is not fatal: the node may be restarting and will reconnect.
        }
    }

    private async Task<GuardResponse> HandleAsync(GuardRequest request)
    {
        switch (request.Op)
        {
            case GuardOps.Hello:
                return new GuardResponse { Ok = true, GuardPid = _pid, FenceAfterMs = (long)_options.FenceAfter.TotalMilliseconds };

            case GuardOps.Heartbeat:
                return Heartbeat();

            case GuardOps.Spawn:
                if (request.Argv is not { Length: > 0 } || string.IsNullOrEmpty(request.VmId) ||
                    string.IsNullOrEmpty(request.StdoutPath) || string.IsNullOrEmpty(request.WorkingDir))
                {
                    return GuardResponse.Failure("spawn needs vmId, argv, workingDir and stdoutPath");
                }

                var job = new SpawnJob(request);
                try
                {
                    _spawnQueue.Add(job);
                }
                catch (InvalidOperationException)
                {
                    return GuardResponse.Failure("guard is fencing");
                }

                return await job.Result.Task;

            case GuardOps.Kill:
                return KillChild(request.Pid);

            case GuardOps.List:
                lock (_childrenLock)
                {
                    return new GuardResponse
                    {
                        Ok = true,
                        Children = _children.Values.Select(c => new GuardChild(c.VmId, c.Pid)).OrderBy(c => c.Pid).ToArray(),
                    };
                }

            case GuardOps.Status:
                lock (_childrenLock)
                {
                    if (request.Pid is { } pid && _children.ContainsKey(pid))
                    {
                        return new GuardResponse { Ok = true, Pid = pid, Running = true };
                    }

                    if (request.Pid is { } ended && _exitCodes.TryGetValue(ended, out var code))
                    {
                        return new GuardResponse { Ok = true, Pid = ended, Running = false, ExitCode = code };
                    }

                    return GuardResponse.Failure($"pid {request.Pid} is not a child of this guard");
                }

            default:
                return GuardResponse.Failure($"unknown op '{request.Op}'");
        }
    }

    /// <summary>
    /// A heartbeat after fence-after of silence does not revive the host: the guard was frozen along with its node (a
    /// whole host paused and thawed) and the cluster may have started these VMs elsewhere meanwhile, so it fences now
    /// rather than racing its own fence loop, which would have fenced had it run.
    /// </summary>
    private GuardResponse Heartbeat()
    {
        var now = Environment.TickCount64;
        var silentMs = now - Interlocked.Exchange(ref _lastHeartbeat, now);
        var fenceAfterMs = (long)_options.FenceAfter.TotalMilliseconds;
        if (silentMs < fenceAfterMs)
        {
            return new GuardResponse { Ok = true };
        }

        Stop($"a heartbeat came after {silentMs} ms of silence (fence-after {fenceAfterMs} ms)");
        return GuardResponse.Failure("fenced: the heartbeat came after fence-after");
    }

    private GuardResponse KillChild(int? pid)
    {
        Child? child;
        lock (_childrenLock)
        {
            if (pid is null || !_children.TryGetValue(pid.Value, out child))
            {
                return GuardResponse.Failure($"pid {pid} is not a live child of this guard");
            }
        }

        try
        {
            child.Process.Kill();
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // It exited between the lookup and the kill: the caller wanted it gone and it is.
        }

        Log($"killed pid {child.Pid} (vm {child.VmId}) on request");
        return new GuardResponse { Ok = true, Pid = child.Pid };
    }

    private void SpawnLoop()
    {
        foreach (var job in _spawnQueue.GetConsumingEnumerable())
        {
            job.Result.TrySetResult(Spawn(job.Request));
        }
    }

    private GuardResponse Spawn(GuardRequest request)
    {
        // setpriv sets PR_SET_PDEATHSIG=SIGKILL, then sh checks the guard is still its parent (closing the race
        // where the guard dies before the prctl) and redirects output to a file, so no pipe ties QEMU to us.
        const string Script = "g=$1; out=$2; shift 2; [ \"$PPID\" = \"$g\" ] || exit 97; exec \"$@\" </dev/null >>\"$out\" 2>&1";
        var startInfo = new ProcessStartInfo(_setpriv)
        {
            UseShellExecute = false,
            WorkingDirectory = request.WorkingDir!,
        };
        foreach (var arg in new[] { "--pdeathsig", "KILL", "--", "/bin/sh", "-c", Script, "orchestrator-spawn", _pid.ToString(System.Globalization.CultureInfo.InvariantCulture), request.StdoutPath! })
        {
            startInfo.ArgumentList.Add(arg);
        }

        foreach (var arg in request.Argv!)
        {
            startInfo.ArgumentList.Add(arg);
        }

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var vmId = request.VmId!;
        lock (_childrenLock)
        {
            if (_stopping.IsCancellationRequested)
            {
                return GuardResponse.Failure("guard is fencing");
            }

            try
            {
                // Under the lock so the Exited handler cannot run before the child is registered.
                process.Exited += (_, _) => OnChildExited(process);
                process.Start();
            }
            catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
            {
                process.Dispose();
                Log($"spawn for vm {vmId} failed: {ex.Message}");
                return GuardResponse.Failure($"cannot start {request.Argv![0]}: {ex.Message}");
            }

            _children[process.Id] = new Child(vmId, process.Id, process);
        }

        Log($"spawned pid {process.Id} for vm {vmId}: {string.Join(' ', request.Argv!)}");
        return new GuardResponse { Ok = true, Pid = process.Id };
    }

    private void OnChildExited(Process process)
    {
        int pid;
        int code;
        string vmId;
        lock (_childrenLock)
        {
            pid = process.Id;
            code = process.ExitCode;
            if (!_children.Remove(pid, out var child))
            {
                return;
            }

            vmId = child.VmId;
            _exitCodes[pid] = code;
            _exitOrder.Enqueue(pid);
            while (_exitOrder.Count > RememberedExits)
            {
                _exitCodes.Remove(_exitOrder.Dequeue());
            }
        }

        Log($"child pid {pid} (vm {vmId}) exited with code {code}");
    }

    private void Log(string message)
    {
        if (_log is null)
        {
            return;
        }

        lock (_logLock)
        {
            try
            {
                _log.WriteLine($"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} [{_pid}] {message}");
            }
            catch (IOException)
            {
                // A full disk must not stop the guard from fencing.
            }
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        _listener?.Dispose();
        _lockFile?.Dispose();
        lock (_logLock)
        {
            _log?.Dispose();
        }
    }

    private sealed record Child(string VmId, int Pid, Process Process);

    private sealed class SpawnJob(GuardRequest request)
    {
        public GuardRequest Request { get; } = request;
        public TaskCompletionSource<GuardResponse> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
