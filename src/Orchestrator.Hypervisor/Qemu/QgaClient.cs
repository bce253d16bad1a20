// A QEMU guest agent (qemu-guest-agent) client over the unix socket QEMU exposes for the guest's virtio-serial port.
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Orchestrator.Hypervisor.Qemu;

/// <summary>The guest agent answered a command with <c>{"error":{"class":…,"desc":…}}</c>.</summary>
public sealed class QgaException(string command, string errorClass, string description)
    : Exception($"guest agent command '{command}' failed: {errorClass}: {description}")
{
    public string ErrorClass { get; } = errorClass;
}

/// <summary>
/// One conversation with a guest's agent. The agent answers one client at a time, in order, and has no greeting; a
/// guest without an agent never answers at all, so every call takes a token that bounds the wait. A previous client
/// may have left a half-read reply or a half-written command behind: <see cref="ConnectAsync"/> resynchronises with
/// <c>guest-sync-delimited</c> before anything else.
/// </summary>
public sealed class QgaClient : IAsyncDisposable
{
    /// <summary>The agent puts this byte before its reply to guest-sync-delimited, and resets its parser on it.</summary>
    private const byte Delimiter = 0xFF;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly byte[] _buffer = new byte[8192];
    private int _start;
    private int _end;

    private QgaClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
    }

    /// <summary>Connects and resynchronises; fails with <see cref="OperationCanceledException"/> when the agent stays silent.</summary>
    public static async Task<QgaClient> ConnectAsync(string socketPath, CancellationToken cancellationToken)
    {
        var client = new QgaClient(await UnixSocket.ConnectAsync(socketPath, cancellationToken));
        try
        {
            await client.SyncAsync(cancellationToken);
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs one command and returns its <c>return</c> value.</summary>
    /// <exception cref="QgaException">The agent refused the command.</exception>
    public async Task<JsonElement> ExecuteAsync(string command, JsonObject? arguments, CancellationToken cancellationToken)
    {
        await SendAsync(command, arguments, cancellationToken);
        while (true)
        {
            var reply = await ReadReplyAsync(cancellationToken);
            if (reply.TryGetProperty("error", out var error))
            {
                throw Refused(command, error);
            }

            if (reply.TryGetProperty("return", out var result))
            {
                return result;
            }

            // Neither: not an answer to anything (the agent sends no events); read on.
        }
    }

    /// <summary>The guest's OS, hostname and addresses, from guest-get-osinfo, guest-get-host-name and guest-network-get-interfaces.</summary>
    public async Task<GuestInfo> QueryInfoAsync(CancellationToken cancellationToken)
    {
        var os = await ExecuteAsync("guest-get-osinfo", null, cancellationToken);
        var host = await ExecuteAsync("guest-get-host-name", null, cancellationToken);
        var interfaces = await ExecuteAsync("guest-network-get-interfaces", null, cancellationToken);
        return new GuestInfo(OsName(os), StringOf(host, "host-name") ?? "", Addresses(interfaces));
    }

    /// <summary>
    /// guest-shutdown (powerdown). A successful shutdown sends no reply — the agent is gone — so this returns once the
    /// request is written; an error reply that comes within <paramref name="errorWait"/> is thrown.
    /// </summary>
    public async Task ShutdownAsync(TimeSpan errorWait, CancellationToken cancellationToken)
    {
        await SendAsync("guest-shutdown", new JsonObject { ["mode"] = "powerdown" }, cancellationToken);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(errorWait);
        try
        {
            var reply = await ReadReplyAsync(wait.Token);
            if (reply.TryGetProperty("error", out var error))
            {
                throw Refused("guest-shutdown", error);
            }
        }
        catch (Exception ex) when ((ex is OperationCanceledException && !cancellationToken.IsCancellationRequested) || ex is IOException)
        {
            // No reply (the usual case) or the port closed as the guest went down: the shutdown is under way.
        }
    }

    /// <summary>
    /// Runs <paramref name="snapshot"/> with the guest's filesystems frozen (guest-fsfreeze-freeze), so what it captures
    /// is what the guest's filesystems hold on disk, not half a write. Thaws afterwards whatever happened, with a token
    /// of its own: a guest left frozen stops writing altogether. Returns how many filesystems were frozen.
    /// </summary>
    public async Task<int> WithFrozenFilesystemsAsync(Func<CancellationToken, Task> snapshot, CancellationToken cancellationToken)
    {
        var frozen = (await ExecuteAsync("guest-fsfreeze-freeze", null, cancellationToken)).GetInt32();
        try
        {
            await snapshot(cancellationToken);
        }
        finally
        {
            using var thawBound = new CancellationTokenSource(ThawTimeout);
            await ExecuteAsync("guest-fsfreeze-thaw", null, thawBound.Token);
        }

        return frozen;
    }

    /// <summary>How long a thaw may take before the caller hears of it (the agent thaws on its own only when it restarts).</summary>
    private static readonly TimeSpan ThawTimeout = TimeSpan.FromSeconds(10);

    private async Task SyncAsync(CancellationToken cancellationToken)
    {
        // The 0xFF first makes the agent drop whatever half command an earlier client left in its parser.
        var token = Random.Shared.NextInt64(1, int.MaxValue);
        await _stream.WriteAsync(new[] { Delimiter }, cancellationToken);
        await SendAsync("guest-sync-delimited", new JsonObject { ["id"] = token }, cancellationToken);
        while (true)
        {
            // Everything before the delimiter is an earlier client's leftovers; a reply after it with another id is an
            // earlier client's sync.
            await SkipPastDelimiterAsync(cancellationToken);
            var reply = await ReadReplyAsync(cancellationToken);
            if (reply.TryGetProperty("return", out var value) && value.TryGetInt64(out var echoed) && echoed == token)
            {
                return;
            }
        }
    }

    private async Task SendAsync(string command, JsonObject? arguments, CancellationToken cancellationToken)
    {
        var message = new JsonObject { ["execute"] = command };
        if (arguments is not null)
        {
            message["arguments"] = arguments;
        }

        await _stream.WriteAsync(Encoding.UTF8.GetBytes(message.ToJsonString() + "\n"), cancellationToken);
    }

    /// <summary>The next JSON object the agent sends (one per line); lines that are not JSON objects are skipped.</summary>
    private async Task<JsonElement> ReadReplyAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var line = await ReadLineAsync(cancellationToken);
            try
            {
                using var document = JsonDocument.Parse(line);
                if (document.RootElement.ValueKind == JsonValueKind.Object)
                {
                    return document.RootElement.Clone();
                }
            }
            catch (JsonException)
            {
                // Leftovers cut in the middle: not a reply.
            }
        }
    }

    private async Task SkipPastDelimiterAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var at = Array.IndexOf(_buffer, Delimiter, _start, _end - _start);
            if (at >= 0)
            {
                _start = at + 1;
                return;
            }

            _start = _end;
            await FillAsync(cancellationToken);
        }
    }

    private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
    {
        var line = new List<byte>();
        while (true)
        {
            var at = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (at >= 0)
            {
                line.AddRange(_buffer.AsSpan(_start, at - _start));
                _start = at + 1;
                return Encoding.UTF8.GetString(line.ToArray()).Trim();
            }

            line.AddRange(_buffer.AsSpan(_start, _end - _start));
            _start = _end;
            await FillAsync(cancellationToken);
        }
    }

    private async Task FillAsync(CancellationToken cancellationToken)
    {
        _start = 0;
        _end = await _stream.ReadAsync(_buffer, cancellationToken);
        if (_end == 0)
        {
            throw new IOException("the guest agent's socket closed");
        }
    }

    private static QgaException Refused(string command, JsonElement error) =>
        new(command, StringOf(error, "class") ?? "", StringOf(error, "desc") ?? "");

    private static string OsName(JsonElement os) =>
        StringOf(os, "pretty-name") ?? string.Join(' ', new[] { StringOf(os, "name"), StringOf(os, "version") }.Where(s => s is not null));

    /// <summary>Each address as <c>ip/prefix</c>, loopback left out.</summary>
    private static IReadOnlyList<string> Addresses(JsonElement interfaces)
    {
        var addresses = new List<string>();
        if (interfaces.ValueKind != JsonValueKind.Array)
        {
            return addresses;
        }

        foreach (var nic in interfaces.EnumerateArray())
        {
            if (StringOf(nic, "name") == "lo" || !nic.TryGetProperty("ip-addresses", out var ips) || ips.ValueKind != JsonValueKind.Array)
            {
                continue;
            }

            foreach (var ip in ips.EnumerateArray())
            {
                if (StringOf(ip, "ip-address") is { } address)
                {
                    addresses.Add(ip.TryGetProperty("prefix", out var prefix) && prefix.TryGetInt32(out var bits)
                        ? address + "/" + bits.ToString(CultureInfo.InvariantCulture)
                        : address);
                }
            }
        }

        return addresses;
    }

    private static string? StringOf(JsonElement element, string property) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    public async ValueTask DisposeAsync()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}
