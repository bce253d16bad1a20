using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Orchestrator.Cli;
using Orchestrator.Domain.Placement;
using Orchestrator.Simulation.Traces;

namespace Orchestrator.Simulation;

/// <summary><c>orchestrator simulate</c>: replay a trace with the scheduler's placement and with first fit; compare.</summary>
public static class SimulateCommand
{
    public const int AzureV1HostCpus = 48;
    public const long AzureV1HostMemoryGib = 384;

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public sealed record Figures(
        string Policy, int Requests, int Placed, int Rejected, double DecisionsPerS, double LatencyP50Ms, double LatencyP99Ms,
        double LatencyMaxMs, double AvgActiveHosts, double LowerBoundHosts, double RatioToLowerBound, int PeakHosts, double WallS);

    public sealed record Report(
        string Trace, string Format, int Hosts, int HostCpus, long? HostMemoryGib, string TimeUnit, long Start, long End,
        int Requests, int Placed, int Rejected, double DecisionsPerS, double LatencyP50Ms, double LatencyP99Ms, double LatencyMaxMs,
        double AvgActiveHosts, double LowerBoundHosts, double RatioToLowerBound, int PeakHosts, int PeakLowerBound, string Policy,
        Figures Baseline, double AvgHostsOursOverBaseline, double DecisionsPerSOursOverBaseline, int CapacityViolations,
        DurableFigures? Durable);

    public sealed record DurableFigures(
        int Requests, int Placed, int Rejected, double RequestsPerS, double LatencyP50Ms, double LatencyP99Ms, double LatencyMaxMs,
        bool SamePlacementsAsInMemory);

    public static async Task<int> RunAsync(SimulateOptions o, CancellationToken ct)
    {
        Trace trace;
        try
        {
            trace = TraceReader.Read(o.Trace);
        }
        catch (Exception e) when (e is FormatException or IOException)
        {
            await Console.Error.WriteLineAsync("error: " + e.Message);
            return 1;
        }

        var strategy = ParseStrategy(o.Policy);
        var (cpus, memoryMiB, memoryGib) = HostShape(trace, o.HostSize);
        var bound = Simulator.ComputeLowerBound(trace, cpus, memoryMiB);
        var hosts = o.Hosts ?? DefaultHosts(bound);
        var settings = new SimulationSettings(hosts, cpus, memoryMiB, strategy, RecordPlacements: o.Durable);
        if (o.Output == OutputFormat.Table)
        {
            Console.WriteLine($"trace      {trace.Path} ({FormatName(trace.Format)}, {trace.Vms.Count} VMs, times in {trace.TimeUnit})");
            Console.WriteLine($"hosts      {hosts} simulated hosts (in memory) of {cpus} CPU{(memoryGib is { } g ? $" / {g} GiB" : "")}" +
                              $"{(o.Hosts is null ? " — enough that nothing is rejected" : "")}");
            Console.WriteLine($"policy     {o.Policy} ({(strategy == PlacementStrategy.Pack ? "best fit: the fullest host that fits" : "the emptiest host")}), " +
                              "through CapacityIndex, the scheduler's own placement; baseline: plain first fit");
        }

        var ours = Simulator.RunOurs(trace, settings);
        var baseline = Simulator.RunFirstFit(trace, settings);
        DurableFigures? durable = null;
        if (o.Durable)
        {
            durable = await DurableReplay.RunAsync(trace, settings, ours, ct);
        }

        var report = MakeReport(trace, settings, memoryGib, bound, ours, baseline, o.Policy, durable);
        if (o.Output == OutputFormat.Json)
        {
            Console.WriteLine(JsonSerializer.Serialize(report, Json));
        }
        else
        {
            PrintTable(report);
        }

        if (o.Plot is { } plot)
        {
            var unit = trace.Format == TraceFormat.Tbpp ? 60.0 * 24 : 3600.0 * 24; // days
            await File.WriteAllTextAsync(plot, SvgPlot.Render(
                $"{Path.GetFileName(trace.Path)}: active hosts over time ({hosts} simulated hosts of {cpus} CPU{(memoryGib is { } gib ? $"/{gib} GiB" : "")})",
                "days",
                trace.Start / unit, trace.End / unit,
                [
                    new SvgPlot.Line($"ours ({o.Policy}): {report.AvgActiveHosts:0.00} avg", "#1f77b4", ours.Series),
                    new SvgPlot.Line($"first fit: {report.Baseline.AvgActiveHosts:0.00} avg", "#d62728", baseline.Series),
                    new SvgPlot.Line($"lower bound: {report.LowerBoundHosts:0.00} avg", "#2ca02c", bound.Series, Dashed: true),
                ]), ct);
            if (o.Output == OutputFormat.Table)
            {
                Console.WriteLine($"plot       {plot}");
            }
        }

        return ours.CapacityViolations == 0 ? 0 : 1;
    }

    public static PlacementStrategy ParseStrategy(string policy) => policy switch
    {
        "spread" => PlacementStrategy.Spread,
        _ => PlacementStrategy.Pack,
    };

    /// <summary>tbpp: its capacity, memory not a dimension; Azure V1: 48 vCPUs and 384 GiB unless told.</summary>
    public static (int Cpus, long MemoryMiB, long? MemoryGib) HostShape(Trace trace, string? hostSize)
    {
        int cpus;
        long gib;
        if (hostSize is not null && TryParseHostSize(hostSize, out cpus, out gib))
        {
            gib = gib > 0 ? gib : (trace.HasMemory ? AzureV1HostMemoryGib : 0);
        }
        else
        {
            cpus = trace.HostCpus ?? AzureV1HostCpus;
            gib = trace.HasMemory ? AzureV1HostMemoryGib : 0;
        }

        return trace.HasMemory ? (cpus, gib * 1024, gib) : (cpus, 1, null);
    }

