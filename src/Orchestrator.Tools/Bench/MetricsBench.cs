using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Orchestrator.Cli;

namespace Orchestrator.Tools.Bench;

/// <summary>
/// `bench metrics`: what one <c>GET /metrics</c> costs the node at N VMs. A node on loopback with the simulated driver
/// (its VMs exist only in memory), N VMs created through the API, then the node's idle CPU rate measured, then
/// scrapes one after another; the figure is the node's CPU time over the scrapes minus the idle rate over the same
/// time, per scrape, beside the series and bytes one scrape returns.
/// </summary>
public static class MetricsBench
{
    private const int VmsPerHost = 100;

    public static async Task<int> RunAsync(MetricsBenchOptions options, CancellationToken ct)
    {
        var dataDir = Path.Combine(Path.GetTempPath(), $"orchestrator-bench-metrics-{Environment.ProcessId}");
        var hosts = Math.Max(1, (options.Vms + VmsPerHost - 1) / VmsPerHost);
        string[] settings =
        [
            "orchestrator.host.driver=simulated", $"orchestrator.host.simulated-hosts={hosts}",
            $"orchestrator.host.cpus={VmsPerHost}", $"orchestrator.host.memory-mib={VmsPerHost * 128}",
            "orchestrator.api.rate-limit.requests-per-second=1000000", "orchestrator.api.rate-limit.burst=1000000",
        ];
        try
        {
            await using var node = await LocalNode.StartAsync(dataDir, settings.SelectMany(s => new[] { "--set", s }), ct);
            await BenchHttp.Until(async () => await BenchHttp.GetArray(node, "v1/vms") is not null, TimeSpan.FromSeconds(60), "the API", ct);
            Console.Error.WriteLine($"metrics: {options.Vms} VMs on {hosts} simulated hosts, then {options.Scrapes} scrapes; node in {dataDir}");
            await CreateVmsAsync(node, options.Vms, ct);
            await BenchHttp.Until(async () => ReadyVms(await ScrapeAsync(node, ct)) >= options.Vms, TimeSpan.FromMinutes(10),
                $"{options.Vms} VMs Ready in orchestrator_vms", ct);

            using var process = Process.GetProcessById(node.Pid);
            var idle = await CpuOverAsync(process, () => Task.Delay(TimeSpan.FromSeconds(options.IdleSeconds), ct));
            string text = "";
            var scraping = await CpuOverAsync(process, async () =>
            {
                for (var i = 0; i < options.Scrapes; i++)
                {
                    text = await ScrapeAsync(node, ct);
                }
            });
            var idleRate = idle.Cpu / idle.Wall;
            var perScrape = TimeSpan.FromTicks((long)((scraping.Cpu - idleRate * scraping.Wall).Ticks / (double)options.Scrapes));
            var series = text.Split('\n').Count(line => line.Length > 0 && line[0] != '#');
            if (ReadyVms(text) < options.Vms)
            {
                throw new InvalidOperationException($"the last scrape counts {ReadyVms(text)} VMs Ready of {options.Vms}: the ledger's gauges went missing");
            }

            Print(options, hosts, ReadyVms(text), idleRate, perScrape, scraping.Wall / options.Scrapes, series, System.Text.Encoding.UTF8.GetByteCount(text));
            return 0;
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or HttpRequestException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 1;
        }
        finally
        {
            if (Environment.GetEnvironmentVariable("ORCHESTRATOR_BENCH_KEEP") is null)
            {
                BenchHttp.RemoveDataDir(dataDir);
            }
        }
    }

