using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class PlacementTests
{
    private static readonly PlacementPolicy Policy = PlacementPolicy.Default;

    private static HostRecord Host(string id, int cpus = 8, long memory = 8192, int usedCpus = 0, long usedMemory = 0) =>
        new(new HostId(id), cpus, memory, "qemu", HostState.Up, usedCpus, usedMemory, 0);

    [Fact]
    public void Equal_hosts_are_chosen_by_their_id_whatever_the_order()
    {
        var hosts = new[] { Host("c"), Host("a"), Host("b") };
        var request = new ResourceRequest(1, 256);
        Assert.Equal("a", Placement.Placement.ChooseHost(hosts, request, Policy)!.Id.Value);
        Assert.Equal("a", Placement.Placement.ChooseHost(hosts.Reverse(), request, Policy)!.Id.Value);
    }

    [Fact]
    public void Spread_prefers_the_emptier_host_and_pack_the_fuller()
    {
        var hosts = new[] { Host("busy", usedCpus: 20, usedMemory: 6000), Host("idle") };
        var request = new ResourceRequest(1, 256);
        Assert.Equal("idle", Placement.Placement.ChooseHost(hosts, request, Policy)!.Id.Value);
        Assert.Equal("busy", Placement.Placement.ChooseHost(hosts, request, Policy with { Strategy = PlacementStrategy.Pack })!.Id.Value);
    }

    [Fact]
    public void Hosts_that_are_not_up_are_never_chosen()
    {
        var hosts = new[] { Host("down") with { State = HostState.Down }, Host("maintenance") with { State = HostState.Maintenance } };
        Assert.Null(Placement.Placement.ChooseHost(hosts, new ResourceRequest(1, 64), Policy));
        Assert.Contains("none of the 2 hosts is up", Placement.Placement.ExplainNoFit(hosts, new ResourceRequest(1, 64), Policy));
    }

    [Fact]
    public void The_cpu_allocation_ratio_allows_overcommit_but_memory_is_not_overcommitted()
    {
        var host = Host("h", cpus: 2, memory: 1024, usedCpus: 7, usedMemory: 0);
        Assert.True(Placement.Placement.Fits(host, new ResourceRequest(1, 1024), Policy)); // 8 vCPUs on 2 pCPUs at 4.0
        Assert.False(Placement.Placement.Fits(host, new ResourceRequest(2, 64), Policy));
        Assert.False(Placement.Placement.Fits(host, new ResourceRequest(1, 1025), Policy));
    }

    private static readonly Gen<(int Cpus, int MemoryMiB)> HostGen =
        Gen.Choose(1, 32).Zip(Gen.Choose(1, 64)).Select(t => (t.Item1, t.Item2 * 512));

    private static readonly Gen<(int Vcpus, int MemoryMiB)> RequestGen =
        Gen.Choose(1, 16).Zip(Gen.Choose(1, 32)).Select(t => (t.Item1, t.Item2 * 128));

    private static readonly Arbitrary<(List<(int Cpus, int MemoryMiB)> Hosts, List<(int Vcpus, int MemoryMiB)> Requests)> Workloads =
        Gen.NonEmptyListOf(HostGen).Select(l => l.ToList())
            .Zip(Gen.ListOf(RequestGen).Select(l => l.ToList()))
            .ToArbitrary();

    private static LedgerDriver Run((List<(int Cpus, int MemoryMiB)> Hosts, List<(int Vcpus, int MemoryMiB)> Requests) workload)
    {
        var ledger = new LedgerDriver();
        for (var i = 0; i < workload.Hosts.Count; i++)
        {
            ledger.Host($"h{i:D3}", workload.Hosts[i].Cpus, workload.Hosts[i].MemoryMiB);
        }

        for (var i = 0; i < workload.Requests.Count; i++)
        {
            ledger.Send(new LedgerCommands.CreateVm(TenantId.System,
                new VmSpec($"vm{i}", workload.Requests[i].Vcpus, workload.Requests[i].MemoryMiB, "demo"),
                new VmId(new Guid(i + 1, 0, 0, new byte[8]))));
        }

        return ledger;
    }

    [Property(MaxTest = 200)]
    public Property Placement_never_exceeds_host_capacity() => Prop.ForAll(Workloads, workload =>
    {
        var ledger = Run(workload);
        return ledger.State.Hosts.Values.All(h =>
        {
            var onHost = ledger.State.Vms.Values.Where(v => v.Host == h.Id).ToList();
            return h.AllocatedVcpus == onHost.Sum(v => v.Spec.Vcpus)
                   && h.AllocatedMemoryMiB == onHost.Sum(v => (long)v.Spec.MemoryMiB)
                   && h.AllocatedVcpus <= Placement.Placement.VcpuCapacity(h, Policy)
                   && h.AllocatedMemoryMiB <= Placement.Placement.MemoryCapacity(h, Policy);
        });
    });

    [Property(MaxTest = 100)]
    public Property A_vm_is_pending_only_when_no_host_had_room_for_it() => Prop.ForAll(Workloads, workload =>
        Run(workload).State.Vms.Values
            .Where(v => v.Status == VmStatus.Pending)
            .All(v => v.Reason is not null && v.Host is null));

    [Property(MaxTest = 100)]
    public Property The_same_requests_give_the_same_placements() => Prop.ForAll(Workloads, workload =>
    {
        var first = Run(workload).State.Vms.Values.OrderBy(v => v.Id.Value).Select(v => v.Host).ToList();
        var second = Run(workload).State.Vms.Values.OrderBy(v => v.Id.Value).Select(v => v.Host).ToList();
        return first.SequenceEqual(second);
    });
}
