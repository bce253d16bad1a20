using Orchestrator.Domain.Placement;
using Orchestrator.Simulation.Traces;
using Stopwatch = System.Diagnostics.Stopwatch;

namespace Orchestrator.Simulation;

/// <summary>What to replay a trace on.</summary>
/// <param name="Hosts">How many simulated hosts exist (all Up, empty at the start).</param>
/// <param name="RecordPlacements">Keep each VM's host (for tests; memory grows with the trace).</param>
public sealed record SimulationSettings(
    int Hosts, int HostCpus, long HostMemoryMiB, PlacementStrategy Strategy, bool RecordPlacements = false, int PlotPoints = 600);

/// <summary>The figures of one replay.</summary>
public sealed record ReplayResult(
    string Policy,
    int Requests,
    int Placed,
    int Rejected,
    double DecisionsPerS,
    double LatencyP50Ms,
    double LatencyP99Ms,
    double LatencyMaxMs,
    double AvgActiveHosts,
    int PeakHosts,
    double WallS,
    int CapacityViolations,
    IReadOnlyList<double> Series,
    IReadOnlyList<int>? Placements);

/// <summary>The lower bound on hosts over the replay window: at each instant, the live demand over a host's size.</summary>
public sealed record LowerBound(double Average, int Peak, int PeakLiveVms, IReadOnlyList<double> Series);

/// <summary>
/// Replays a trace in event-time order (at equal times departures first, so their room is free for the arrivals),
/// asking a placer for every arrival, and integrates the number of active hosts (hosts with a VM) over the window.
/// </summary>
public static class Simulator
{
    private enum Kind
    {
        Departure = 0,
        Arrival = 1,
    }

    private readonly record struct Event(long Time, Kind Kind, int Vm);

    public static ReplayResult RunOurs(Trace trace, SimulationSettings s) =>
        Run(trace, s, new IndexPlacer(s.Hosts, s.HostCpus, s.HostMemoryMiB, new PlacementPolicy(1.0, 1.0, s.Strategy)));

    public static ReplayResult RunFirstFit(Trace trace, SimulationSettings s) =>
        Run(trace, s, new FirstFitPlacer(s.Hosts, s.HostCpus, s.HostMemoryMiB));

    internal static ReplayResult Run(Trace trace, SimulationSettings s, IPlacer placer)
    {
        var events = Events(trace);
        var vms = trace.Vms;
        var byId = IndexById(trace);
        var placements = new int[vms.Count];
        var vmCount = new int[s.Hosts];
        var cpuUsed = new long[s.Hosts];
        var memoryUsed = new long[s.Hosts];
        var latencies = new long[vms.Count];
        var series = new Integrator(trace.Start, trace.End, s.PlotPoints);
        int placed = 0, rejected = 0, active = 0, peak = 0, violations = 0;
        long decisionTicks = 0;
        var wall = Stopwatch.StartNew();

        foreach (var e in events)
        {
            series.Advance(e.Time, active);
            var at = byId[e.Vm];
            var vm = vms[at];
            if (e.Kind == Kind.Departure)
            {
                var host = placements[at];
                if (host >= 0)
                {
                    placer.Release(host, vm.Vcpus, vm.MemoryMiB);
                    cpuUsed[host] -= vm.Vcpus;
                    memoryUsed[host] -= vm.MemoryMiB;
                    if (--vmCount[host] == 0)
                    {
                        active--;
                    }
                }

                continue;
            }

            var t0 = Stopwatch.GetTimestamp();
            var chosen = placer.Place(vm.Vcpus, vm.MemoryMiB);
            var ticks = Stopwatch.GetTimestamp() - t0;
            latencies[placed + rejected] = ticks;
            decisionTicks += ticks;
            placements[at] = chosen;
            if (chosen < 0)
            {
                rejected++;
                continue;
            }

            placed++;
            cpuUsed[chosen] += vm.Vcpus;
            memoryUsed[chosen] += vm.MemoryMiB;
            if (cpuUsed[chosen] > s.HostCpus || memoryUsed[chosen] > s.HostMemoryMiB)
            {
                violations++;
            }

            if (vmCount[chosen]++ == 0)
            {
                active++;
                peak = Math.Max(peak, active);
            }
        }

        series.Advance(trace.End, active);
        wall.Stop();
        var decided = placed + rejected;
        Array.Sort(latencies, 0, decided);
        return new ReplayResult(
            placer.Name, vms.Count, placed, rejected,
            decisionTicks == 0 ? 0 : decided / ((double)decisionTicks / Stopwatch.Frequency),
            Percentile(latencies, decided, 0.50), Percentile(latencies, decided, 0.99), Percentile(latencies, decided, 1.0),
            series.Average, peak, wall.Elapsed.TotalSeconds, violations, series.Bins,
            s.RecordPlacements ? placements : null);
    }

