using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class CapacityIndexTests
{
    // A few shapes, so that many hosts share one; small numbers, so that ties and exact fits are frequent.
    private static readonly (int Cpus, long MemoryMiB)[] Shapes = [(2, 1024), (4, 2048), (4, 3000), (3, 1536), (8, 8192)];

    /// <summary>One step of a workload: 0–5 place a request, 6–8 release a VM, 9 takes a host down or up.</summary>
    private sealed record Step(int Kind, int A, int B);

    private sealed record Workload(List<int> HostShapes, List<Step> Steps, double CpuRatio, double MemoryRatio, bool Pack);

    private static readonly Gen<Step> StepGen =
        Gen.Choose(0, 9).Zip(Gen.Choose(0, 1000)).Zip(Gen.Choose(0, 1000))
            .Select(t => new Step(t.Item1.Item1, t.Item1.Item2, t.Item2));

    private static readonly Arbitrary<Workload> Workloads =
        Gen.ListOf(Gen.Choose(0, Shapes.Length - 1)).Select(l => l.ToList())
            .Zip(Gen.ListOf(StepGen).Select(l => l.ToList()))
            .Zip(Gen.Elements(1.0, 1.5, 4.0).Zip(Gen.Elements(1.0, 0.75, 1.3)))
            .Zip(Gen.Elements(false, true))
            .Select(t => new Workload(t.Item1.Item1.Item1, t.Item1.Item1.Item2, t.Item1.Item2.Item1, t.Item1.Item2.Item2, t.Item2))
            .ToArbitrary();

    /// <summary>
    /// Replays the workload on a plain dictionary of hosts, asking the scan and the index at every placement, and
    /// keeping the index up to date with <see cref="CapacityIndex.Replace"/>. Returns the first disagreement.
    /// </summary>
    private static string? FirstDisagreement(Workload w)
    {
        var policy = new PlacementPolicy(w.CpuRatio, w.MemoryRatio, w.Pack ? PlacementStrategy.Pack : PlacementStrategy.Spread);
        var hosts = new Dictionary<HostId, HostRecord>();
        for (var i = 0; i < w.HostShapes.Count; i++)
        {
            var (cpus, memory) = Shapes[w.HostShapes[i]];
            var id = new HostId($"h{(i * 7919) % 1000:D3}-{i}"); // ids not in creation order
            // A third of the hosts run the other driver, so that a request naming one skips shapes the other shares.
            // …and a fifth fell back to TCG (or did not say), so that a request for KVM skips those shapes too.
            var accelerator = (i % 5) switch { 0 => new HostAccelerator("tcg", "max", "no /dev/kvm"), 1 => null, _ => new HostAccelerator("kvm", "host") };
            hosts[id] = new HostRecord(id, cpus, memory, i % 3 == 0 ? "kvm" : "qemu", HostState.Up, 0, 0, 0, Accelerator: accelerator);
        }

        var index = CapacityIndex.Build(hosts.Values);
        var placed = new List<(HostId Host, ResourceRequest Request)>();

        void Set(HostRecord before, HostRecord after)
        {
            hosts[after.Id] = after;
            index = index.Replace(before, after);
        }

        foreach (var step in w.Steps)
        {
            if (step.Kind <= 5)
            {
                var driver = (step.A / 6 % 3) switch { 0 => null, 1 => "kvm", _ => "qemu" };
                var accelerator = step.B / 24 % 2 == 0 ? null : "kvm";
                var request = new ResourceRequest(1 + (step.A % 6), 128L * (step.B % 24), Driver: driver, Accelerator: accelerator);
                var scan = Placement.Placement.ChooseHost(hosts.Values, request, policy);
                var indexed = index.ChooseHost(request, policy);
                if (scan?.Id != indexed?.Id)
                {
                    return $"{request} under {policy}: scan chose {scan?.Id.Value ?? "none"}, index chose {indexed?.Id.Value ?? "none"}";
                }

                // An index built whole from the hosts as they are now (as after a recovery) chooses alike.
                var rebuilt = CapacityIndex.Build(hosts.Values).ChooseHost(request, policy);
                if (scan?.Id != rebuilt?.Id)
                {
                    return $"{request} under {policy}: scan chose {scan?.Id.Value ?? "none"}, an index built now chose {rebuilt?.Id.Value ?? "none"}";
                }

                if (scan is not null)
                {
                    Set(scan, scan with
                    {
                        AllocatedVcpus = scan.AllocatedVcpus + request.Vcpus,
                        AllocatedMemoryMiB = scan.AllocatedMemoryMiB + request.MemoryMiB,
                        VmCount = scan.VmCount + 1,
                    });
                    placed.Add((scan.Id, request));
                }
            }
            else if (step.Kind <= 8 && placed.Count > 0)
            {
                var at = step.A % placed.Count;
                var (id, request) = placed[at];
                placed.RemoveAt(at);
                var host = hosts[id];
                Set(host, host with
                {
                    AllocatedVcpus = host.AllocatedVcpus - request.Vcpus,
                    AllocatedMemoryMiB = host.AllocatedMemoryMiB - request.MemoryMiB,
                    VmCount = host.VmCount - 1,
                });
            }
            else if (step.Kind == 9 && step.B % 5 == 0)
            {
                index = CapacityIndex.Build(hosts.Values); // built whole again, then kept up to date
            }
            else if (step.Kind == 9 && hosts.Count > 0)
            {
                var host = hosts.Values.OrderBy(h => h.Id.Value, StringComparer.Ordinal).ElementAt(step.A % hosts.Count);
                // Down and up again, or probed again with the other verdict (the host moves between shapes).
                Set(host, step.B % 2 == 0
                    ? host with { State = host.State == HostState.Up ? HostState.Down : HostState.Up }
                    : host with { Accelerator = host.Accelerator is { IsHardware: true } ? new HostAccelerator("tcg", "max") : new HostAccelerator("kvm", "host") });
            }
        }

        var expected = hosts.Values.Where(h => h.State == HostState.Up).OrderBy(h => h.Id.Value, StringComparer.Ordinal);
        var actual = index.Hosts().OrderBy(h => h.Id.Value, StringComparer.Ordinal);
        return expected.SequenceEqual(actual) ? null : "the index does not hold exactly the Up hosts at the end";
    }

    [Property(MaxTest = 300)]
    public Property The_index_chooses_the_host_the_scan_chooses() => Prop.ForAll(Workloads, w =>
        FirstDisagreement(w) is not { } disagreement
            ? true.ToProperty()
            : false.Label(disagreement));

    [Fact]
    public void The_index_agrees_with_the_scan_on_a_large_mixed_workload()
    {
        var random = new Random(42);
        var steps = Enumerable.Range(0, 20_000)
            .Select(i => new Step(random.Next(10) < 7 ? random.Next(6) : 6 + random.Next(4), random.Next(1000), random.Next(1000)))
            .ToList();
        var hostShapes = Enumerable.Range(0, 300).Select(_ => random.Next(Shapes.Length)).ToList();
        foreach (var pack in new[] { false, true })
        {
            Assert.Null(FirstDisagreement(new Workload(hostShapes, steps, 4.0, 1.0, pack)));
        }
    }

    [Fact]
    public void The_index_agrees_with_the_scan_while_thousands_of_hosts_of_one_shape_come_and_go()
    {
        // One shape of 20,000 hosts: a tree of several levels whose leaves and inner nodes split and merge as hosts leave
        // (down to a few hundred) and come back in random order, with allocations moving hosts across the key order.
        var random = new Random(23);
        var all = Enumerable.Range(0, 20_000)
            .Select(i => new HostRecord(new HostId($"h{i * 7919 % 20_000:D5}"), 8, 8192, "sim", HostState.Down, 0, 0, 0))
            .ToList();
        var hosts = all.ToDictionary(h => h.Id);
        var index = CapacityIndex.Empty;
        var steps = 0;

        void Set(HostRecord after)
        {
            var before = hosts[after.Id];
            hosts[after.Id] = after;
            index = index.Replace(before.State == HostState.Up ? before : null, after);
            if (++steps % 211 == 0)
            {
                foreach (var strategy in new[] { PlacementStrategy.Spread, PlacementStrategy.Pack })
                {
                    var policy = new PlacementPolicy(2.0, 1.0, strategy);
                    var request = new ResourceRequest(1 + random.Next(4), 512L * random.Next(8));
                    Assert.Equal(Placement.Placement.ChooseHost(hosts.Values, request, policy)?.Id, index.ChooseHost(request, policy)?.Id);
                }
            }
        }

        for (var round = 0; round < 2; round++)
        {
            foreach (var host in all.OrderBy(_ => random.Next()).Select(h => hosts[h.Id]))
            {
                Set(host with { State = HostState.Up });
            }

            for (var i = 0; i < 5_000; i++)
            {
                var host = hosts[all[random.Next(all.Count)].Id];
                Set(host with { AllocatedVcpus = random.Next(17), AllocatedMemoryMiB = 256L * random.Next(33) });
            }

            foreach (var host in all.OrderBy(_ => random.Next()).Take(all.Count - 300 * (round + 1)).Select(h => hosts[h.Id]))
            {
                Set(host with { State = HostState.Down });
            }

            Assert.Equal(300 * (round + 1), index.Count);
        }

        var expected = hosts.Values.Where(h => h.State == HostState.Up).OrderBy(h => h.Id.Value, StringComparer.Ordinal);
        Assert.Equal(expected, index.Hosts().OrderBy(h => h.Id.Value, StringComparer.Ordinal));
    }

    [Fact]
    public void An_update_leaves_the_index_it_came_from_as_it_was()
    {
        // LedgerState's speculative states share an index: thousands of moves, removals and splits made from one version
        // must not show in it.
        var random = new Random(5);
        var hosts = Enumerable.Range(0, 2_000)
            .Select(i => new HostRecord(new HostId($"h{i:D4}"), 8, 8192, "sim", HostState.Up, random.Next(9), 512L * random.Next(17), 0))
            .ToList();
        var original = CapacityIndex.Build(hosts);
        var requests = Enumerable.Range(0, 50).Select(i => new ResourceRequest(1 + i % 4, 256L * (i % 9))).ToList();
        var policy = new PlacementPolicy(2.0, 1.0, PlacementStrategy.Pack);
        var decisions = requests.Select(r => original.ChooseHost(r, policy)?.Id).ToList();

        var index = original;
        var current = hosts.ToArray();
        for (var i = 0; i < 5_000; i++)
        {
            var at = random.Next(current.Length);
            var after = current[at] with { AllocatedVcpus = random.Next(9), AllocatedMemoryMiB = 512L * random.Next(17) };
            index = index.Replace(current[at], after);
            current[at] = after;
        }

        Assert.Equal(hosts.OrderBy(h => h.Id.Value, StringComparer.Ordinal), original.Hosts().OrderBy(h => h.Id.Value, StringComparer.Ordinal));
        Assert.Equal(decisions, requests.Select(r => original.ChooseHost(r, policy)?.Id).ToList());
        Assert.Equal(hosts.Count, original.Count);
    }

    [Fact]
    public void Among_equal_hosts_the_least_id_wins_in_both_strategies()
    {
        var hosts = Enumerable.Range(0, 50)
            .Select(i => new HostRecord(new HostId($"h{49 - i:D2}"), 4, 4096, "sim", HostState.Up, 2, 1024, 1))
            .ToList();
        var index = CapacityIndex.Build(hosts);
        foreach (var strategy in new[] { PlacementStrategy.Spread, PlacementStrategy.Pack })
        {
            Assert.Equal("h00", index.ChooseHost(new ResourceRequest(1, 256), PlacementPolicy.Default with { Strategy = strategy })!.Id.Value);
        }
    }

    [Fact]
    public void Weights_that_are_equal_exactly_are_ties_even_where_floating_point_rounds_them_apart()
    {
        // 1/3 + 2/6 and 2/3 + 0/6 are both 2/3; the tie goes to the least id, whichever order the hosts come in.
        var policy = new PlacementPolicy(1.0, 1.0, PlacementStrategy.Spread);
        var a = new HostRecord(new HostId("a"), 3, 6, "sim", HostState.Up, 1, 3, 1);
        var b = new HostRecord(new HostId("b"), 3, 6, "sim", HostState.Up, 0, 5, 1);
        var request = new ResourceRequest(1, 1);
        Assert.Equal(0, Placement.Placement.Compare(a, a, request, policy));
        Assert.Equal("a", Placement.Placement.ChooseHost([b, a], request, policy)!.Id.Value);
        Assert.Equal("a", CapacityIndex.Build([b, a]).ChooseHost(request, policy)!.Id.Value);
    }

    [Fact]
    public void The_ledger_keeps_its_index_equal_to_its_up_hosts()
    {
        var ledger = new LedgerDriver();
        for (var i = 0; i < 20; i++)
        {
            ledger.Host($"h{i:D2}", cpus: 2 + i % 3, memoryMiB: 4096);
        }

        var names = new List<string>();
        for (var i = 0; i < 150; i++)
        {
            var name = $"vm{i}";
            ledger.Send(new LedgerCommands.CreateVm(TenantId.System, new VmSpec(name, 1 + i % 3, 256 + 128 * (i % 5), "demo"), VmId.New()));
            names.Add(name);
            if (i % 4 == 3)
            {
                var victim = names[(i * 31) % names.Count];
                names.Remove(victim);
                ledger.Send(new LedgerCommands.DeleteVm(TenantId.System, victim));
                if (ledger.State.FindVm(TenantId.System, victim) is { } deleting)
                {
                    ledger.Send(new LedgerCommands.ConfirmDeleted(deleting.Id));
                }
            }
        }

        var expected = ledger.State.Hosts.Values.Where(h => h.State == HostState.Up).OrderBy(h => h.Id.Value, StringComparer.Ordinal);
        Assert.Equal(expected, ledger.State.Capacity.Hosts().OrderBy(h => h.Id.Value, StringComparer.Ordinal));
        var rebuilt = CapacityIndex.Build(ledger.State.Hosts.Values);
        Assert.Equal(rebuilt.Count, ledger.State.Capacity.Count);
    }
}
