using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Orchestrator.Tools.Bench;

/// <summary>What the benchmarks say to a node's HTTP API, and how they wait on it.</summary>
public static class BenchHttp
{
    public static StringContent JsonContent(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

    /// <summary>p50, p99 and max of latencies in milliseconds, to 0.01 ms.</summary>
    public static LatencySummary Latency(IReadOnlyList<double> milliseconds) =>
        new(Math.Round(Hypervisor.BootBenchmark.Percentile(milliseconds, 50), 2), Math.Round(Hypervisor.BootBenchmark.Percentile(milliseconds, 99), 2),
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

/// <summary>A latency distribution as the benchmarks print it.</summary>
public sealed record LatencySummary(double P50, double P99, double Max)
{
    /// <summary>"p50 … ms   p99 … ms   max … ms".</summary>
    public override string ToString() =>
        string.Format(System.Globalization.CultureInfo.InvariantCulture, "p50 {0:N2} ms   p99 {1:N2} ms   max {2:N2} ms", P50, P99, Max);

    /// <summary><paramref name="fields"/> with p50_ms, p99_ms and max_ms added, as indented JSON.</summary>
    public string Json(JsonObject fields)
    {
        fields["p50_ms"] = P50;
        fields["p99_ms"] = P99;
        fields["max_ms"] = Max;
        return fields.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }
}
