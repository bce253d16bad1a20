using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Orchestrator.Tools.Bench;

/// <summary>What the benchmarks say to a node's HTTP API, and how they wait on it.</summary>
public static class BenchHttp
{
    public static StringContent JsonContent(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

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
