using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using Orchestrator.Cli;
using Orchestrator.Domain.Vms;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>The serial console over WebSocket against real guests: typing, the one writer, read-only keys, tenants, adoption, the CLI.</summary>
[Collection(NodeCollection.Name)]
public sealed class ConsoleTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_guest_runs_what_its_writer_types_and_nobody_else_reaches_its_keyboard()
    {
        await using var node = await NodeProcess.StartAsync(output);
        var member = await node.TenantKeyAsync("acme");
        var second = await node.TenantKeyAsync("acme");
        var viewer = await node.TenantKeyAsync("acme", "read-only");
        var stranger = await node.TenantKeyAsync("globex");
        using (var acme = node.ClientWith(member))
        {
            var created = await acme.PostAsync("v1/vms",
                JsonContent("""{"name":"shell","vcpus":1,"memoryMiB":256,"image":"demo"}"""));
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        await node.WaitForVmAsync("shell?tenant=acme", "Ready", seconds: 120); // the admin, acting for acme
        var url = node.Http.BaseAddress!;

        await using var writer = await Session.AttachAsync(url, member, "shell", force: false, output);
        Assert.Equal("write", (await writer.NoticeAsync("attached", Wait)).Message);
        await writer.WaitForAsync("ORCHESTRATOR-GUEST-READY", Wait); // the scrollback
        await writer.RunAsync("echo typed-$((6*7))", "typed-42", Wait);

        await using var other = await Session.AttachAsync(url, second, "shell", force: false, output);
        Assert.Contains("--force", (await other.NoticeAsync("attached", Wait)).Message);
        await using var readOnly = await Session.AttachAsync(url, viewer, "shell", force: false, output);
        Assert.Contains("read-only", (await readOnly.NoticeAsync("attached", Wait)).Message);
        await other.TypeAsync("echo second-$((1+1))\r");
        await readOnly.TypeAsync("echo viewer-$((3+3))\r");
        // The writer's commands after theirs come back; theirs never ran (every session sees all output).
        await writer.RunAsync("echo after-$((2+2))", "after-4", Wait);
        await writer.RunAsync("echo again-$((2+3))", "again-5", Wait);
        Assert.DoesNotContain("second-2", writer.Text);
        Assert.DoesNotContain("viewer-6", writer.Text);
        Assert.Contains("again-5", readOnly.Text);

        // --force takes the keyboard and tells the old writer, which goes on reading.
        await using var taker = await Session.AttachAsync(url, second, "shell", force: true, output);
        Assert.Equal("write", (await taker.NoticeAsync("attached", Wait)).Message);
        Assert.Contains("took over", (await writer.NoticeAsync("taken-over", Wait)).Message);
        await writer.TypeAsync("echo old-$((4+4))\r");
        await taker.RunAsync("echo taken-$((5+5))", "taken-10", Wait);
        await writer.WaitForAsync("taken-10", Wait);
        Assert.DoesNotContain("old-8", taker.Text);

        // Another tenant's VM is a missing one; so is a name nobody has.
        var refused = await Assert.ThrowsAsync<ConsoleRefusedException>(() => ConsoleClient.ConnectAsync(url, stranger, "shell", false, CancellationToken.None));
        Assert.Equal(HttpStatusCode.NotFound, refused.Status);
        var missing = await Assert.ThrowsAsync<ConsoleRefusedException>(() => ConsoleClient.ConnectAsync(url, member, "nope", false, CancellationToken.None));
        Assert.Equal(HttpStatusCode.NotFound, missing.Status);
        // A plain GET (no upgrade) is bad input, not a hang.
        using var plain = node.ClientWith(member);
        Assert.Equal(HttpStatusCode.BadRequest, (await plain.GetAsync("v1/vms/shell/console")).StatusCode);
    }

    [Fact]
    public async Task What_the_guest_printed_while_the_node_was_stopped_is_in_the_scrollback_after_adoption_and_the_cli_attaches()
    {
        // The guest stays up while its node is down for longer than the test config's 4 s fence.
        await using var node = await NodeProcess.StartAsync(output, extraConfig: "orchestrator.host.fence-after = 120s\n");
        await node.CreateVmAsync("keeper");
        var before = await node.WaitForVmAsync("keeper", "Ready", seconds: 120);

        await using (var session = await Session.AttachAsync(node.Http.BaseAddress!, AdminKey(node), "keeper", force: false, output))
        {
            await session.NoticeAsync("attached", Wait);
            // A tick a second, on and on: some of them while the node is down.
            await session.RunAsync("(i=0; while [ $i -lt 40 ]; do sleep 1; i=$((i+1)); echo tick-$i.; done) & echo started-$((1+2))", "started-3", Wait);
        }

        await node.StopAsync();
        var log = Path.Combine(node.RunDir, "vms", ((string)before["id"]!).Replace("-", ""), "console.log");
        var lastSeen = LastTick(File.ReadAllText(log));
        var away = $"tick-{lastSeen + 2}.";
        await node.Eventually(() => Task.FromResult<bool?>(File.ReadAllText(log).Contains(away)), Wait, $"the guest to print {away} while the node is down");
        await node.StartAgainAsync();
        var adopted = await node.WaitForVmAsync("keeper", "Ready", seconds: 120);
        Assert.Equal((int)before["pid"]!, (int)adopted["pid"]!);

        // The ledger said Ready all along; the console answers once the restarted host agent has adopted the VM (409 until then).
        var adoptedSession = await node.Eventually(async () =>
        {
            try
            {
                return await Session.AttachAsync(node.Http.BaseAddress!, AdminKey(node), "keeper", force: false, output);
            }
            catch (ConsoleRefusedException refused) when (refused.Status == HttpStatusCode.Conflict)
            {
                return null;
            }
        }, Wait, "the adopted VM's console");
        await using (var session = adoptedSession)
        {
            Assert.Equal("write", (await session.NoticeAsync("attached", Wait)).Message);
            await session.WaitForAsync(away, Wait); // in the scrollback
            await session.RunAsync("echo adopted-$((7*6))", "adopted-42", Wait);
        }

        // The CLI under a pseudo-terminal: it says how to detach, runs what is typed, and Ctrl-] ends it cleanly.
        var cli = new ProcessStartInfo("script")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            ArgumentList = { "-qfec", $"dotnet {Path.Combine(AppContext.BaseDirectory, "orchestrator.dll")} vm console keeper --data {node.DataDir}", "/dev/null" },
        };
        using var script = Process.Start(cli)!;
        var screen = new StringBuilder();
        var pump = Task.Run(async () =>
        {
            var buffer = new char[4096];
            int read;
            while ((read = await script.StandardOutput.ReadAsync(buffer)) > 0)
            {
                lock (screen)
                {
                    screen.Append(buffer, 0, read);
                }
            }
        });
        string Screen()
        {
            lock (screen)
            {
                return screen.ToString();
            }
        }

        try
        {
            await node.Eventually(() => Task.FromResult<bool?>(Screen().Contains("escape character is ^]")), Wait, "the CLI to attach");
            await script.StandardInput.WriteAsync("echo cli-$((8*8))\r");
            await script.StandardInput.FlushAsync();
            await node.Eventually(() => Task.FromResult<bool?>(Screen().Contains("cli-64")), Wait, "the guest's answer in the CLI");
            await script.StandardInput.WriteAsync("\u001d");
            await script.StandardInput.FlushAsync();
            await script.WaitForExitAsync().WaitAsync(Wait);
            await pump;
            output.WriteLine(Screen());
            Assert.Equal(0, script.ExitCode);
            Assert.Contains("detached", Screen());
        }
        finally
        {
            if (!script.HasExited)
            {
                script.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public async Task A_console_attached_through_another_nodes_api_carries_bytes_both_ways_and_full_bootstraps_cross_nodes()
    {
        var shared = Directory.CreateTempSubdirectory("orc").FullName;
        int[] ports = [Checkout.FreePort(), Checkout.FreePort()];
        var seeds = ports.SelectMany(p => new[] { "--seed", $"akka.tcp://orchestrator@127.0.0.1:{p}" }).ToList();
        Task<NodeProcess> Start(int i) => NodeProcess.StartAsync(output, $"""
            orchestrator.cluster.port = {ports[i]}
            orchestrator.persistence.sqlite-file = "{shared}/journal.db"
            orchestrator.secrets.key-file = "{shared}/secrets.key"
            """, extraArgs: ["--config", Path.Combine(Checkout.Root(), "cluster", "cluster.conf"), .. seeds, "--set", $"orchestrator.host-id=c{i + 1}", .. i == 0 ? new[] { "--bootstrap" } : []],
            waitForScheduler: i == 0);
        try
        {
            await using var first = await Start(0);
            await using var second = await Start(1);
            await first.Eventually(async () => System.Text.Json.Nodes.JsonNode.Parse(await first.Http.GetStringAsync("v1/hosts"))!.AsArray()
                .Count(h => (string?)h!["state"] == "Up") == 2 ? true : (bool?)null, Wait, "both hosts Up");
            await first.CreateVmAsync("remote");
            var vm = await first.WaitForVmAsync("remote", "Ready", seconds: 120);
            // Through the API of the node that does not run the VM: session and console actor are on different nodes.
            var api = (string?)vm["host"] == "c1" ? second : first;

            await using var session = await Session.AttachAsync(api.Http.BaseAddress!, AdminKey(api), "remote", force: false, output);
            Assert.Equal("write", (await session.NoticeAsync("attached", Wait)).Message);
            await session.WaitForAsync("ORCHESTRATOR-GUEST-READY remote", Wait);
            await session.RunAsync("echo across-$((3*14))", "across-42", Wait);

            // A full bootstrap (64 KiB of user-data, 16 keys of 4 KiB each) is ~150 KB on the wire, past Akka's default
            // frame. Created through the node without the scheduler, and started on both hosts (spread), it crosses
            // nodes both ways: the create to the scheduler, the bootstrap to the host that starts the VM.
            var userData = Encoding.ASCII.GetBytes("#!/bin/sh\necho full-bootstrap-ran\nexit 0\n".PadRight(VmBootstraps.MaxUserDataBytes, '#'));
            var sha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(userData));
            var keys = Enumerable.Range(0, VmBootstraps.MaxSshKeys).Select(LargestKey).ToArray();
            var entry = first.Http.BaseAddress == api.Http.BaseAddress ? second : first;
            foreach (var name in new[] { "full1", "full2" })
            {
                var created = await entry.Http.PostAsJsonAsync("v1/vms",
                    new { name, vcpus = 1, memoryMiB = 128, image = "demo", hostname = name, sshKeys = keys, userData });
                Assert.Equal(System.Net.HttpStatusCode.Created, created.StatusCode);
            }

            var hosts = new HashSet<string>();
            foreach (var name in new[] { "full1", "full2" })
            {
                var ready = await first.WaitForVmAsync(name, "Ready", seconds: 120);
                hosts.Add((string)ready["host"]!);
                var runsIt = (string)ready["host"]! == "c1" ? first : second;
                var console = (await File.ReadAllTextAsync(Path.Combine(runsIt.RunDir, "vms", (string)ready["id"]!, "console.log")))
                    .Replace("\r\n", "\n", StringComparison.Ordinal);
                Assert.Contains($"orchestrator: user-data {userData.Length} bytes, sha256 {sha256}\n", console);
                Assert.Contains("full-bootstrap-ran\n", console);
            }

            output.WriteLine($"full bootstraps ran on {string.Join(", ", hosts)}");
        }
        finally
        {
            Directory.Delete(shared, recursive: true);
        }
    }

    /// <summary>A valid ed25519 authorized_keys line of the most characters a key may have.</summary>
    private static string LargestKey(int index)
    {
        var prefix = "ssh-ed25519 ";
        var comment = $" key{index}";
        var blobChars = (VmBootstraps.MaxSshKeyChars - prefix.Length - comment.Length) / 4 * 4;
        var blob = new byte[blobChars / 4 * 3];
        "\0\0\0\vssh-ed25519"u8.CopyTo(blob);
        return prefix + Convert.ToBase64String(blob) + comment;
    }

    private static int LastTick(string console) =>
        System.Text.RegularExpressions.Regex.Matches(console, @"tick-(\d+)\.").Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(0).Max();

    /// <summary>The node's admin key now (a restarted node may have a new one).</summary>
    private static string AdminKey(NodeProcess node) => node.Http.DefaultRequestHeaders.Authorization!.Parameter!;

    private static StringContent JsonContent(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>One attached WebSocket and everything it received so far.</summary>
    private sealed class Session : IAsyncDisposable
    {
        private readonly ConsoleClient _client;
        private readonly StringBuilder _text = new();
        private readonly List<ConsoleMessage.Notice> _notices = [];
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _pump;

        private Session(ConsoleClient client, ITestOutputHelper output)
        {
            _client = client;
            _pump = Task.Run(async () =>
            {
                while (await _client.ReceiveAsync(_stop.Token) is { } message)
                {
                    lock (_text)
                    {
                        if (message is ConsoleMessage.Output bytes)
                        {
                            _text.Append(Encoding.UTF8.GetString(bytes.Data));
                        }
                        else
                        {
                            _notices.Add((ConsoleMessage.Notice)message);
                            output.WriteLine($"notice: {message}");
                        }
                    }
                }
            });
        }

        public string Text
        {
            get
            {
                lock (_text)
                {
                    return _text.ToString();
                }
            }
        }

        public static async Task<Session> AttachAsync(Uri url, string key, string name, bool force, ITestOutputHelper output) =>
            new(await ConsoleClient.ConnectAsync(url, key, name, force, CancellationToken.None), output);

        public Task TypeAsync(string keys) => _client.SendAsync(Encoding.UTF8.GetBytes(keys), CancellationToken.None);

        /// <summary>Types a command and waits for <paramref name="expected"/> in what comes back after it.</summary>
        public async Task RunAsync(string command, string expected, TimeSpan timeout)
        {
            var from = Text.Length;
            await TypeAsync(command + "\r");
            await Until(() => Text.IndexOf(expected, from, StringComparison.Ordinal) >= 0, timeout, $"'{expected}' after typing '{command}'");
        }

        public Task WaitForAsync(string expected, TimeSpan timeout) =>
            Until(() => Text.Contains(expected, StringComparison.Ordinal), timeout, $"'{expected}' on the console");

        public async Task<ConsoleMessage.Notice> NoticeAsync(string type, TimeSpan timeout)
        {
            ConsoleMessage.Notice? found = null;
            await Until(() =>
            {
                lock (_text)
                {
                    found = _notices.FirstOrDefault(n => n.Type == type);
                }

                return found is not null;
            }, timeout, $"a '{type}' notice");
            return found!;
        }

        private async Task Until(Func<bool> condition, TimeSpan timeout, string what)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (!condition())
            {
                if (DateTime.UtcNow > deadline || _pump.IsCompleted)
                {
                    throw new TimeoutException($"gave up waiting for {what}{(_pump.IsCompleted ? " (the console closed)" : "")}. Console so far:\n{Text}");
                }

                await Task.Delay(50);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _client.DisposeAsync();
            try
            {
                await _pump;
            }
            catch (OperationCanceledException)
            {
            }
        }
    }
}