    /// <summary>
    /// tbpp: ceil(live CPU / capacity); with memory: the larger of the CPU and memory bounds; integrated over the window.
    /// </summary>
    public static LowerBound ComputeLowerBound(Trace trace, int hostCpus, long hostMemoryMiB, int plotPoints = 600)
    {
        var vms = trace.Vms;
        var byId = IndexById(trace);
        var series = new Integrator(trace.Start, trace.End, plotPoints);
        long cpu = 0, memory = 0;
        int bound = 0, peak = 0, live = 0, peakLive = 0;
        foreach (var e in Events(trace))
        {
            series.Advance(e.Time, bound);
            var vm = vms[byId[e.Vm]];
            var sign = e.Kind == Kind.Arrival ? 1 : -1;
            cpu += sign * vm.Vcpus;
            memory += sign * vm.MemoryMiB;
            live += sign;
            bound = (int)Math.Max(CeilDiv(cpu, hostCpus), trace.HasMemory ? CeilDiv(memory, hostMemoryMiB) : 0);
            peak = Math.Max(peak, bound);
            peakLive = Math.Max(peakLive, live);
        }

        series.Advance(trace.End, bound);
        return new LowerBound(series.Average, peak, peakLive, series.Bins);
    }

    private static long CeilDiv(long a, long b) => (a + b - 1) / b;

    private static double Percentile(long[] sorted, int count, double p)
    {
        if (count == 0)
        {
            return 0;
        }

        var i = Math.Clamp((int)Math.Ceiling(p * count) - 1, 0, count - 1);
        return sorted[i] * 1000.0 / Stopwatch.Frequency;
    }

    private static int[] IndexById(Trace trace)
    {
        var max = trace.Vms.Count == 0 ? 0 : trace.Vms.Max(v => v.Id);
        var byId = new int[max + 1];
        for (var i = 0; i < trace.Vms.Count; i++)
        {
            byId[trace.Vms[i].Id] = i;
        }

        return byId;
    }

    /// <summary>Arrivals and departures inside the window, in time order; departures first at equal times.</summary>
    private static List<Event> Events(Trace trace)
    {
        var events = new List<Event>(trace.Vms.Count * 2);
        foreach (var vm in trace.Vms)
        {
            events.Add(new Event(vm.Arrival, Kind.Arrival, vm.Id));
            if (vm.Departure is { } d && d <= trace.End)
            {
                events.Add(new Event(d, Kind.Departure, vm.Id));
            }
        }

        events.Sort((a, b) => a.Time != b.Time ? a.Time.CompareTo(b.Time) : a.Kind != b.Kind ? a.Kind.CompareTo(b.Kind) : a.Vm.CompareTo(b.Vm));
        return events;
    }

    /// <summary>Time-weighted average of a step function over [start, end), overall and in equal bins for a plot.</summary>
    private sealed class Integrator
    {
        private readonly long _start;
        private readonly long _end;
        private readonly double[] _bins;
        private readonly double _binWidth;
        private double _area;
        private long _last;

        public Integrator(long start, long end, int points)
        {
            _start = start;
            _end = end;
            _bins = new double[Math.Max(1, points)];
            _binWidth = Math.Max(1, end - start) / (double)Math.Max(1, points);
            _last = start;
        }

        public double Average => _end > _start ? _area / (_end - _start) : 0;

        public IReadOnlyList<double> Bins => _bins.Select(b => b / _binWidth).ToArray();

        public void Advance(long time, int value)
        {
            var to = Math.Min(time, _end);
            if (to <= _last)
            {
                return;
            }

            _area += (double)value * (to - _last);
            // Spread the segment over the plot's bins (by bin number, so rounding can never stall it).
            var from = (double)_last;
            for (var bin = Math.Min(_bins.Length - 1, (int)((from - _start) / _binWidth)); from < to && bin < _bins.Length; bin++)
            {
                var binEnd = bin == _bins.Length - 1 ? to : Math.Min(to, _start + (bin + 1) * _binWidth);
                if (binEnd > from)
                {
                    _bins[bin] += value * (binEnd - from);
                    from = binEnd;
                }
            }

            _last = to;
        }
    }
}
