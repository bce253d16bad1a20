// The node's side of the fence guard: starts it detached when absent, sends it requests, keeps the heartbeat.
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Orchestrator.Guard.Protocol;

namespace Orchestrator.Hypervisor.Qemu;

internal sealed class GuardClient : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan HeartbeatTimeout = TimeSpan.FromSeconds(5);

    private readonly string _socketPath;
    private readonly string _logPath;
    private readonly TimeSpan _fenceAfter;
    private readonly string _guardPath;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _disposing = new();
    private Connection? _connection;
    private int _heartbeatInFlight;

    public GuardClient(string socketPath, string logPath, TimeSpan fenceAfter, string guardPath)
    {
        _socketPath = socketPath;
        _logPath = logPath;
        _fenceAfter = fenceAfter;
        _guardPath = guardPath;
    }

    public string SocketPath => _socketPath;

    /// <summary>Sends one request; starts the guard first when none listens, unless told not to.</summary>
    /// <exception cref="IOException">No guard (and not to start one), or it went away before replying.</exception>
    public async Task<GuardResponse> SendAsync(GuardRequest request, CancellationToken cancellationToken, bool startIfAbsent = true)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
        var token = linked.Token;
        Task<GuardResponse> reply;
        await _gate.WaitAsync(token);
        try
        {
            var line = JsonSerializer.SerializeToUtf8Bytes(request, GuardProtocol.Json);
            try
            {
                var connection = await GetConnectionAsync(startIfAbsent, token);
                reply = await connection.SendAsync(line, token);
            }
            catch (IOException)
            {
                // The guard went away since our last request (fenced, or restarted): the request was not
                // delivered, so one retry on a fresh connection (and, if need be, a fresh guard) is safe.
                DropConnection();
                var connection = await GetConnectionAsync(startIfAbsent, token);
                reply = await connection.SendAsync(line, token);
            }
        }
        finally
        {
            _gate.Release();
        }

        return await reply.WaitAsync(token);
    }

    /// <summary>Fire-and-forget heartbeat: never blocks, never throws; at most one in flight.</summary>
    public void Heartbeat()
    {
        if (_disposing.IsCancellationRequested || Interlocked.Exchange(ref _heartbeatInFlight, 1) == 1)
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                using var timeout = new CancellationTokenSource(HeartbeatTimeout);
                await SendAsync(new GuardRequest { Op = GuardOps.Heartbeat }, timeout.Token);
            }
            catch (Exception)
            {
                // The next heartbeat retries; the guard's fence-after is the bound on how long this may last.
            }
            finally
            {
                Volatile.Write(ref _heartbeatInFlight, 0);
            }
        });
    }

    private async Task<Connection> GetConnectionAsync(bool startIfAbsent, CancellationToken cancellationToken)
    {
        if (_connection is { IsOpen: true } open)
        {
            return open;
        }

        DropConnection();
        var socket = await TryConnectAsync(cancellationToken);
        if (socket is null)
        {
            if (!startIfAbsent)
            {
                throw new IOException($"no fence guard listens on {_socketPath}");
            }

            StartGuard();
            var deadline = Environment.TickCount64 + (long)StartTimeout.TotalMilliseconds;
            var relaunchAt = Environment.TickCount64 + 3000;
            while (socket is null)
            {
                if (Environment.TickCount64 > deadline)
                {
                    throw new HypervisorException(
                        $"the fence guard did not open {_socketPath} within {StartTimeout.TotalSeconds:F0} s; see {_logPath}{LogTail()}");
                }

                if (Environment.TickCount64 > relaunchAt)
                {
                    // The guard we launched may have stepped aside for one that was just then fencing and exiting.
                    StartGuard();
                    relaunchAt = Environment.TickCount64 + 3000;
                }

                await Task.Delay(25, cancellationToken);
                socket = await TryConnectAsync(cancellationToken);
            }
        }

        _connection = new Connection(socket);
        return _connection;
    }

    private void DropConnection()
    {
        _connection?.Dispose();
        _connection = null;
    }

    private async Task<Socket?> TryConnectAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(_socketPath))
        {
            return null;
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(_socketPath), cancellationToken);
            return socket;
        }
        catch (SocketException)
        {
            // A stale socket file from a guard that died: a new guard replaces it.
            socket.Dispose();
            return null;
        }
    }

    /// <summary>
    /// Starts the guard in its own session with stdio on /dev/null, so it outlives the node and holds none of
    /// the node's pipes (a test runner waiting for EOF, a terminal going away).
    /// </summary>
    private void StartGuard()
    {
        string[] command = _guardPath.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
            ? [DotnetHost(), _guardPath]
            : [_guardPath];
        if (!File.Exists(_guardPath))
        {
            throw new HypervisorException($"fence guard not found at {_guardPath} (QemuDriverOptions.GuardPath)");
        }

        QemuDriver.EnsureDirectory(Path.GetDirectoryName(_socketPath)!);
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        foreach (var arg in new[] { "-c", "exec /usr/bin/setsid -f \"$@\" </dev/null >/dev/null 2>&1", "orchestrator-start-guard" })
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var arg in command)
        {
            start.ArgumentList.Add(arg);
        }

        start.ArgumentList.Add("--socket");
        start.ArgumentList.Add(_socketPath);
        start.ArgumentList.Add("--fence-after-ms");
        start.ArgumentList.Add(((long)_fenceAfter.TotalMilliseconds).ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Add("--log");
        start.ArgumentList.Add(_logPath);

        try
        {
            using var process = Process.Start(start) ?? throw new HypervisorException("cannot start the fence guard");
            // setsid -f forks and returns at once; the guard itself runs on, reparented away from us.
            process.WaitForExit();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new HypervisorException($"cannot start the fence guard: {ex.Message}", ex);
        }
    }

    private string LogTail()
    {
        try
        {
            var lines = File.ReadAllLines(_logPath);
            return lines.Length == 0 ? "" : ": " + string.Join(" | ", lines.TakeLast(3));
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>The dotnet muxer that runs this process, so the guard uses the same runtime.</summary>
    internal static string DotnetHost()
    {
        var hostPath = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(hostPath) && File.Exists(hostPath))
        {
            return hostPath;
        }

        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        // The runtime directory is <dotnet root>/shared/Microsoft.NETCore.App/<version>/.
        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var muxer = Path.Combine(root, "dotnet");
        return File.Exists(muxer) ? muxer : "dotnet";
    }

    public ValueTask DisposeAsync()
    {
        _disposing.Cancel();
        DropConnection();
        return ValueTask.CompletedTask;
    }

    /// <summary>One socket to the guard. The guard answers a connection's requests in order, so replies match FIFO.</summary>
    private sealed class Connection : IDisposable
    {
        private static readonly byte[] NewLine = "\n"u8.ToArray();

        private readonly Socket _socket;
        private readonly NetworkStream _stream;
        private readonly Queue<TaskCompletionSource<GuardResponse>> _waiting = new();
        private readonly object _lock = new();
        private bool _closed;

        public Connection(Socket socket)
        {
            _socket = socket;
            _stream = new NetworkStream(socket, ownsSocket: true);
            _ = Task.Run(ReadLoopAsync);
        }

        public bool IsOpen
        {
            get
            {
                lock (_lock)
                {
                    return !_closed;
                }
            }
        }

        public async Task<Task<GuardResponse>> SendAsync(byte[] line, CancellationToken cancellationToken)
        {
            var reply = new TaskCompletionSource<GuardResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_lock)
            {
                if (_closed)
                {
                    throw new IOException("guard connection closed");
                }

                _waiting.Enqueue(reply);
            }

            try
            {
                await _stream.WriteAsync(line, cancellationToken);
                await _stream.WriteAsync(NewLine, cancellationToken);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                Close();
                throw new IOException("guard connection closed", ex);
            }
            catch (IOException)
            {
                Close();
                throw;
            }

            return reply.Task;
        }

        private async Task ReadLoopAsync()
        {
            try
            {
                using var reader = new StreamReader(_stream, new UTF8Encoding(false), false, 4096, leaveOpen: true);
                while (await reader.ReadLineAsync() is { } line)
                {
                    GuardResponse? response;
                    try
                    {
                        response = JsonSerializer.Deserialize<GuardResponse>(line, GuardProtocol.Json);
                    }
                    catch (JsonException ex)
                    {
                        response = GuardResponse.Failure($"unreadable guard reply: {ex.Message}");
                    }

                    TaskCompletionSource<GuardResponse>? waiter;
                    lock (_lock)
                    {
                        _waiting.TryDequeue(out waiter);
                    }

                    waiter?.TrySetResult(response ?? GuardResponse.Failure("empty guard reply"));
                }
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
            {
            }

            Close();
        }

        private void Close()
        {
            List<TaskCompletionSource<GuardResponse>> orphans;
            lock (_lock)
            {
                _closed = true;
                orphans = [.. _waiting];
                _waiting.Clear();
            }

            foreach (var orphan in orphans)
            {
                orphan.TrySetException(new IOException("guard connection closed before it replied"));
            }
        }

        public void Dispose()
        {
            Close();
            _stream.Dispose();
        }
    }
}
