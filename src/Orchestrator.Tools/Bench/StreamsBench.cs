using System.Diagnostics;
using System.Text.Json.Nodes;
using Orchestrator.Cli;

namespace Orchestrator.Tools.Bench;

/// <summary>
/// `bench streams`: what open event streams cost everyone else. A node on loopback (simulated host, no rate limit), N
/// streams following <c>/v1/events</c>, then ordinary requests (<c>GET /v1/vms</c>) timed one after another; last, one
/// event written, and how many streams saw it (they must still be live).
/// </summary>
public static class StreamsBench
{
    public static async Task<int> RunAsync(StreamsBenchOptions options, CancellationToken ct)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), $"orchestrator-bench-streams-{Environment.ProcessId}");
        string[] settings =
        [
            "orchestrator.host.driver=simulated", "orchestrator.host.simulated-hosts=1",
            "orchestrator.api.rate-limit.requests-per-second=1000000", "orchestrator.api.rate-limit.burst=1000000",
        ];
        try
        {
            await using var node = await LocalNode.StartAsync(dataDir, settings.SelectMany(s => new[] { "--set", s }), ct);
            await BenchHttp.Until(async () => await BenchHttp.GetArray(node, "v1/vms") is not null, TimeSpan.FromSeconds(60), "the API", ct);
            Console.Error.WriteLine($"streams: {options.Streams} event streams open, then {options.Requests} requests timed; node in {dataDir}");

            using var streamClient = new HttpClient { BaseAddress = node.Http.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
            streamClient.DefaultRequestHeaders.Authorization = node.Http.DefaultRequestHeaders.Authorization;
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var seen = new int[options.Streams];
            var opened = 0;
            var readers = Enumerable.Range(0, options.Streams).Select(i => Task.Run(async () =>
            {
                using var response = await streamClient.GetAsync("v1/events?follow=true&type=TenantCreated", HttpCompletionOption.ResponseHeadersRead, stop.Token);
                response.EnsureSuccessStatusCode();
                Interlocked.Increment(ref opened);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(stop.Token));
                while (await reader.ReadLineAsync(stop.Token) is { } line)
                {
                    if (line.StartsWith("event:", StringComparison.Ordinal))
                    {
                        Interlocked.Increment(ref seen[i]);
                    }
                }
            }, stop.Token)).ToList();
            await BenchHttp.Until(() => Task.FromResult(Volatile.Read(ref opened) == options.Streams || readers.Any(r => r.IsFaulted)),
                TimeSpan.FromSeconds(120), $"{options.Streams} streams to open", ct);
            if (readers.FirstOrDefault(r => r.IsFaulted) is { } failed)
            {
                throw new InvalidOperationException($"a stream failed to open: {failed.Exception!.InnerException!.Message}");
            }

            for (var i = 0; i < Math.Min(100, options.Requests); i++)
            {
                (await node.Http.GetAsync("v1/vms", ct)).EnsureSuccessStatusCode(); // warm-up, not counted
            }

            var latencies = new List<double>(options.Requests);
            for (var i = 0; i < options.Requests; i++)
            {
                var clock = Stopwatch.StartNew();
                using var response = await node.Http.GetAsync("v1/vms", ct);
                await response.Content.ReadAsByteArrayAsync(ct);
                latencies.Add(clock.Elapsed.TotalMilliseconds);
                response.EnsureSuccessStatusCode();
            }

            (await node.Http.PostAsync("v1/tenants", BenchHttp.JsonContent("""{"id":"bench-streams"}"""), ct)).EnsureSuccessStatusCode();
            var deadline = Stopwatch.StartNew();
            while (seen.Count(s => s > 0) < options.Streams && deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(100, ct);
            }

            var received = seen.Count(s => s > 0);
            await stop.CancelAsync();
            Print(options, latencies, received);
            return 0;
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or HttpRequestException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 1;
        }
        finally
        {
            BenchHttp.RemoveDataDir(dataDir);
        }
    }

    private static void Print(StreamsBenchOptions options, IReadOnlyList<double> latencies, int received)
    {
        var latency = BenchHttp.Latency(latencies);
        if (options.Output == OutputFormat.Json)
        {
            Console.WriteLine(latency.Json(new JsonObject
            {
                ["streams"] = options.Streams,
                ["requests"] = options.Requests,
                ["streams_that_got_the_event"] = received,
            }));
            return;
        }

        Console.WriteLine($"{options.Streams} streams open, {options.Requests} requests (GET /v1/vms) one at a time: {latency}");
        Console.WriteLine($"an event written afterwards reached {received} of {options.Streams} streams");
    }
}
