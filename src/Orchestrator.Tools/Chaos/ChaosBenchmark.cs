using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Orchestrator.Cli;
using Orchestrator.Tools.Bench;

namespace Orchestrator.Tools.Chaos;

/// <summary>Options of <c>orchestrator bench chaos</c>.</summary>
/// <param name="Minutes">how long the workload and the nemesis run; then everything is healed and checked.</param>
/// <param name="ConvergeSeconds">the bound on every VM reaching its desired state after the last heal.</param>
/// <param name="Namespaces">the hosts' network namespaces' prefix and /24 (cluster/netns.sh): another pair keeps runs apart.</param>
public sealed record ChaosBenchOptions(int Hosts, double Minutes, int Seed, int Clients, IReadOnlySet<FaultKind> Faults, int ConvergeSeconds, OutputFormat Output,
    (string Prefix, string Subnet)? Namespaces = null);

/// <summary>What a chaos run did and found: the report it prints, and what the suite's short run asserts on.</summary>
public sealed record ChaosReport(
    int Seed,
    int Hosts,
    double RunS,
    IReadOnlyDictionary<string, int> FaultsByKind,
    IReadOnlyList<InjectedFault> Faults,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, int>> Operations,
    int EventsLive,
    int EventsReplayed,
    int StreamReconnects,
    int SamplerSamples,
    int ThawOverlapSamples,
    double? MaxThawOverlapMs,
    double? ConvergedAfterLastHealS,
    int FinalVms,
    IReadOnlyList<string> StuckAfterHeal,
    IReadOnlyList<ChaosViolation> Violations);

