// QMP parsing against a scripted fake server (as libvirt tests it), independent of a real QEMU.
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Tests;

public sealed class QmpClientTests : IAsyncLifetime
{
    private const string Greeting = """{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}""";

    private readonly TempDir _dir = new();
    private readonly List<QmpEvent> _events = [];
    private Socket? _listener;
    private FakeQmpPeer? _server;
    private QmpClient? _client;

    public Task InitializeAsync()
    {
        var path = Path.Combine(_dir.Path, "qmp.sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        _listener.Listen(1);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        _server?.Dispose();
        _listener?.Dispose();
        _dir.Dispose();
    }

    /// <summary>Connects a client and plays the server's side of the handshake.</summary>
    private async Task<(QmpClient Client, FakeQmpPeer Server)> ConnectAsync()
    {
        var accept = _listener!.AcceptAsync();
        var connect = QmpClient.ConnectAsync(Path.Combine(_dir.Path, "qmp.sock"), e => { lock (_events) { _events.Add(e); } }, CancellationToken.None);
        _server = new FakeQmpPeer(await accept);
        await _server.SendAsync(Greeting);
        var capabilities = await _server.ReadCommandAsync();
        Assert.Equal("qmp_capabilities", capabilities.GetProperty("execute").GetString());
        await _server.ReplyAsync(capabilities, "{}");
        _client = await connect;
        return (_client, _server);
    }

    [Fact]
    public async Task Connect_reads_the_greeting_and_negotiates_capabilities()
    {
        var (client, _) = await ConnectAsync();

        Assert.Equal(7, client.Greeting.GetProperty("version").GetProperty("qemu").GetProperty("major").GetInt32());
        Assert.False(client.Closed.IsCompleted);
    }

    [Fact]
    public async Task A_command_returns_the_servers_return_value()
    {
        var (client, server) = await ConnectAsync();

        var status = client.ExecuteAsync("query-status", null, CancellationToken.None);
        var command = await server.ReadCommandAsync();
        Assert.Equal("query-status", command.GetProperty("execute").GetString());
        await server.ReplyAsync(command, """{"status": "running", "running": true}""");

        Assert.Equal("running", (await status).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Command_arguments_are_sent_as_the_arguments_object()
    {
        var (client, server) = await ConnectAsync();

        var call = client.ExecuteAsync("human-monitor-command", new { command_line = "info cpus" }, CancellationToken.None);
        var command = await server.ReadCommandAsync();
        await server.ReplyAsync(command, "\"ok\"");
        await call;

        Assert.Equal("info cpus", command.GetProperty("arguments").GetProperty("command_line").GetString());
    }

    [Fact]
    public async Task Replies_are_matched_to_commands_by_id_whatever_their_order()
    {
        var (client, server) = await ConnectAsync();

        var first = client.ExecuteAsync("first", null, CancellationToken.None);
        var firstCommand = await server.ReadCommandAsync();
        var second = client.ExecuteAsync("second", null, CancellationToken.None);
        var secondCommand = await server.ReadCommandAsync();
        await server.ReplyAsync(secondCommand, "2");
        await server.ReplyAsync(firstCommand, "1");

        Assert.Equal(1, (await first).GetInt32());
        Assert.Equal(2, (await second).GetInt32());
    }

    [Fact]
    public async Task An_error_reply_becomes_a_typed_exception_naming_command_and_class()
    {
        var (client, server) = await ConnectAsync();

        var call = client.ExecuteAsync("cont", null, CancellationToken.None);
        var command = await server.ReadCommandAsync();
        await server.SendAsync(
            $$"""{"error": {"class": "GenericError", "desc": "Resetting the Virtual Machine is required"}, "id": {{command.GetProperty("id").GetRawText()}}}""");

        var error = await Assert.ThrowsAsync<QmpException>(() => call);
        Assert.Equal("cont", error.Command);
        Assert.Equal("GenericError", error.ErrorClass);
        Assert.Contains("Resetting", error.Description);
        Assert.Contains("cont", error.Message);
    }

    [Fact]
    public async Task Events_are_delivered_in_the_order_the_server_sent_them()
    {
        var (client, server) = await ConnectAsync();

        var call = client.ExecuteAsync("stop", null, CancellationToken.None);
        var command = await server.ReadCommandAsync();
        await server.SendAsync("""{"event": "STOP", "timestamp": {"seconds": 1700000000, "microseconds": 250}}""");
        await server.SendAsync("""{"event": "RESUME", "timestamp": {"seconds": 1700000001, "microseconds": 0}}""");
        await server.SendAsync("""{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}, "timestamp": {"seconds": 1700000002, "microseconds": 0}}""");
        await server.ReplyAsync(command, "{}");
        await call;

        // Events sent before the reply are raised before the reply completes the command.
        QmpEvent[] events;
        lock (_events)
        {
            events = [.. _events];
        }

        Assert.Equal(["STOP", "RESUME", "SHUTDOWN"], events.Select(e => e.Name));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1700000000).AddTicks(2500), events[0].Timestamp);
        Assert.True(events[2].Data.GetProperty("guest").GetBoolean());
    }

    [Fact]
    public async Task The_server_closing_completes_Closed_and_fails_pending_and_later_commands()
    {
        var (client, server) = await ConnectAsync();

        var pending = client.ExecuteAsync("query-cpus-fast", null, CancellationToken.None);
        await server.ReadCommandAsync();
        server.Dispose();

        await client.Closed.WaitAsync(TimeSpan.FromSeconds(30));
        await Assert.ThrowsAsync<QmpDisconnectedException>(() => pending);
        await Assert.ThrowsAsync<QmpDisconnectedException>(() => client.ExecuteAsync("stop", null, CancellationToken.None));
    }

    [Fact]
    public async Task A_server_that_closes_before_its_greeting_fails_the_connect()
    {
        var accept = _listener!.AcceptAsync();
        var connect = QmpClient.ConnectAsync(Path.Combine(_dir.Path, "qmp.sock"), null, CancellationToken.None);
        (await accept).Dispose();

        await Assert.ThrowsAsync<QmpDisconnectedException>(() => connect);
    }

    /// <summary>The server end of one QMP connection, driven line by line by the test.</summary>
    private sealed class FakeQmpPeer(Socket socket) : IDisposable
    {
        private readonly NetworkStream _stream = new(socket, ownsSocket: true);
        private StreamReader? _reader;

        public async Task SendAsync(string json)
        {
            await _stream.WriteAsync(Encoding.UTF8.GetBytes(json + "\r\n"));
        }

        public async Task<JsonElement> ReadCommandAsync()
        {
            _reader ??= new StreamReader(_stream, Encoding.UTF8, false, 1024, leaveOpen: true);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var line = await _reader.ReadLineAsync(timeout.Token) ?? throw new IOException("client closed");
            return JsonDocument.Parse(line).RootElement.Clone();
        }

        public Task ReplyAsync(JsonElement command, string returnJson) =>
            SendAsync($$"""{"return": {{returnJson}}, "id": {{command.GetProperty("id").GetRawText()}}}""");

        public void Dispose()
        {
            _reader?.Dispose();
            _stream.Dispose();
        }
    }
}
