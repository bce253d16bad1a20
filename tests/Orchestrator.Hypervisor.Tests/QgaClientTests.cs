// The guest agent client against a scripted fake agent on a unix socket; the real agent is in DebianGuestTests.
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Tests;

public sealed class QgaClientTests : IDisposable
{
    private const string OsInfo = """{"return": {"id": "debian", "name": "Debian GNU/Linux", "pretty-name": "Debian GNU/Linux 12 (bookworm)", "version": "12 (bookworm)"}}""";
    private const string Interfaces = """
        {"return": [{"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]},
                    {"name": "ens3", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.2.15", "prefix": 24},
                                                      {"ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64}]}]}
        """;

    private readonly TempDir _dir = new();
    private readonly Socket _listener;

    public QgaClientTests()
    {
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen(1);
    }

    private string SocketPath => Path.Combine(_dir.Path, "qga.sock");

    public void Dispose()
    {
        _listener.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task Connecting_resyncs_past_an_earlier_clients_leftovers_and_its_stale_sync_reply()
    {
        using var agent = new FakeAgent(_listener, leftovers: "{\"return\": {\"host-name\": \"stale\"}}\n{\"ret\xFF{\"return\": 7}\n", Answer);

        await using var client = await QgaClient.ConnectAsync(SocketPath, Bounded());
        var hostname = await client.ExecuteAsync("guest-get-host-name", null, Bounded());

        Assert.Equal("guest-1", hostname.GetProperty("host-name").GetString());
        Assert.Equal((byte?)0xFF, agent.FirstByte);
    }

    [Fact]
    public async Task The_guest_info_has_its_os_hostname_and_addresses_without_loopback()
    {
        using var agent = new FakeAgent(_listener, leftovers: "", Answer);

        await using var client = await QgaClient.ConnectAsync(SocketPath, Bounded());
        var info = await client.QueryInfoAsync(Bounded());

        Assert.Equal(("Debian GNU/Linux 12 (bookworm)", "guest-1"), (info.Os, info.Hostname));
        Assert.Equal(["10.0.2.15/24", "fe80::1/64"], info.Addresses);
    }

    [Fact]
    public async Task A_refused_command_throws_the_agents_error()
    {
        using var agent = new FakeAgent(_listener, leftovers: "", Answer);

        await using var client = await QgaClient.ConnectAsync(SocketPath, Bounded());
        var refused = await Assert.ThrowsAsync<QgaException>(() => client.ExecuteAsync("guest-exec", null, Bounded()));

        Assert.Equal("CommandNotFound", refused.ErrorClass);
        Assert.Contains("guest-exec", refused.Message);
    }

    [Fact]
    public async Task Shutdown_asks_for_a_powerdown_and_returns_without_a_reply()
    {
        using var agent = new FakeAgent(_listener, leftovers: "", Answer);

        await using var client = await QgaClient.ConnectAsync(SocketPath, Bounded());
        await client.ShutdownAsync(TimeSpan.FromMilliseconds(200), Bounded());

        await Eventually.HoldsAsync(() => agent.Commands.Any(c => c.StartsWith("guest-shutdown", StringComparison.Ordinal)), "the agent never got guest-shutdown");
        Assert.Contains("guest-shutdown powerdown", agent.Commands);
    }

    [Fact]
    public async Task A_snapshot_runs_between_freeze_and_thaw_and_a_failed_one_still_thaws()
    {
        using var agent = new FakeAgent(_listener, leftovers: "", Answer);
        await using var client = await QgaClient.ConnectAsync(SocketPath, Bounded());

        var frozen = await client.WithFrozenFilesystemsAsync(_ =>
        {
            agent.Note("snapshot");
            return Task.CompletedTask;
        }, Bounded());
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.WithFrozenFilesystemsAsync(
            _ => throw new InvalidOperationException("blockdev-snapshot failed"), Bounded()));

        Assert.Equal(2, frozen);
        Assert.Equal(["guest-fsfreeze-freeze", "snapshot", "guest-fsfreeze-thaw", "guest-fsfreeze-freeze", "guest-fsfreeze-thaw"],
            agent.Commands.Where(c => !c.StartsWith("guest-sync", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_guest_without_an_agent_never_answers_and_the_callers_token_ends_the_wait()
    {
        using var silent = new FakeAgent(_listener, leftovers: "", _ => null);
        using var bound = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => QgaClient.ConnectAsync(SocketPath, bound.Token));
    }

    private static CancellationToken Bounded() => new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token;

    /// <summary>The scripted agent: replies per command; null sends nothing (as guest-shutdown, or a guest without an agent).</summary>
    private static string? Answer(JsonElement command) => command.GetProperty("execute").GetString() switch
    {
        "guest-sync-delimited" => "\xFF{\"return\": " + command.GetProperty("arguments").GetProperty("id").GetInt64() + "}",
        "guest-get-host-name" => """{"return": {"host-name": "guest-1"}}""",
        "guest-get-osinfo" => OsInfo,
        "guest-network-get-interfaces" => Interfaces.ReplaceLineEndings(" "),
        "guest-shutdown" => null,
        "guest-fsfreeze-freeze" or "guest-fsfreeze-thaw" => """{"return": 2}""",
        var other => $$$"""{"error": {"class": "CommandNotFound", "desc": "The command {{{other}}} has not been found"}}""",
    };

    /// <summary>Accepts one client, writes an earlier client's leftovers, then answers line by line (0xFF bytes dropped).</summary>
    private sealed class FakeAgent : IDisposable
    {
        private readonly List<string> _commands = [];
        private readonly Task _serving;
        private Socket? _peer;

        public FakeAgent(Socket listener, string leftovers, Func<JsonElement, string?> answer)
        {
            _serving = Task.Run(async () =>
            {
                _peer = await listener.AcceptAsync();
                await using var stream = new NetworkStream(_peer, ownsSocket: false);
                await stream.WriteAsync(Latin1(leftovers));
                var line = new List<byte>();
                var buffer = new byte[1];
                while (await stream.ReadAsync(buffer) > 0)
                {
                    FirstByte ??= buffer[0];
                    if (buffer[0] == 0xFF)
                    {
                        continue;
                    }

                    if (buffer[0] != '\n')
                    {
                        line.Add(buffer[0]);
                        continue;
                    }

                    using var command = JsonDocument.Parse(line.ToArray());
                    line.Clear();
                    var root = command.RootElement;
                    lock (_commands)
                    {
                        _commands.Add(root.GetProperty("execute").GetString() +
                                      (root.TryGetProperty("arguments", out var a) && a.TryGetProperty("mode", out var mode) ? " " + mode.GetString() : ""));
                    }

                    if (answer(root) is { } reply)
                    {
                        await stream.WriteAsync(Latin1(reply + "\n"));
                    }
                }
            });
        }

        public byte? FirstByte { get; private set; }

        /// <summary>Records something that happened between commands, in their order.</summary>
        public void Note(string what)
        {
            lock (_commands)
            {
                _commands.Add(what);
            }
        }

        public IReadOnlyList<string> Commands
        {
            get
            {
                lock (_commands)
                {
                    return [.. _commands];
                }
            }
        }

        /// <summary>Latin-1 so "\xFF" is the single byte 0xFF, as the real agent sends it.</summary>
        private static byte[] Latin1(string text) => Encoding.Latin1.GetBytes(text);

        public void Dispose()
        {
            _peer?.Dispose();
            try
            {
                _serving.Wait(TimeSpan.FromSeconds(5));
            }
            catch (AggregateException)
            {
                // The client hung up mid-read: over either way.
            }
        }
    }
}
