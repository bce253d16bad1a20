using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Orchestrator.Tools.Bench;

/// <summary>What the benchmarks say to a node's HTTP API, and how they wait on it.</summary>
public static class BenchHttp
{
    public static StringContent JsonContent(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

    /// <summary>p50, p99 and max of latencies in milliseconds, to 0.01 ms.</summary>
    public static (double P50, double P99, double Max) Latency(IReadOnlyList<double> milliseconds) =>
        (Math.Round(Hypervisor.BootBenchmark.Percentile(milliseconds, 50), 2), Math.Round(Hypervisor.BootBenchmark.Percentile(milliseconds, 99), 2),
            Math.Round(milliseconds.Max(), 2));

    /// <summary>Removes a benchmark node's data directory, as far as it can (a leftover file is not worth failing the run).</summary>
    public static void RemoveDataDir(string dataDir)
    {
        try
        {
            Directory.Delete(dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public static async Task<JsonArray?> GetArray(LocalNode node, string path)
    {
        try
        {
            var response = await node.Http.GetAsync(path);
            return response.IsSuccessStatusCode ? JsonNode.Parse(await response.Content.ReadAsStringAsync())?.AsArray() : null;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return null; // the scheduler may be moving
        }
    }

    public static async Task Until(Func<Task<bool>> condition, TimeSpan timeout, string what, CancellationToken ct,
        Func<Task<string>>? explain = null)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout)
            {
                var detail = explain is null ? "" : $": {await explain()}";
                throw new TimeoutException($"gave up waiting for {what} after {timeout.TotalSeconds} s{detail}");
            }

            await Task.Delay(200, ct);
        }
    }

    public static async Task<JsonObject?> GetObject(LocalNode node, string path)
    {
        try
        {
            var response = await node.Http.GetAsync(path);
            return response.IsSuccessStatusCode ? JsonNode.Parse(await response.Content.ReadAsStringAsync())?.AsObject() : null;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }
}
