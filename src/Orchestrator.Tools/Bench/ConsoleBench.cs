using System.Diagnostics;
using System.Text.Json.Nodes;
using Orchestrator.Cli;

namespace Orchestrator.Tools.Bench;

/// <summary>
/// `bench console`: the serial console's round trip. A node on loopback boots one demo guest; one key at a time goes in
/// through <c>/v1/vms/{name}/console</c> (WebSocket → session → the VM's console actor → QEMU's serial socket → the
/// guest's tty) and is timed until its echo comes back the same way. A backspace after each key keeps the line short.
/// </summary>
public static class ConsoleBench
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);

    public static async Task<int> RunAsync(ConsoleBenchOptions options, CancellationToken ct)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), $"orchestrator-bench-console-{Environment.ProcessId}");
        try
        {
            await using var node = await LocalNode.StartAsync(dataDir, [], ct);
            await BenchHttp.Until(async () => await BenchHttp.GetArray(node, "v1/hosts") is { Count: > 0 }, Wait, "the host to register", ct);
            (await node.Http.PostAsync("v1/vms", BenchHttp.JsonContent("""{"name":"echo","vcpus":1,"memoryMiB":256,"image":"demo"}"""), ct))
                .EnsureSuccessStatusCode();
            await BenchHttp.Until(async () => (string?)(await BenchHttp.GetObject(node, "v1/vms/echo"))?["state"] == "Ready", Wait, "the guest to be ready", ct);
            Console.Error.WriteLine($"console: {options.Keys} keys, one at a time; node in {dataDir}");

            await using var console = await ConsoleClient.ConnectAsync(node.Http.BaseAddress!,
                node.Http.DefaultRequestHeaders.Authorization!.Parameter, "echo", force: false, ct);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(Wait + TimeSpan.FromSeconds(options.Keys));
            // The shell is up once it runs a command.
            await console.SendAsync("echo bench-$((20+22))\r"u8.ToArray(), timeout.Token);
            await UntilOutputAsync(console, "bench-42"u8.ToArray(), timeout.Token);

            var latencies = new List<double>(options.Keys);
            for (var i = 0; i < options.Keys + options.Warmup; i++)
            {
                var clock = Stopwatch.StartNew();
                await console.SendAsync("x"u8.ToArray(), timeout.Token);
                await UntilOutputAsync(console, "x"u8.ToArray(), timeout.Token);
                if (i >= options.Warmup)
                {
                    latencies.Add(clock.Elapsed.TotalMilliseconds);
                }

                await console.SendAsync(new byte[] { 0x7f }, timeout.Token);
                await UntilOutputAsync(console, [], timeout.Token);
            }

            Print(options, latencies);
            return 0;
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or HttpRequestException or OperationCanceledException
                                       or ConsoleRefusedException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 1;
        }
        finally
        {
            BenchHttp.RemoveDataDir(dataDir);
        }
    }

    /// <summary>Reads output until a chunk holds <paramref name="wanted"/> (any output when it is empty).</summary>
    private static async Task UntilOutputAsync(ConsoleClient console, byte[] wanted, CancellationToken ct)
    {
        var seen = new List<byte>();
        while (await console.ReceiveAsync(ct) is { } message)
        {
            if (message is ConsoleMessage.Output output)
            {
                seen.AddRange(output.Data);
                if (wanted.Length == 0 || seen.ToArray().AsSpan().IndexOf(wanted) >= 0)
                {
                    return;
                }
            }
        }

        throw new InvalidOperationException("the console closed");
    }

    private static void Print(ConsoleBenchOptions options, IReadOnlyList<double> latencies)
    {
        var latency = BenchHttp.Latency(latencies);
        Console.WriteLine(options.Output == OutputFormat.Json
            ? latency.Json(new JsonObject { ["keys"] = latencies.Count })
            : $"console round trip (key in, its echo back, over the WebSocket), {latencies.Count} keys: {latency}");
    }
}
