// A QEMU Machine Protocol client over a unix socket: handshake, id-correlated commands, ordered events.
using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Hypervisor.Qemu;

/// <summary>An asynchronous QMP event, e.g. SHUTDOWN, STOP, RESUME, GUEST_PANICKED.</summary>
public sealed record QmpEvent(string Name, JsonElement Data, DateTimeOffset Timestamp);

/// <summary>QEMU answered a command with <c>{"error":{"class":…,"desc":…}}</c>.</summary>
public sealed class QmpException(string command, string errorClass, string description)
    : Exception($"QMP command '{command}' failed: {errorClass}: {description}")
{
    public string Command { get; } = command;
    public string ErrorClass { get; } = errorClass;
    public string Description { get; } = description;
}

/// <summary>The QMP connection closed (QEMU exited, or the socket broke) before a reply came.</summary>
public sealed class QmpDisconnectedException(string message, Exception? inner = null) : IOException(message, inner);

public sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly Action<QmpEvent>? _onEvent;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentDictionary<string, Pending> _pending = new();
    private readonly TaskCompletionSource<JsonElement> _greeting = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _disposing = new();
    private long _nextId;
    private Task _readLoop = Task.CompletedTask;
    private volatile Exception? _closeReason;

    private QmpClient(Socket socket, Action<QmpEvent>? onEvent)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _onEvent = onEvent;
    }

    /// <summary>The greeting's <c>QMP</c> object (version, capabilities).</summary>
    public JsonElement Greeting { get; private set; }

    /// <summary>Completes when the connection is gone, for whatever reason. Never faults.</summary>
    public Task Closed => _closed.Task;

    /// <summary>
    /// Connects, reads the greeting and negotiates capabilities. <paramref name="onEvent"/> runs on the read loop,
    /// in the order QEMU sent the events; it should be quick (enqueue, don't block).
    /// </summary>
    public static async Task<QmpClient> ConnectAsync(string socketPath, Action<QmpEvent>? onEvent, CancellationToken cancellationToken)
    {
        var client = new QmpClient(await UnixSocket.ConnectAsync(socketPath, cancellationToken), onEvent);
        try
        {
            client._readLoop = Task.Run(client.ReadLoopAsync, CancellationToken.None);
            var greeting = await client._greeting.Task.WaitAsync(cancellationToken);
            client.Greeting = greeting;
            await client.ExecuteAsync("qmp_capabilities", null, cancellationToken);
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs one command and returns its <c>return</c> value.</summary>
    /// <exception cref="QmpException">QEMU refused the command.</exception>
    /// <exception cref="QmpDisconnectedException">The connection closed first.</exception>
    public async Task<JsonElement> ExecuteAsync(string command, object? arguments = null, CancellationToken cancellationToken = default)
    {
        if (_closed.Task.IsCompleted)
        {
            throw Disconnected(command);
        }

        var id = "o" + Interlocked.Increment(ref _nextId).ToString(CultureInfo.InvariantCulture);
        var message = new JsonObject { ["execute"] = command, ["id"] = id };
        if (arguments is not null)
        {
            message["arguments"] = arguments as JsonNode ?? JsonSerializer.SerializeToNode(arguments);
        }

        var pending = new Pending(command);
        _pending[id] = pending;

        // A close that raced the registration above would never fail this entry: check again.
        if (_closed.Task.IsCompleted)
        {
            _pending.TryRemove(id, out _);
            throw Disconnected(command);
        }

        try
        {
            var bytes = Encoding.UTF8.GetBytes(message.ToJsonString() + "\n");
            await _writeLock.WaitAsync(cancellationToken);
            try
            {
                await _stream.WriteAsync(bytes, cancellationToken);
            }
            finally
            {
                _writeLock.Release();
            }

            return await pending.Reply.Task.WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is (IOException or SocketException or ObjectDisposedException) and not QmpDisconnectedException)
        {
            throw new QmpDisconnectedException($"QMP connection lost while sending '{command}'", ex);
        }
        finally
        {
            _pending.TryRemove(id, out _);
        }
    }

    private QmpDisconnectedException Disconnected(string command) =>
        new($"QMP connection closed before '{command}' completed", _closeReason);

    private async Task ReadLoopAsync()
    {
        Exception? reason = null;
        try
        {
            using var reader = new StreamReader(_stream, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false, bufferSize: 4096, leaveOpen: true);
            while (true)
            {
                var line = await reader.ReadLineAsync(_disposing.Token);
                if (line is null)
                {
                    break;
                }

                if (!string.IsNullOrWhiteSpace(line))
                {
                    Dispatch(line);
                }
            }
        }
        catch (Exception ex)
        {
            reason = ex;
        }

        _closeReason = reason;
        _closed.TrySetResult();
        _greeting.TrySetException(Disconnected("greeting"));
        foreach (var (id, pending) in _pending)
        {
            if (_pending.TryRemove(id, out _))
            {
                pending.Reply.TrySetException(Disconnected(pending.Command));
            }
        }
    }

    private void Dispatch(string line)
    {
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(line);
            root = document.RootElement.Clone();
        }
        catch (JsonException)
        {
            // Not QMP: ignore rather than tear the connection down.
            return;
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        if (root.TryGetProperty("QMP", out var greeting))
        {
            _greeting.TrySetResult(greeting);
            return;
        }

        if (root.TryGetProperty("event", out var eventName))
        {
            RaiseEvent(root, eventName.GetString() ?? "");
            return;
        }

        if (!root.TryGetProperty("id", out var idElement))
        {
            return;
        }

        var id = idElement.ValueKind == JsonValueKind.String ? idElement.GetString()! : idElement.GetRawText();
        if (!_pending.TryRemove(id, out var pending))
        {
            return;
        }

        if (root.TryGetProperty("error", out var error))
        {
            var errorClass = error.TryGetProperty("class", out var c) ? c.GetString() ?? "" : "";
            var description = error.TryGetProperty("desc", out var d) ? d.GetString() ?? "" : "";
            pending.Reply.TrySetException(new QmpException(pending.Command, errorClass, description));
        }
        else
        {
            pending.Reply.TrySetResult(root.TryGetProperty("return", out var result) ? result : default);
        }
    }

    private void RaiseEvent(JsonElement root, string name)
    {
        if (_onEvent is null)
        {
            return;
        }

        var data = root.TryGetProperty("data", out var d) ? d : default;
        var timestamp = DateTimeOffset.UnixEpoch;
        if (root.TryGetProperty("timestamp", out var ts) &&
            ts.TryGetProperty("seconds", out var seconds) && seconds.TryGetInt64(out var s) &&
            ts.TryGetProperty("microseconds", out var micros) && micros.TryGetInt64(out var us))
        {
            timestamp = DateTimeOffset.FromUnixTimeSeconds(s).AddTicks(us * 10);
        }

        try
        {
            _onEvent(new QmpEvent(name, data, timestamp));
        }
        catch (Exception)
        {
            // A faulty subscriber must not kill the connection that the VM's control depends on.
        }
    }

    public async ValueTask DisposeAsync()
    {
        _disposing.Cancel();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        _socket.Dispose();
        await _readLoop.ConfigureAwait(false);
        await _stream.DisposeAsync();
        _disposing.Dispose();
        _writeLock.Dispose();
    }

    private sealed class Pending(string command)
    {
        public string Command { get; } = command;
        public TaskCompletionSource<JsonElement> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
