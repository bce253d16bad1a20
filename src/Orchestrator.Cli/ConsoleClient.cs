// The client end of GET /v1/vms/{name}/console: used by `vm console`, by `bench console` and by the tests.
using System.Net;
using System.Net.WebSockets;
using System.Text.Json;

namespace Orchestrator.Cli;

/// <summary>What the node sent: raw serial bytes, or a notice (attached, taken-over, dropped, ended…).</summary>
public abstract record ConsoleMessage
{
    private ConsoleMessage() { }

    public sealed record Output(byte[] Data) : ConsoleMessage;

    public sealed record Notice(string Type, string Message) : ConsoleMessage;
}

/// <summary>A WebSocket attached to one VM's serial console.</summary>
public sealed class ConsoleClient : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly byte[] _buffer = new byte[16 * 1024];

    private ConsoleClient(ClientWebSocket socket)
    {
        _socket = socket;
    }

    /// <summary>
    /// Attaches; throws <see cref="ConsoleRefusedException"/> with the HTTP status when the node refuses the upgrade
    /// (404: no such VM for this key's tenant; 409: not running).
    /// </summary>
    public static async Task<ConsoleClient> ConnectAsync(Uri baseUrl, string? apiKey, string name, bool force, CancellationToken ct)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (apiKey is not null)
        {
            socket.Options.SetRequestHeader("Authorization", "Bearer " + apiKey);
        }

        var builder = new UriBuilder(new Uri(baseUrl, $"v1/vms/{Uri.EscapeDataString(name)}/console" + (force ? "?force=true" : "")));
        builder.Scheme = builder.Scheme == Uri.UriSchemeHttps ? "wss" : "ws";
        try
        {
            await socket.ConnectAsync(builder.Uri, ct);
        }
        catch (WebSocketException ex) when (socket.HttpStatusCode is not (0 or HttpStatusCode.SwitchingProtocols))
        {
            var status = socket.HttpStatusCode;
            socket.Dispose();
            throw new ConsoleRefusedException(status, ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new ConsoleClient(socket);
    }

    /// <summary>Types bytes into the guest (dropped by the node unless this session holds the keyboard).</summary>
    public Task SendAsync(ReadOnlyMemory<byte> keys, CancellationToken ct) =>
        _socket.SendAsync(keys, WebSocketMessageType.Binary, true, ct).AsTask();

    /// <summary>The next thing the node sent; null once the console closed.</summary>
    public async Task<ConsoleMessage?> ReceiveAsync(CancellationToken ct)
    {
        using var message = new MemoryStream();
        while (true)
        {
            ValueWebSocketReceiveResult received;
            try
            {
                received = await _socket.ReceiveAsync(_buffer.AsMemory(), ct);
            }
            catch (WebSocketException)
            {
                return null;
            }

            if (received.MessageType == WebSocketMessageType.Close)
            {
                return null;
            }

            message.Write(_buffer, 0, received.Count);
            if (!received.EndOfMessage)
            {
                continue;
            }

            if (received.MessageType == WebSocketMessageType.Binary)
            {
                return new ConsoleMessage.Output(message.ToArray());
            }

            try
            {
                using var notice = JsonDocument.Parse(message.ToArray());
                var type = notice.RootElement.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
                var text = notice.RootElement.TryGetProperty("message", out var m) ? m.GetString() ?? "" : "";
                return new ConsoleMessage.Notice(type, text);
            }
            catch (JsonException)
            {
                return new ConsoleMessage.Notice("", System.Text.Encoding.UTF8.GetString(message.ToArray()));
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_socket.State == WebSocketState.Open)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "detached", timeout.Token);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
            {
            }
        }

        _socket.Dispose();
    }
}

/// <summary>The node answered the upgrade with an error status instead of a console.</summary>
public sealed class ConsoleRefusedException(HttpStatusCode status, Exception inner)
    : Exception($"the node refused the console: HTTP {(int)status}", inner)
{
    public HttpStatusCode Status { get; } = status;
}
