using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;

namespace Orchestrator.Domain.Tests;

/// <summary>The capacity index under selectors, groups and unreachable hosts decides as the plain scan does.</summary>
public class ConstrainedIndexTests
{
    internal static readonly (int Cpus, long MemoryMiB)[] Shapes = [(2, 1024), (4, 2048), (4, 3000)];

    internal static readonly IReadOnlyDictionary<string, string>?[] LabelSets =
    [
        null,
        new Dictionary<string, string> { ["zone"] = "a" },
        new Dictionary<string, string> { ["zone"] = "b", ["ssd"] = "true" },
        new Dictionary<string, string> { ["zone"] = "a", ["ssd"] = "true" },
        new Dictionary<string, string> { ["ssd"] = "false" },
    ];

    internal static readonly string[][] Selectors =
        [[], ["zone=a"], ["zone!=b"], ["ssd"], ["!ssd"], ["zone=a", "ssd=true"], ["zone=c"]];

    private sealed record Workload(int Seed, int Hosts, int Steps, bool Pack);

    private static readonly Arbitrary<Workload> Workloads =
        Gen.Choose(0, int.MaxValue - 1).Zip(Gen.Choose(0, 40)).Zip(Gen.Choose(0, 300)).Zip(Gen.Elements(false, true))
            .Select(t => new Workload(t.Item1.Item1.Item1, t.Item1.Item1.Item2, t.Item1.Item2, t.Item2))
            .ToArbitrary();

    /// <summary>
    /// Random placements, releases, relabels and reachability on a plain map of hosts; at every placement the scan and
    /// the index are asked under the same random constraints. Returns the first disagreement.
    /// </summary>
    private static string? FirstDisagreement(Workload w)
    {
        var random = new Random(w.Seed);
        var policy = new PlacementPolicy(4.0, 1.0, w.Pack ? PlacementStrategy.Pack : PlacementStrategy.Spread);
        var hosts = new Dictionary<HostId, HostRecord>();
        for (var i = 0; i < w.Hosts; i++)
        {
            var (cpus, memory) = Shapes[random.Next(Shapes.Length)];
            var id = new HostId($"h{(i * 7919) % 1000:D3}");
            hosts[id] = new HostRecord(id, cpus, memory, "qemu", HostState.Up, 0, 0, 0, Labels: LabelSets[random.Next(LabelSets.Length)]);
        }

        var index = CapacityIndex.Build(hosts.Values);
        var placed = new List<(HostId Host, ResourceRequest Request)>();

        void Set(HostRecord before, HostRecord after)
        {
            hosts[after.Id] = after;
            index = index.Replace(before, after);
        }

        for (var step = 0; step < w.Steps && hosts.Count > 0; step++)
        {
            var kind = random.Next(10);
            var ids = hosts.Keys.OrderBy(h => h.Value, StringComparer.Ordinal).ToList();
            if (kind <= 5)
            {
                var selector = Selectors[random.Next(Selectors.Length)].Select(t => HostSelectors.Parse(t)!).ToList();
                var request = new ResourceRequest(1 + random.Next(4), 128L * random.Next(12), Selector: selector.Count == 0 ? null : selector);
                var unreachable = ids.Where(_ => random.Next(6) == 0).ToHashSet();
                GroupPlacement? group = null;
                if (random.Next(3) > 0)
                {
                    var members = ids.Where(_ => random.Next(4) == 0).Select(h => (hosts[h], 1 + random.Next(3))).ToList();
                    group = new GroupPlacement("g", (GroupPolicy)random.Next(4), members);
                }

                var constraints = new PlacementConstraints(unreachable, group);
                var scan = constraints.ChooseHost(hosts.Values, request, policy);
                var indexed = index.ChooseHost(request, policy, constraints);
                if (scan?.Id != indexed?.Id)
                {
                    return $"step {step}: {string.Join(",", selector)} {group?.Policy} unreachable {unreachable.Count}: " +
                           $"scan chose {scan?.Id.Value ?? "none"}, index chose {indexed?.Id.Value ?? "none"}";
                }

                if (scan is not null)
                {
                    Set(scan, scan with { AllocatedVcpus = scan.AllocatedVcpus + request.Vcpus, AllocatedMemoryMiB = scan.AllocatedMemoryMiB + request.MemoryMiB });
                    placed.Add((scan.Id, request));
                }
            }
            else if (kind <= 7 && placed.Count > 0)
            {
                var at = random.Next(placed.Count);
                var (id, request) = placed[at];
                placed.RemoveAt(at);
                var host = hosts[id];
                Set(host, host with { AllocatedVcpus = host.AllocatedVcpus - request.Vcpus, AllocatedMemoryMiB = host.AllocatedMemoryMiB - request.MemoryMiB });
            }
            else
            {
                // Relabelled (the host moves between label shapes), or down and up again.
                var host = hosts[ids[random.Next(ids.Count)]];
                Set(host, kind == 8
                    ? host with { Labels = LabelSets[random.Next(LabelSets.Length)] }
                    : host with { State = host.State == HostState.Up ? HostState.Down : HostState.Up });
            }
        }

        return null;
    }

    [Property(MaxTest = 300)]
    public Property The_index_chooses_the_host_the_scan_chooses_under_selectors_groups_and_reachability() => Prop.ForAll(Workloads, w =>
        FirstDisagreement(w) is not { } disagreement ? true.ToProperty() : false.Label(disagreement));

    [Fact]
    public void The_index_agrees_with_the_scan_on_a_long_constrained_workload()
    {
        foreach (var pack in new[] { false, true })
        {
            Assert.Null(FirstDisagreement(new Workload(7, 200, 20_000, pack)));
        }
    }

    [Fact]
    public void Selector_terms_parse_as_typed_and_hold_as_documented()
    {
        var labels = new Dictionary<string, string> { ["zone"] = "a", ["ssd"] = "true" };
        Assert.True(HostSelectors.Parse("zone=a")!.Holds(labels));
        Assert.False(HostSelectors.Parse("zone!=a")!.Holds(labels));
        Assert.True(HostSelectors.Parse("rack!=r1")!.Holds(labels));
        Assert.True(HostSelectors.Parse("ssd")!.Holds(labels));
        Assert.False(HostSelectors.Parse("!ssd")!.Holds(labels));
        Assert.Equal("zone!=a", HostSelectors.Parse("zone!=a")!.ToString());
        Assert.NotEmpty(HostSelectors.Validate(["Zone=a"]));
        Assert.NotEmpty(HostSelectors.Validate(["=a"]));
        Assert.NotEmpty(HostSelectors.Validate(["zone=a b"]));
        Assert.Empty(HostSelectors.Validate(["zone=a", "ssd", "!gpu", "zone!=b"]));
    }
}