    /// <summary>Creates the VMs 32 at a time, printing the rate every 1,000 (a slowdown with the VM count shows here).</summary>
    private static async Task CreateVmsAsync(LocalNode node, int vms, CancellationToken ct)
    {
        // A create waits for its journal write; the node's client gives up after 10 s, which a slow create must not end.
        using var http = new HttpClient { BaseAddress = node.Http.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };
        http.DefaultRequestHeaders.Authorization = node.Http.DefaultRequestHeaders.Authorization;
        var next = 0;
        long slowestTicks = 0;
        var clock = Stopwatch.StartNew();
        var lap = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, 32).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) is var n && n <= vms)
            {
                var started = Stopwatch.GetTimestamp();
                using var response = await CreateAsync(http, n, ct);
                InterlockedMax(ref slowestTicks, Stopwatch.GetElapsedTime(started).Ticks);
                if ((int)response.StatusCode != 201)
                {
                    throw new InvalidOperationException($"create m-{n}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}");
                }

                if (n % 1000 == 0)
                {
                    Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {n} created, {clock.Elapsed.TotalSeconds:F0} s in, {1000 / lap.Elapsed.TotalSeconds:F0}/s for the last 1,000, slowest {TimeSpan.FromTicks(Interlocked.Exchange(ref slowestTicks, 0)).TotalMilliseconds:F0} ms"));
                    lap.Restart();
                }
            }
        }, ct)).ToList();
        await Task.WhenAll(workers);
    }

    /// <summary>
    /// One create, tried again while the scheduler does not answer in time (503): its Idempotency-Key makes a retry get
    /// the VM the first try made, if it made one.
    /// </summary>
    private static async Task<HttpResponseMessage> CreateAsync(HttpClient http, int n, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/vms")
            {
                Content = BenchHttp.JsonContent($$"""{"name":"m-{{n}}","vcpus":1,"memoryMiB":128,"image":"demo"}"""),
            };
            request.Headers.Add("Idempotency-Key", $"bench-metrics-{n}");
            var response = await http.SendAsync(request, ct);
            if ((int)response.StatusCode != 503 || attempt == 10)
            {
                return response;
            }

            response.Dispose();
            await Task.Delay(TimeSpan.FromSeconds(1), ct);
        }
    }

    private static void InterlockedMax(ref long target, long value)
    {
        for (var seen = Volatile.Read(ref target); value > seen; seen = Volatile.Read(ref target))
        {
            if (Interlocked.CompareExchange(ref target, value, seen) == seen)
            {
                return;
            }
        }
    }

    private static async Task<string> ScrapeAsync(LocalNode node, CancellationToken ct)
    {
        using var response = await node.Http.GetAsync("metrics", ct);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsStringAsync(ct);
    }

    /// <summary>The sum of orchestrator_vms{state="Ready"} over tenants.</summary>
    private static long ReadyVms(string text) => text.Split('\n')
        .Where(line => line.StartsWith("orchestrator_vms{", StringComparison.Ordinal) && line.Contains("state=\"Ready\"", StringComparison.Ordinal))
        .Sum(line => long.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture));

    private static async Task<(TimeSpan Cpu, TimeSpan Wall)> CpuOverAsync(Process process, Func<Task> work)
    {
        process.Refresh();
        var cpu = process.TotalProcessorTime;
        var wall = Stopwatch.StartNew();
        await work();
        process.Refresh();
        return (process.TotalProcessorTime - cpu, wall.Elapsed);
    }

    private static void Print(MetricsBenchOptions options, int hosts, long ready, double idleRate, TimeSpan perScrape, TimeSpan wallPerScrape,
        int series, int bytes)
    {
        if (options.Output == OutputFormat.Json)
        {
            Console.WriteLine(new JsonObject
            {
                ["vms_ready"] = ready,
                ["hosts"] = hosts,
                ["scrapes"] = options.Scrapes,
                ["idle_cpu_cores"] = Math.Round(idleRate, 4),
                ["cpu_ms_per_scrape"] = Math.Round(perScrape.TotalMilliseconds, 2),
                ["wall_ms_per_scrape"] = Math.Round(wallPerScrape.TotalMilliseconds, 2),
                ["series"] = series,
                ["bytes"] = bytes,
            }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            return;
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{ready} VMs Ready on {hosts} simulated hosts; idle: {idleRate:F3} cores"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"GET /metrics x{options.Scrapes}: {perScrape.TotalMilliseconds:F1} ms CPU per scrape above idle, {wallPerScrape.TotalMilliseconds:F1} ms wall; {series} series, {bytes} bytes"));
    }
}
