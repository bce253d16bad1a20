using Orchestrator.Domain.Placement;
using Orchestrator.Simulation.Traces;

namespace Orchestrator.Simulation.Tests;

public class ReplayTests
{
    /// <summary>A d1 instance from the shared traces where present, else a small one made here.</summary>
    private static Trace SmallTrace()
    {
        if (SharedTraces.Path("azure2020-tbpp/d1/200_2_1.txt") is { } path)
        {
            return TraceReader.Read(path);
        }

        var random = new Random(5);
        var lines = Enumerable.Range(0, 300).Select(i =>
        {
            var start = random.Next(0, 2000);
            return $"{i}\t{start}\t{start + 1 + random.Next(600)}\t{new[] { 25, 33, 50, 66 }[random.Next(4)]}";
        });
        return TbppTraceReader.Read(new StringReader($"300\t100\t0\t0\n{string.Join('\n', lines)}\n"), "made-here.txt");
    }

    [Theory]
    [InlineData(PlacementStrategy.Pack)]
    [InlineData(PlacementStrategy.Spread)]
    public void Replaying_a_trace_twice_gives_the_same_placements(PlacementStrategy strategy)
    {
        var trace = SmallTrace();
        var settings = new SimulationSettings(60, 100, 1, strategy, RecordPlacements: true);
        var first = Simulator.RunOurs(trace, settings);
        var second = Simulator.RunOurs(trace, settings);
        Assert.Equal(first.Placements, second.Placements);
        Assert.Equal(first.AvgActiveHosts, second.AvgActiveHosts);
    }

    [Theory]
    [InlineData(PlacementStrategy.Pack, 100)]
    [InlineData(PlacementStrategy.Spread, 100)]
    [InlineData(PlacementStrategy.Pack, 8)] // too few hosts: some are rejected, none overfilled
    public void Capacity_is_never_exceeded_at_any_event_of_a_replay(PlacementStrategy strategy, int hosts)
    {
        var trace = SmallTrace();
        var ours = Simulator.RunOurs(trace, new SimulationSettings(hosts, 100, 1, strategy, RecordPlacements: true));
        var baseline = Simulator.RunFirstFit(trace, new SimulationSettings(hosts, 100, 1, strategy, RecordPlacements: true));
        foreach (var result in new[] { ours, baseline })
        {
            Assert.Equal(0, result.CapacityViolations);
            Assert.Equal(trace.Vms.Count, result.Placed + result.Rejected);
            // Checked again here from the placements alone, at every event.
            var used = new int[hosts];
            var events = trace.Vms.Select((vm, i) => (vm.Arrival, Kind: 1, i))
                .Concat(trace.Vms.Select((vm, i) => (Arrival: vm.Departure ?? long.MaxValue, Kind: 0, i)))
                .OrderBy(e => e.Arrival).ThenBy(e => e.Kind).ThenBy(e => trace.Vms[e.i].Id);
            foreach (var (_, kind, i) in events)
            {
                var host = result.Placements![i];
                if (host < 0)
                {
                    continue;
                }

                used[host] += kind == 1 ? trace.Vms[i].Vcpus : -trace.Vms[i].Vcpus;
                Assert.InRange(used[host], 0, 100);
            }
        }

        if (hosts == 8)
        {
            Assert.True(ours.Rejected > 0);
        }
    }

    [Fact]
    public void Best_fit_packs_no_worse_than_first_fit_on_a_small_trace_and_never_below_the_lower_bound()
    {
        var trace = SmallTrace();
        var bound = Simulator.ComputeLowerBound(trace, 100, 1);
        var settings = new SimulationSettings(SimulateCommand.DefaultHosts(bound), 100, 1, PlacementStrategy.Pack);
        var ours = Simulator.RunOurs(trace, settings);
        var baseline = Simulator.RunFirstFit(trace, settings);
        Assert.Equal(0, ours.Rejected);
        Assert.True(ours.AvgActiveHosts >= bound.Average);
        Assert.True(baseline.AvgActiveHosts >= bound.Average);
        Assert.True(ours.PeakHosts >= bound.Peak);
    }

    [Fact]
    public void First_fit_takes_the_lowest_numbered_host_with_room()
    {
        var placer = new FirstFitPlacer(5, 10, 100);
        Assert.Equal(0, placer.Place(6, 10));
        Assert.Equal(1, placer.Place(6, 10));
        Assert.Equal(0, placer.Place(4, 10));
        Assert.Equal(2, placer.Place(1, 95)); // host 1 has the CPU but not the memory
        placer.Release(0, 6, 10);
        Assert.Equal(0, placer.Place(5, 10));
        Assert.Equal(-1, placer.Place(11, 1));
    }
}
