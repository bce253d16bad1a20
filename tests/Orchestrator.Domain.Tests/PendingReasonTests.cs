using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Tests.ConstrainedIndexTests;

namespace Orchestrator.Domain.Tests;

/// <summary>
/// A pending VM's reason, told from the capacity index's counts where nothing but room and a host selector stand in the
/// way, is word for word what the scan of every host says.
/// </summary>
public class PendingReasonTests
{
    private sealed record Ledger(int Seed, int Hosts, int Vms, bool Pack);

    private static readonly Arbitrary<Ledger> Ledgers =
        Gen.Choose(0, int.MaxValue - 1).Zip(Gen.Choose(0, 30)).Zip(Gen.Choose(0, 120)).Zip(Gen.Elements(false, true))
            .Select(t => new Ledger(t.Item1.Item1.Item1, t.Item1.Item1.Item2, t.Item1.Item2, t.Item2))
            .ToArbitrary();

    private static readonly DateTimeOffset Now = DateTimeOffset.UnixEpoch;

    private static VmSpec RandomSpec(Random random, string name)
    {
        var selector = Selectors[random.Next(Selectors.Length)];
        return new VmSpec(name, 1 + random.Next(8), 128 * (1 + random.Next(32)), "img") { HostSelector = selector.Length == 0 ? null : selector };
    }

    /// <summary>
    /// Random hosts (some lost) filled by the ledger's own decisions, then probes of random requests under random
    /// reachability. Returns the first difference, and how many probes the index answered (the others it leaves to the scan).
    /// </summary>
    private static (string? Difference, int Compared) FirstDifference(Ledger l)
    {
        var random = new Random(l.Seed);
        var rules = LedgerRules.Create(["img"]) with { Placement = new PlacementPolicy(2.0, 1.0, l.Pack ? PlacementStrategy.Pack : PlacementStrategy.Spread) };
        var state = LedgerState.Empty;
        var ids = new List<HostId>();
        for (var i = 0; i < l.Hosts; i++)
        {
            var (cpus, memory) = Shapes[random.Next(Shapes.Length)];
            var id = new HostId($"h{i:D2}");
            ids.Add(id);
            state = state.Apply(new LedgerEvents.HostRegistered(id, cpus, memory, "qemu", Now, Labels: LabelSets[random.Next(LabelSets.Length)]));
            if (random.Next(5) == 0)
            {
                state = state.Apply(new LedgerEvents.HostLost(id, Now));
            }
        }

        for (var v = 0; v < l.Vms; v++)
        {
            var create = new LedgerCommands.CreateVm(TenantId.System, RandomSpec(random, $"vm-{v}"), new VmId(new Guid(v + 1, 0, 0, new byte[8])));
            foreach (var evt in state.Decide(create, rules, Now).Events)
            {
                state = state.Apply(evt);
            }
        }

        var compared = 0;
        for (var probe = 0; probe < 30; probe++)
        {
            var spec = RandomSpec(random, "probe");
            var vm = new VmRecord(new VmId(new Guid(0, 1, (short)probe, new byte[8])), TenantId.System, spec, DesiredState.Running, VmStatus.Pending,
                null, null, Epoch.Zero, null, 0, Now, null);
            var request = ResourceRequest.For(spec);
            var unreachable = ids.Count > 0 && random.Next(4) == 0 ? new HashSet<HostId> { ids[random.Next(ids.Count)] } : [];
            var constraints = new PlacementConstraints(unreachable);
            if (state.ExplainNoRoomByIndex(vm, request, rules, constraints) is not { } indexed)
            {
                continue;
            }

            compared++;
            var scanned = state.ExplainNoPlaceByScan(vm, request, rules, constraints);
            if (indexed != scanned)
            {
                return ($"probe {probe} ({spec.Vcpus} vCPUs, {spec.MemoryMiB} MiB, selector {string.Join(",", spec.HostSelector ?? [])}): " +
                        $"index said '{indexed}', scan said '{scanned}'", compared);
            }
        }

        return (null, compared);
    }

    [Property(MaxTest = 200)]
    public Property The_index_gives_a_pending_VM_the_reason_the_scan_gives() => Prop.ForAll(Ledgers, l =>
        FirstDifference(l).Difference is not { } difference ? true.ToProperty() : false.Label(difference));

    [Fact]
    public void Full_clusters_are_explained_by_the_index_in_the_scans_words()
    {
        var compared = 0;
        foreach (var (seed, pack) in new[] { (7, false), (11, true), (13, true) })
        {
            var (difference, count) = FirstDifference(new Ledger(seed, 30, 400, pack));
            Assert.Null(difference);
            compared += count;
        }

        Assert.True(compared > 0, "no probe of a full cluster was answered from the index");
    }

    [Fact]
    public void A_VM_no_host_has_room_for_waits_with_the_counts_of_hosts_up_and_matching()
    {
        var rules = LedgerRules.Create(["img"]);
        var state = LedgerState.Empty;
        foreach (var (id, zone) in new[] { ("a1", "a"), ("a2", "a"), ("b1", "b") })
        {
            state = state.Apply(new LedgerEvents.HostRegistered(new HostId(id), 2, 2048, "qemu", Now, Labels: new Dictionary<string, string> { ["zone"] = zone }));
        }

        var big = new VmSpec("big", 64, 1024, "img");
        var pending = Assert.IsType<LedgerEvents.VmPending>(state.Decide(new LedgerCommands.CreateVm(TenantId.System, big, VmId.New()), rules, Now).Events[^1]);
        Assert.Equal("no host has room for 64 vCPUs and 1024 MiB (3 hosts up, allocation ratios cpu " +
                     $"{rules.Placement.CpuAllocationRatio}, memory {rules.Placement.MemoryAllocationRatio})", pending.Reason);

        var steered = big with { Name = "steered", HostSelector = ["zone=a"] };
        pending = Assert.IsType<LedgerEvents.VmPending>(state.Decide(new LedgerCommands.CreateVm(TenantId.System, steered, VmId.New()), rules, Now).Events[^1]);
        Assert.Equal("no host has room for 64 vCPUs and 1024 MiB (2 hosts up, allocation ratios cpu " +
                     $"{rules.Placement.CpuAllocationRatio}, memory {rules.Placement.MemoryAllocationRatio}); among the hosts that match the host selector zone=a",
            pending.Reason);
    }
}