    /// <summary>Enough that no sane policy runs out: twice the peak lower bound and some, never more than the peak of live VMs.</summary>
    public static int DefaultHosts(LowerBound bound) => Math.Max(1, Math.Min(bound.PeakLiveVms, 2 * bound.Peak + 16));

    /// <summary>CPU or CPU,MEMORY_GIB.</summary>
    public static bool TryParseHostSize(string text, out int cpus, out long memoryGib)
    {
        memoryGib = 0;
        cpus = 0;
        var parts = text.Split(',');
        var ok = parts.Length is 1 or 2
                 && int.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out cpus)
                 && cpus > 0;
        if (!ok)
        {
            cpus = 0;
            return false;
        }

        return parts.Length == 1
               || (long.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out memoryGib)
                   && memoryGib > 0);
    }

    private static Report MakeReport(
        Trace trace, SimulationSettings s, long? memoryGib, LowerBound bound, ReplayResult ours, ReplayResult baseline, string policy,
        DurableFigures? durable)
    {
        Figures F(ReplayResult r, string name) => new(
            name, r.Requests, r.Placed, r.Rejected, Round(r.DecisionsPerS, 0), Round(r.LatencyP50Ms, 5), Round(r.LatencyP99Ms, 5),
            Round(r.LatencyMaxMs, 4), Round(r.AvgActiveHosts, 3), Round(bound.Average, 3),
            Round(bound.Average > 0 ? r.AvgActiveHosts / bound.Average : 0, 4), r.PeakHosts, Round(r.WallS, 3));
        var o = F(ours, policy);
        var b = F(baseline, "first-fit");
        return new Report(
            trace.Path, FormatName(trace.Format), s.Hosts, s.HostCpus, memoryGib, trace.TimeUnit, trace.Start, trace.End,
            o.Requests, o.Placed, o.Rejected, o.DecisionsPerS, o.LatencyP50Ms, o.LatencyP99Ms, o.LatencyMaxMs, o.AvgActiveHosts,
            o.LowerBoundHosts, o.RatioToLowerBound, o.PeakHosts, bound.Peak, policy, b,
            Round(baseline.AvgActiveHosts > 0 ? ours.AvgActiveHosts / baseline.AvgActiveHosts : 0, 4),
            Round(baseline.DecisionsPerS > 0 ? ours.DecisionsPerS / baseline.DecisionsPerS : 0, 3),
            ours.CapacityViolations, durable);
    }

    private static void PrintTable(Report r)
    {
        var rows = new List<(string, string, string, string)>
        {
            ("requests", I(r.Requests), I(r.Baseline.Requests), ""),
            ("placed", I(r.Placed), I(r.Baseline.Placed), ""),
            ("rejected", I(r.Rejected), I(r.Baseline.Rejected), ""),
            ("decisions/s", I((long)r.DecisionsPerS), I((long)r.Baseline.DecisionsPerS), D(r.DecisionsPerSOursOverBaseline, "0.00")),
            ("latency p50 ms", D(r.LatencyP50Ms, "0.0000"), D(r.Baseline.LatencyP50Ms, "0.0000"), ""),
            ("latency p99 ms", D(r.LatencyP99Ms, "0.0000"), D(r.Baseline.LatencyP99Ms, "0.0000"), ""),
            ("latency max ms", D(r.LatencyMaxMs, "0.000"), D(r.Baseline.LatencyMaxMs, "0.000"), ""),
            ("avg active hosts", D(r.AvgActiveHosts, "0.000"), D(r.Baseline.AvgActiveHosts, "0.000"), D(r.AvgHostsOursOverBaseline, "0.000")),
            ("lower bound (avg)", D(r.LowerBoundHosts, "0.000"), D(r.Baseline.LowerBoundHosts, "0.000"), ""),
            ("ratio to lower bound", D(r.RatioToLowerBound, "0.000"), D(r.Baseline.RatioToLowerBound, "0.000"), ""),
            ("peak hosts", I(r.PeakHosts), I(r.Baseline.PeakHosts), $"(peak lower bound {r.PeakLowerBound})"),
        };
        Console.WriteLine();
        Console.WriteLine($"{"",-22}{"ours (" + r.Policy + ")",16}{"first fit",16}   ours/baseline");
        foreach (var (name, ours, baseline, ratio) in rows)
        {
            Console.WriteLine($"{name,-22}{ours,16}{baseline,16}   {ratio}");
        }

        if (r.Durable is { } d)
        {
            Console.WriteLine();
            Console.WriteLine($"durable (scheduler actor, SQLite): {d.Placed} placed, {d.Rejected} rejected, {d.RequestsPerS:0} requests/s (one at a time), " +
                              $"latency p50 {d.LatencyP50Ms:0.000} ms, p99 {d.LatencyP99Ms:0.000} ms, max {d.LatencyMaxMs:0.000} ms; " +
                              $"same placements as in memory: {(d.SamePlacementsAsInMemory ? "yes" : "NO")}");
        }

        if (r.CapacityViolations > 0)
        {
            Console.WriteLine($"CAPACITY EXCEEDED {r.CapacityViolations} times");
        }
    }

    private static string FormatName(TraceFormat f) => f == TraceFormat.Tbpp ? "azure2020 tbpp" : "azure2017 v1";
    private static string I(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
    private static string D(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);
    private static double Round(double v, int digits) => Math.Round(v, digits);
}
