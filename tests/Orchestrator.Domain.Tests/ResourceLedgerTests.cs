using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Domain.Tests;

/// <summary>Shares, reservations and limits in the ledger: validation, admission against physical capacity, changes, entitlements.</summary>
public class ResourceLedgerTests
{
    private static readonly HostId H1 = new("h1");

    [Theory]
    [InlineData(1, 0, null, "cpuShares")]
    [InlineData(300000, 0, null, "cpuShares")]
    [InlineData(null, 1500, null, "cpuReservationMillicores")]
    [InlineData(null, -1, null, "cpuReservationMillicores")]
    [InlineData(null, 0, 5, "cpuLimitMillicores")]
    [InlineData(null, 0, 2000, "cpuLimitMillicores")]
    [InlineData(null, 600, 500, "cpuLimitMillicores")]
    public void Resources_out_of_range_are_refused_naming_the_field(int? shares, int reservation, int? limit, string field)
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var decision = ledger.Send(new LedgerCommands.CreateVm(TenantId.System,
            new VmSpec("web", 1, 256, "demo", RestartPolicy.OnFailure, new VmResources(shares, reservation, limit)), VmId.New()));
        Assert.Equal(RefusalKind.Invalid, decision.Refusal?.Kind);
        Assert.Contains(decision.Refusal!.Errors, e => e.Field == field);
        Assert.Empty(ledger.State.Vms);
    }

    [Theory]
    [InlineData("0-", "cpuset")]
    [InlineData("3-1", "cpuset")]
    [InlineData("a", "cpuset")]
    [InlineData("5000", "cpuset")]
    public void A_malformed_cpuset_is_refused(string cpuset, string field)
    {
        var errors = new VmResources(Cpuset: cpuset).Validate(1, 256);
        Assert.Contains(errors, e => e.Field == field);
    }

    [Fact]
    public void Memory_limits_below_the_guest_memory_and_reservations_above_it_are_refused()
    {
        var errors = new VmResources(MemoryReservationMiB: 512, MemoryLimitMiB: 128).Validate(1, 256);
        Assert.Contains(errors, e => e.Field == "memoryReservationMiB");
        Assert.Contains(errors, e => e.Field == "memoryLimitMiB");
    }

    [Fact]
    public void Cpu_lists_parse_and_format_canonically()
    {
        Assert.Equal([0, 1, 2, 5], CpuSet.Parse("5,0-2"));
        Assert.Equal("0-2,5,7-8", CpuSet.Format([8, 0, 1, 2, 5, 7, 1]));
    }

    [Fact]
    public void Reservations_are_admitted_against_physical_cpu_even_when_vcpus_are_overcommitted()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 2);
        var a = ledger.Create("a", vcpus: 2, resources: new VmResources(CpuReservationMillicores: 1500));
        var b = ledger.Create("b", vcpus: 1, resources: new VmResources(CpuReservationMillicores: 600));
        var c = ledger.Create("c", vcpus: 1, resources: new VmResources(CpuReservationMillicores: 500));

        Assert.Equal(H1, a.Host);
        Assert.Equal(VmStatus.Pending, b.Status); // 1500 + 600 > 2000 millicores, though 3 vCPUs fit at ratio 4
        Assert.Contains("reserved", b.Reason);
        Assert.Equal(H1, c.Host);
        Assert.Equal(2000, ledger.State.Hosts[H1].ReservedCpuMillicores);

        ledger.Send(new LedgerCommands.DeleteVm(TenantId.System, "a"));
        ledger.Send(new LedgerCommands.ConfirmDeleted(a.Id));
        Assert.Equal(H1, ledger.State.Vms[b.Id].Host); // the freed reservation places the pending VM
        Assert.Equal(1100, ledger.State.Hosts[H1].ReservedCpuMillicores);
    }

    [Fact]
    public void Memory_reservations_never_exceed_physical_memory()
    {
        var ledger = new LedgerDriver(LedgerRules.Create(["demo"]) with
        {
            Placement = Placement.PlacementPolicy.Default with { MemoryAllocationRatio = 2.0 },
        });
        ledger.Host("h1", memoryMiB: 1024);
        var a = ledger.Create("a", memoryMiB: 1024, resources: new VmResources(MemoryReservationMiB: 800));
        var b = ledger.Create("b", memoryMiB: 512, resources: new VmResources(MemoryReservationMiB: 300));
        var c = ledger.Create("c", memoryMiB: 512);
        Assert.Equal(H1, a.Host);
        Assert.Equal(VmStatus.Pending, b.Status);
        Assert.Equal(H1, c.Host); // overcommitted memory without a reservation still fits
    }

    [Fact]
    public void Changing_resources_of_a_running_vm_is_an_event_and_moves_the_hosts_reservations()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 2);
        var vm = ledger.Create("web");
        var decision = ledger.Send(new LedgerCommands.SetVmResources(TenantId.System, "web", new VmResources(2048, 700, 900)));
        var changed = Assert.IsType<VmResourcesChanged>(Assert.Single(decision.Events));
        Assert.Equal(vm.Id, changed.VmId);
        Assert.Equal(700, ledger.State.Hosts[H1].ReservedCpuMillicores);
        Assert.Equal(2048, ledger.State.Vms[vm.Id].Spec.EffectiveResources.SharesFor(1));

        Assert.Empty(ledger.Send(new LedgerCommands.SetVmResources(TenantId.System, "web", new VmResources(2048, 700, 900))).Events);
    }

    [Fact]
    public void Two_patches_of_different_fields_sent_from_the_same_view_both_hold()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 2);
        var vm = ledger.Create("web", resources: new VmResources(CpuShares: 512, Cpuset: "0"));

        // Both clients read shares 512 and cpuset "0"; each patches one field. The ledger merges each into what it has.
        ledger.Send(new LedgerCommands.PatchVmResources(TenantId.System, "web",
            new VmResourcesPatch([VmResourcesPatch.CpuLimitMillicores], new VmResources(CpuLimitMillicores: 900))));
        ledger.Send(new LedgerCommands.PatchVmResources(TenantId.System, "web",
            new VmResourcesPatch([VmResourcesPatch.CpuShares, VmResourcesPatch.Cpuset], new VmResources(CpuShares: 4096))));

        Assert.Equal(new VmResources(CpuShares: 4096, CpuLimitMillicores: 900), ledger.State.Vms[vm.Id].Spec.EffectiveResources);
        var refused = ledger.Send(new LedgerCommands.PatchVmResources(TenantId.System, "web",
            new VmResourcesPatch([VmResourcesPatch.CpuLimitMillicores], new VmResources(CpuLimitMillicores: 5))));
        Assert.Equal(RefusalKind.Invalid, refused.Refusal?.Kind); // validated as a whole, after the merge
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new LedgerCommands.PatchVmResources(TenantId.System, "nobody",
            new VmResourcesPatch([VmResourcesPatch.CpuShares], new VmResources(CpuShares: 10)))).Refusal?.Kind);
    }

    [Fact]
    public void A_larger_reservation_that_does_not_fit_on_the_vms_host_is_a_conflict_and_changes_nothing()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 1);
        ledger.Create("a", resources: new VmResources(CpuReservationMillicores: 600));
        ledger.Create("b");
        var decision = ledger.Send(new LedgerCommands.SetVmResources(TenantId.System, "b", new VmResources(CpuReservationMillicores: 500)));
        Assert.Equal(RefusalKind.Conflict, decision.Refusal?.Kind);
        Assert.Contains("400 millicores left", decision.Refusal!.Message);
        Assert.Equal(600, ledger.State.Hosts[H1].ReservedCpuMillicores);

        var refused = ledger.Send(new LedgerCommands.SetVmResources(new TenantId("other"), "b", new VmResources(CpuShares: 10)));
        Assert.Equal(RefusalKind.NotFound, refused.Refusal?.Kind); // another tenant's VM is a missing one
    }

    [Fact]
    public void Recomputing_shares_journals_each_vm_whose_entitlement_moved_beyond_the_tolerance()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 1);
        var a = Running(ledger, "a", new VmResources(CpuShares: 2048));
        var b = Running(ledger, "b");
        var c = Running(ledger, "c");

        var first = ledger.Send(new LedgerCommands.RecomputeShares(H1, [], 25));
        Assert.Equal(3, first.Events.Count);
        Assert.Equal(500, ledger.State.Vms[a.Id].EntitledCpuMillicores);
        Assert.Equal(250, ledger.State.Vms[b.Id].EntitledCpuMillicores);
        Assert.Equal(250, ledger.State.Vms[c.Id].EntitledCpuMillicores);

        // c idles: its share flows to a and b (2:1), and only what moved is journaled.
        var idle = ledger.Send(new LedgerCommands.RecomputeShares(H1, [new VmCpuDemand(c.Id, 40)], 25));
        Assert.Equal(3, idle.Events.Count);
        Assert.Equal(640, ledger.State.Vms[a.Id].EntitledCpuMillicores);
        Assert.Equal(320, ledger.State.Vms[b.Id].EntitledCpuMillicores);
        Assert.Equal(40, ledger.State.Vms[c.Id].EntitledCpuMillicores);

        Assert.Empty(ledger.Send(new LedgerCommands.RecomputeShares(H1, [new VmCpuDemand(c.Id, 50)], 25)).Events);

        ledger.Send(new LedgerCommands.StopVm(TenantId.System, "c"));
        ledger.Send(new LedgerCommands.ReportVm(c.Id, c.Epoch, VmStatus.Stopped, "stopped on request", null, null));
        var stopped = ledger.Send(new LedgerCommands.RecomputeShares(H1, [], 25));
        Assert.Contains(stopped.Events, e => e is SharesChanged { EntitledMillicores: null } s && s.VmId == c.Id);
        Assert.Null(ledger.State.Vms[c.Id].EntitledCpuMillicores);
        Assert.Equal(667, ledger.State.Vms[a.Id].EntitledCpuMillicores);
    }

    private static VmRecord Running(LedgerDriver ledger, string name, VmResources? resources = null)
    {
        var vm = ledger.Create(name, resources: resources);
        ledger.Send(new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Running, null, 100, null));
        return ledger.State.Vms[vm.Id];
    }
}