/// <summary>
/// <c>bench chaos</c>: a multi-host cluster on PostgreSQL (<see cref="ChaosCluster"/>), a client workload
/// (<see cref="ChaosWorkload"/>) and a nemesis (<see cref="Nemesis"/>) for the given minutes; then every fault healed,
/// every host a member, every VM given time to converge, and the history checked (<see cref="HistoryChecker"/>).
/// </summary>
public static class ChaosBenchmark
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower) },
    };

    public static async Task<int> RunAsync(ChaosBenchOptions options, CancellationToken ct)
    {
        try
        {
            var report = await RunOnceAsync(options, Console.Error, ct);
            Print(report, options.Output, Console.Out);
            return report.Violations.Count == 0 ? 0 : 1;
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 2;
        }
    }

    public static async Task<ChaosReport> RunOnceAsync(ChaosBenchOptions options, TextWriter log, CancellationToken ct)
    {
        var runFor = TimeSpan.FromMinutes(options.Minutes);
        var plan = NemesisPlan.Create(options.Seed, options.Hosts, runFor.TotalSeconds, options.Faults);
        await using var cluster = await ChaosCluster.StartAsync(options.Hosts, options.Namespaces ?? ("orcch", "10.237.0"), log, ct);
        var clock = Stopwatch.StartNew();
        var history = new ChaosHistory();
        var nemesis = new Nemesis(cluster, clock, log);
        var recorder = new EventRecorder(cluster, options.Seed);
        var sampler = new DoubleRunSampler(cluster.RunDirs);
        var samplerStartedAtS = clock.Elapsed.TotalSeconds;
        using var stopClients = new CancellationTokenSource();
        using var stopRecorder = new CancellationTokenSource();
        var workload = new ChaosWorkload(cluster, history, clock, options.Seed).RunAsync(options.Clients, stopClients.Token);
        var recording = recorder.RunAsync(stopRecorder.Token);

        await nemesis.RunAsync(plan, runFor, ct);
        await stopClients.CancelAsync();
        await workload;
        log.WriteLine($"chaos: {clock.Elapsed.TotalSeconds,7:F1} s  workload stopped after {history.Operations.Count} operations; waiting for convergence");

        var converged = await ConvergeAsync(cluster, TimeSpan.FromSeconds(options.ConvergeSeconds), ct);
        var convergedAfterS = converged.Ok ? clock.Elapsed.TotalSeconds - Math.Max(nemesis.LastHealedAtS, LastOperationAtS(history)) : (double?)null;
        await Task.Delay(TimeSpan.FromSeconds(2), ct); // the last events reach the live stream
        await stopRecorder.CancelAsync();
        await recording;
        await sampler.DisposeAsync();
        var replayed = await recorder.ReplayAsync(ct);
        var logs = Path.Combine(Path.GetTempPath(), $"orchestrator-chaos-{options.Seed}");
        cluster.KeepLogs(logs);
        log.WriteLine($"chaos: node and guard logs in {logs}");

        var record = new ChaosRecord(history.Operations, converged.Vms, recorder.Events, replayed, nemesis.Faults,
            sampler.DoubleRunSamples.Select(d => (samplerStartedAtS + d.At.TotalSeconds, d.What)).ToList());
        var overlaps = HistoryChecker.ThawOverlaps(record);
        return new ChaosReport(
            options.Seed,
            options.Hosts,
            Math.Round(clock.Elapsed.TotalSeconds, 1),
            nemesis.Faults.GroupBy(f => Kebab(f.Kind)).ToDictionary(g => g.Key, g => g.Count()),
            nemesis.Faults,
            history.Operations.GroupBy(o => Kebab(o.Kind)).ToDictionary(g => g.Key,
                g => (IReadOnlyDictionary<string, int>)g.GroupBy(o => Kebab(o.Outcome)).ToDictionary(o => o.Key, o => o.Count())),
            record.Live.Count,
            replayed.Count,
            recorder.Reconnects,
            sampler.Samples,
            overlaps.Count,
            OverlapMs(record, overlaps),
            convergedAfterS is { } s ? Math.Round(s, 1) : null,
            converged.Vms.Count,
            nemesis.StuckAfterHeal,
            HistoryChecker.Check(record));
    }

    private static double LastOperationAtS(ChaosHistory history) => history.Operations.Select(o => o.CompletedAtS).DefaultIfEmpty(0).Max();

    /// <summary>The longest a thawed host's stale guests were seen beside their successors (from the thaw to the last such sample).</summary>
    private static double? OverlapMs(ChaosRecord record, IReadOnlyList<(double AtS, string What)> overlaps) =>
        overlaps.Count == 0
            ? null
            : Math.Round(record.Faults.Where(f => f.Kind == FaultKind.FreezeHost)
                .Select(f => overlaps.Where(o => o.AtS >= f.HealedAtS && o.AtS <= f.HealedAtS + HistoryChecker.ThawOverlapGraceS)
                    .Select(o => (o.AtS - f.HealedAtS) * 1000 + 50).DefaultIfEmpty(0).Max())
                .Max(), 0);

    /// <summary>
    /// Waits until every VM is in its desired state (Ready when it should run, Stopped when stopped) as a host sees it,
    /// or the bound passed; returns the last list it read either way.
    /// </summary>
    private static async Task<(bool Ok, IReadOnlyList<FinalVm> Vms)> ConvergeAsync(ChaosCluster cluster, TimeSpan bound, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        IReadOnlyList<FinalVm>? last = null;
        while (true)
        {
            for (var host = 1; host <= cluster.Hosts; host++)
            {
                if (await ReadVmsAsync(cluster, host) is { } vms)
                {
                    last = vms;
                    break;
                }
            }

            if (last is not null && last.All(v => v.State == (v.DesiredState == "Stopped" ? "Stopped" : "Ready")))
            {
                return (true, last);
            }

            if (clock.Elapsed > bound)
            {
                return (false, last ?? throw new TimeoutException($"no host answered GET /v1/vms within {bound.TotalSeconds} s after the run"));
            }

            await Task.Delay(1000, ct);
        }
    }

    private static async Task<IReadOnlyList<FinalVm>?> ReadVmsAsync(ChaosCluster cluster, int host)
    {
        if (cluster.Client(host) is not { } http)
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(await http.GetStringAsync("v1/vms"))!.AsArray().Select(v => new FinalVm(
                (string)v!["id"]!, (string)v["name"]!, (string)v["desiredState"]!, (string)v["state"]!, (string?)v["reason"],
                v["labels"]?.AsObject().ToDictionary(l => l.Key, l => (string)l.Value!) ?? [])).ToList();
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or JsonException)
        {
            return null;
        }
    }

    private static string Kebab<T>(T value) where T : Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    public static void Print(ChaosReport report, OutputFormat output, TextWriter to)
    {
        if (output == OutputFormat.Json)
        {
            to.WriteLine(JsonSerializer.Serialize(report, Json));
            return;
        }

        to.WriteLine($"chaos: {report.Hosts} hosts, seed {report.Seed}, {report.RunS.ToString("F0", CultureInfo.InvariantCulture)} s");
        to.WriteLine($"  faults      {string.Join(", ", report.FaultsByKind.Select(f => $"{f.Key} {f.Value}"))}");
        foreach (var (kind, outcomes) in report.Operations)
        {
            to.WriteLine($"  {kind,-11} {string.Join(", ", outcomes.Select(o => $"{o.Key} {o.Value}"))}");
        }

        to.WriteLine($"  events      {report.EventsLive} live over {report.StreamReconnects + 1} connections, {report.EventsReplayed} in the journal");
        to.WriteLine($"  sampler     {report.SamplerSamples} samples; thaw overlap {(report.MaxThawOverlapMs is { } ms ? $"≤ {ms} ms ({report.ThawOverlapSamples} samples)" : "none seen")}");
        to.WriteLine($"  converged   {(report.ConvergedAfterLastHealS is { } s ? $"{s} s after the last heal or operation" : "NOT within the bound")}, {report.FinalVms} VMs");
        to.WriteLine($"  stuck       {report.StuckAfterHeal.Count} host(s) not Up again by themselves after a heal");
        foreach (var stuck in report.StuckAfterHeal)
        {
            to.WriteLine($"    {stuck}");
        }

        to.WriteLine($"  violations  {report.Violations.Count}");
        foreach (var violation in report.Violations.Take(50))
        {
            to.WriteLine($"    {violation.Kind}: {violation.Evidence}");
        }
    }
}
