using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.Actors.Hosts;
using Orchestrator.Cli;
using Orchestrator.Node;
using Orchestrator.Domain;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Tools.Bench;

/// <summary>
/// `bench failover`: starts a cluster of node processes on this machine, spreads demo VMs over it, kills one host for
/// real (node and fence guard; its guests die with the guard) and times until every affected guest printed its ready
/// banner on a survivor, sampling every host's QEMU processes to count VMs that ever ran twice.
/// </summary>
public static class FailoverBenchmark
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);

    public static async Task<int> RunAsync(FailoverBenchOptions options, CancellationToken ct)
    {
        var results = new List<FailoverRun>();
        for (var run = 1; run <= options.Runs; run++)
        {
            Console.Error.WriteLine($"run {run}/{options.Runs}: {options.Hosts} hosts, {options.Vms} VMs");
            try
            {
                results.Add(await RunOnceAsync(options, ct));
            }
            catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or HttpRequestException)
            {
                Console.Error.WriteLine($"error: run {run}: {ex.Message}");
                return 1;
            }

            Console.Error.WriteLine($"  kill → all ready {results[^1].KillToAllReadyS:F2} s, {results[^1].VmsAffected} affected, " +
                                    $"{results[^1].VmsLost} lost, {results[^1].DoubleRuns} double runs");
        }

        var median = results.OrderBy(r => r.KillToAllReadyS).ElementAt(results.Count / 2);
        if (options.Output == OutputFormat.Json)
        {
            var json = JsonSerializer.SerializeToNode(median, Json)!.AsObject();
            json["runs"] = JsonSerializer.SerializeToNode(results, Json);
            json["hosts"] = options.Hosts;
            json["vms"] = options.Vms;
            Console.WriteLine(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        else
        {
            Console.WriteLine($"failover: {options.Hosts} hosts, {options.Vms} VMs, {results.Count} run(s), median run:");
            Console.WriteLine($"  host killed at                 0.00 s ({median.Victim}{(options.KillScheduler ? ", held the scheduler" : "")})");
            Console.WriteLine($"  seen unreachable            {Seconds(median.DetectedUnreachableS)}");
            Console.WriteLine($"  downed (ledger: Down)       {Seconds(median.DownedS)}");
            Console.WriteLine($"  all re-placed               {Seconds(median.ReplacedS)}");
            Console.WriteLine($"  all QEMU started            {Seconds(median.QemuStartedS)}");
            Console.WriteLine($"  all guests ready            {Seconds(median.KillToAllReadyS)}");
            Console.WriteLine($"  VMs affected {median.VmsAffected}, lost {median.VmsLost}, ran twice {median.DoubleRuns}");
            Console.WriteLine($"  kill → all ready per run: {string.Join(", ", results.Select(r => r.KillToAllReadyS.ToString("F2", CultureInfo.InvariantCulture)))} s");
        }

        return results.Any(r => r.VmsLost > 0 || r.DoubleRuns > 0) ? 1 : 0;
    }

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static string Seconds(double? s) => s is { } v ? $"{v,6:F2} s" : "     - ";

    /// <summary>The killed hosts could not remove their (now empty) cgroups; the benchmark leaves the machine as it found it.</summary>
    private static void RemoveHostCgroups(int hosts)
    {
        var layout = CgroupLayout.Detect();
        if (layout.Version == CgroupVersion.None)
        {
            return;
        }

        for (var i = 1; i <= hosts; i++)
        {
            try
            {
                new VmCgroups(layout, HostCgroups.Scope(new HostId($"h{i}"))).RemoveAll(TimeSpan.FromSeconds(10));
            }
            catch (HypervisorException ex)
            {
                Console.Error.WriteLine($"warning: {ex.Message}");
            }
        }
    }

    private static async Task<FailoverRun> RunOnceAsync(FailoverBenchOptions options, CancellationToken ct)
    {
        var root = Directory.CreateTempSubdirectory("orfb").FullName;
        var ports = Enumerable.Range(0, options.Hosts).Select(_ => Checkout.FreePort()).ToArray();
        var nodes = new List<LocalNode>();
        try
        {
            var config = options.ConfigFile ?? Path.Combine(Checkout.Root(), "cluster", "cluster.conf");
            for (var i = 0; i < options.Hosts; i++)
            {
                // This machine's cores are shared by every node; each host offers room for all the VMs, so the survivors
                // can always take a lost host's share (placement capacity, not a claim about real CPU).
                var args = new List<string> { "--config", config, "--set", $"orchestrator.host-id=h{i + 1}",
                    "--set", $"orchestrator.host.cpus={Math.Max(2, options.Vms)}",
                    "--set", $"orchestrator.cluster.port={ports[i]}",
                    "--set", $"orchestrator.persistence.sqlite-file=\"{root}/journal.db\"" };
                args.AddRange(ports.SelectMany(p => new[] { "--seed", $"akka.tcp://orchestrator@127.0.0.1:{p}" }));
                if (i == 0)
                {
                    args.Add("--bootstrap");
                }

                nodes.Add(await LocalNode.StartAsync(Path.Combine(root, $"h{i + 1}"), args, ct));
            }

            var api = nodes[0];
            await BenchHttp.Until(async () => (await BenchHttp.GetArray(api, "v1/hosts"))?.Count(h => (string?)h!["state"] == "Up") == options.Hosts,
                TimeSpan.FromSeconds(90), "every host Up", ct);
            for (var i = 0; i < options.Vms; i++)
            {
                var response = await api.Http.PostAsync("v1/vms", BenchHttp.JsonContent($$"""{"name":"fb{{i}}","vcpus":1,"memoryMiB":256,"image":"demo","restartPolicy":"always"}"""), ct);
                response.EnsureSuccessStatusCode();
            }

            await BenchHttp.Until(async () => (await BenchHttp.GetArray(api, "v1/vms"))?.Count(v => (string?)v!["state"] == "Ready") == options.Vms,
                TimeSpan.FromMinutes(10), "every VM Ready", ct, async () => string.Join("; ",
                    (await BenchHttp.GetArray(api, "v1/vms") ?? []).Where(v => (string?)v!["state"] != "Ready")
                    .Select(v => $"{v!["name"]} {v["state"]} {v["reason"]}")));

            var victimIndex = options.KillScheduler ? 0 : options.Hosts - 1;
            var victim = $"h{victimIndex + 1}";
            var observer = nodes[victimIndex == 0 ? 1 : 0];
            var before = (await BenchHttp.GetArray(observer, "v1/vms"))!.Select(v => v!.AsObject()).ToList();
            var affected = before.Where(v => (string?)v["host"] == victim).ToDictionary(v => (string)v["id"]!, v => (long)v["epoch"]!);
            await using var sampler = new DoubleRunSampler(nodes.Select(n => n.RunDir).ToList());

            var clock = Stopwatch.StartNew();
            nodes[victimIndex].KillHost();
            double? unreachable = null, downed = null, replaced = null, started = null, ready = null;
            var deadline = TimeSpan.FromMinutes(5);
            while (ready is null && clock.Elapsed < deadline)
            {
                ct.ThrowIfCancellationRequested();
                var hosts = await BenchHttp.GetArray(observer, "v1/hosts");
                var victimState = (string?)hosts?.FirstOrDefault(h => (string?)h!["id"] == victim)?["state"];
                unreachable ??= victimState is "Unreachable" or "Down" ? clock.Elapsed.TotalSeconds : null;
                downed ??= victimState == "Down" ? clock.Elapsed.TotalSeconds : null;
                var vms = (await BenchHttp.GetArray(observer, "v1/vms"))?.Select(v => v!.AsObject()).Where(v => affected.ContainsKey((string)v["id"]!)).ToList();
                if (vms is { Count: > 0 } && vms.Count == affected.Count)
                {
                    bool Moved(JsonObject v) => (string?)v["host"] != victim && (long)v["epoch"]! > affected[(string)v["id"]!];
                    replaced ??= vms.All(Moved) ? clock.Elapsed.TotalSeconds : null;
                    started ??= vms.All(v => Moved(v) && (string?)v["state"] is "Running" or "Ready") ? clock.Elapsed.TotalSeconds : null;
                    ready ??= vms.All(v => Moved(v) && (string?)v["state"] == "Ready") ? clock.Elapsed.TotalSeconds : null;
                }

                await Task.Delay(Poll, ct);
            }

            var after = (await BenchHttp.GetArray(observer, "v1/vms"))?.Select(v => v!.AsObject()).ToList() ?? [];
            var lost = before.Count(b => !after.Any(a => (string?)a["id"] == (string?)b["id"] && (string?)a["state"] == "Ready"));
            return new FailoverRun(victim, ready ?? double.NaN, affected.Count, lost, sampler.DoubleRuns, unreachable, downed, replaced,
                started);
        }
        finally
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }

            RemoveHostCgroups(options.Hosts);
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}

