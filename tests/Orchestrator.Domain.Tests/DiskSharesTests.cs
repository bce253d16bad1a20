using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Shares;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Domain.Tests;

public class DiskSharesTests
{
    private static readonly HostDiskCapacity Host = new(Iops: 1000, Bps: 100 * 1024 * 1024);

    private static DiskShares.Member Vm(int shares, long? iops = null, long? bps = null) => new(VmId.New(), shares, iops, bps);

    [Fact]
    public void Limits_that_fit_in_the_host_are_the_throttles_and_an_unlimited_vm_alone_is_not_throttled()
    {
        var limited = Vm(100, iops: 300, bps: 10 * 1024 * 1024);
        var alone = Vm(100);

        var both = DiskShares.Divide(Host, [limited]);
        Assert.Equal(new DiskThrottle(300, 10 * 1024 * 1024), both[limited.VmId]);
        Assert.Equal(DiskThrottle.None, DiskShares.Divide(Host, [alone])[alone.VmId]);
    }

    [Fact]
    public void Under_contention_the_capacity_is_split_by_share_weight()
    {
        var heavy = Vm(200);
        var light = Vm(100);

        var throttles = DiskShares.Divide(Host, [heavy, light]);

        Assert.Equal(666, throttles[heavy.VmId].Iops);
        Assert.Equal(333, throttles[light.VmId].Iops);
        Assert.Equal(2.0, (double)throttles[heavy.VmId].Bps!.Value / throttles[light.VmId].Bps!.Value, 3);
    }

    [Fact]
    public void A_vm_is_never_given_more_than_its_limit_and_what_it_leaves_goes_to_the_others()
    {
        var capped = Vm(300, iops: 100);
        var first = Vm(100);
        var second = Vm(100);

        var throttles = DiskShares.Divide(Host, [capped, first, second]);

        Assert.Equal(100, throttles[capped.VmId].Iops);
        Assert.Equal(450, throttles[first.VmId].Iops);
        Assert.Equal(450, throttles[second.VmId].Iops);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    public void The_throttles_under_contention_never_add_up_to_more_than_the_host(int count)
    {
        var random = new Random(count);
        var vms = Enumerable.Range(0, count + 1)
            .Select(_ => Vm(random.Next(1, 1000), iops: random.Next(2) == 0 ? null : random.Next(10, 2000), bps: null))
            .ToList();

        var throttles = DiskShares.Divide(Host, vms);

        Assert.All(vms, vm => Assert.True(throttles[vm.VmId].Iops is null || throttles[vm.VmId].Iops <= (vm.IopsLimit ?? Host.Iops)));
        if (vms.Sum(v => v.IopsLimit ?? Host.Iops) > Host.Iops)
        {
            Assert.True(throttles.Values.Sum(t => t.Iops!.Value) <= Host.Iops);
            Assert.True(throttles.Values.Sum(t => t.Bps!.Value) <= Host.Bps);
        }
    }

    [Fact]
    public void No_capacity_configured_means_limits_only()
    {
        var a = Vm(100);
        var b = Vm(200, bps: 1024 * 1024);

        var throttles = DiskShares.Divide(new HostDiskCapacity(0, 0), [a, b]);

        Assert.Equal(DiskThrottle.None, throttles[a.VmId]);
        Assert.Equal(new DiskThrottle(null, 1024 * 1024), throttles[b.VmId]);
    }

    [Fact]
    public void Out_of_range_disk_limits_are_refused_naming_the_field()
    {
        var errors = new VmResources(DiskIops: 1, DiskBps: 10, DiskShares: 0).Validate(vcpus: 1, memoryMiB: 128);

        Assert.Equal(["diskIops", "diskBps", "diskShares"], errors.Select(e => e.Field));
        Assert.Empty(new VmResources(DiskIops: 500, DiskBps: 4 * 1024 * 1024, DiskShares: 200).Validate(1, 128));
    }

    [Fact]
    public void A_disk_limit_patched_on_a_vm_is_journaled_and_one_out_of_range_is_refused_naming_the_field()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var vm = ledger.Create("web", resources: new VmResources(DiskBps: 4 * 1024 * 1024));

        var decision = ledger.Send(new LedgerCommands.PatchVmResources(TenantId.System, "web",
            new VmResourcesPatch([VmResourcesPatch.DiskBps, VmResourcesPatch.DiskShares], new VmResources(DiskBps: 8 * 1024 * 1024, DiskShares: 300))));
        var changed = Assert.IsType<VmResourcesChanged>(Assert.Single(decision.Events));
        Assert.Equal(new VmResources(DiskBps: 8 * 1024 * 1024, DiskShares: 300), changed.Resources);

        var refused = ledger.Send(new LedgerCommands.PatchVmResources(TenantId.System, "web",
            new VmResourcesPatch([VmResourcesPatch.DiskIops], new VmResources(DiskIops: 0))));
        Assert.Equal(RefusalKind.Invalid, refused.Refusal?.Kind);
        Assert.Equal(["diskIops"], refused.Refusal!.Errors.Select(e => e.Field));
        Assert.Equal(8 * 1024 * 1024, ledger.State.Vms[vm.Id].Spec.EffectiveResources.DiskBps);

        var created = ledger.Send(new LedgerCommands.CreateVm(TenantId.System,
            new VmSpec("big", 1, 256, "demo", RestartPolicy.OnFailure, new VmResources(DiskBps: 1)), VmId.New()));
        Assert.Contains(created.Refusal!.Errors, e => e.Field == "diskBps");
    }
}