/// <summary>HA admission control: room kept to restart the VMs of the fullest hosts.</summary>
public class HaHeadroomTests
{
    [Fact]
    public void A_vm_that_would_eat_the_headroom_waits_and_a_lost_hosts_vms_may_use_it()
    {
        var rules = LedgerRules.Create(["demo"]) with
        {
            Placement = new Placement.PlacementPolicy(1.0, 1.0, Placement.PlacementStrategy.Spread, HaHeadroomHosts: 1),
        };
        var ledger = new LedgerDriver(rules);
        ledger.Host("h1", cpus: 2);
        ledger.Host("h2", cpus: 2);
        var a = ledger.Create("a");
        var b = ledger.Create("b");
        Assert.NotEqual(a.Host, b.Host);

        // A third VM would leave 1 spare vCPU for the fullest host's 2: it waits, saying why.
        var c = ledger.Create("c");
        Assert.Equal(VmStatus.Pending, c.Status);
        Assert.Contains("restart the VMs of the 1 fullest host", c.Reason);
        var headroom = Placement.Placement.Headroom(ledger.State.Hosts.Values, rules.Placement);
        Assert.Equal((1L, 1L), (headroom.NeededVcpus, headroom.SpareVcpus));
        Assert.True(headroom.Holds);

        // Losing a host is what the headroom is for: its VM moves over.
        ledger.Send(new LedgerCommands.LoseHost(a.Host!.Value));
        Assert.Equal(b.Host, ledger.State.Vms[a.Id].Host);
    }

    [Fact]
    public void Without_headroom_the_same_vm_is_placed()
    {
        var ledger = new LedgerDriver(LedgerRules.Create(["demo"]) with { Placement = new Placement.PlacementPolicy(1.0, 1.0, Placement.PlacementStrategy.Spread) });
        ledger.Host("h1", cpus: 2);
        ledger.Host("h2", cpus: 2);
        ledger.Create("a");
        ledger.Create("b");
        Assert.NotNull(ledger.Create("c").Host);
    }
}