/// <summary>One measurement; seconds from the kill.</summary>
public sealed record FailoverRun(
    string Victim,
    double KillToAllReadyS,
    int VmsAffected,
    int VmsLost,
    int DoubleRuns,
    double? DetectedUnreachableS,
    double? DownedS,
    double? ReplacedS,
    double? QemuStartedS);

/// <summary>Samples every host's QEMU processes in the background; counts samples in which a VM had two.</summary>
public sealed class DoubleRunSampler : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Task _loop;

    public DoubleRunSampler(IReadOnlyList<string> runDirs)
    {
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                var sampleBegan = _clock.Elapsed;
                // A frozen process exists but does not run: a whole host frozen while its VMs start elsewhere is no double run.
                var byVm = runDirs.SelectMany(dir => ProcessTable.QemuUnder(dir).Select(q => (Vm: q.Key, Pid: q.Value, Dir: dir)))
                    .Where(q => !ProcessTable.IsFrozen(q.Pid))
                    .GroupBy(q => q.Vm).ToList();
                var max = byVm.Select(g => g.Count()).DefaultIfEmpty(0).Max();
                Samples++;
                MaxPerVm = Math.Max(MaxPerVm, max);
                if (max > 1)
                {
                    lock (_doubleRunSamples)
                    {
                        if (_doubleRunSamples.Count < MaxKeptSamples)
                        {
                            _doubleRunSamples.Add((sampleBegan, string.Join("; ", byVm.Where(g => g.Count() > 1)
                                .Select(g => $"vm {g.Key} in {string.Join(", ", g.Select(q => $"pid {q.Pid} under {q.Dir}"))}"))));
                        }
                    }

                    DoubleRuns++;
                    LastDoubleRunAt = sampleBegan;
                    FirstDoubleRunAt ??= _clock.Elapsed;
                    FirstDoubleRun ??= $"at {_clock.Elapsed.TotalSeconds:F2} s: " + string.Join("; ", byVm.Where(g => g.Count() > 1)
                        .Select(g => $"vm {g.Key} in {string.Join(", ", g.Select(q => $"pid {q.Pid} under {q.Dir}"))}"));
                }

                try
                {
                    await Task.Delay(50, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        });
    }

    /// <summary>The double-run samples kept for a checker (the first ones, when there are very many).</summary>
    private const int MaxKeptSamples = 10_000;

    private readonly List<(TimeSpan At, string What)> _doubleRunSamples = [];

    public int Samples { get; private set; }
    public int DoubleRuns { get; private set; }

    /// <summary>Each sample that saw a VM run twice: when it began (the sampler's clock) and the processes it saw.</summary>
    public IReadOnlyList<(TimeSpan At, string What)> DoubleRunSamples
    {
        get
        {
            lock (_doubleRunSamples)
            {
                return _doubleRunSamples.ToList();
            }
        }
    }
    public int MaxPerVm { get; private set; }

    /// <summary>When the first double run was seen (seconds since the sampler started) and which processes it saw.</summary>
    public string? FirstDoubleRun { get; private set; }

    /// <summary>When the first sample that saw a VM running twice ended (on the sampler's clock, <see cref="Now"/>).</summary>
    public TimeSpan? FirstDoubleRunAt { get; private set; }

    /// <summary>When the last sample that saw a VM running twice began: none ran twice after this.</summary>
    public TimeSpan? LastDoubleRunAt { get; private set; }

    /// <summary>The sampler's clock: since it started.</summary>
    public TimeSpan Now => _clock.Elapsed;

    /// <summary>What a test prints when it asserts no double run.</summary>
    public string Describe() => $"{Samples} samples, {DoubleRuns} with a VM running twice, first {FirstDoubleRun ?? "never"}";

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
    }
}
