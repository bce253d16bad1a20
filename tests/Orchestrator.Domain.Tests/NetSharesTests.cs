using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Shares;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Domain.Tests;

public class NetSharesTests
{
    private const long MiB = 1024 * 1024;
    private static readonly HostNetCapacity Host = new(3 * MiB);

    private static NetShares.Member Vm(int shares, long? limit = null) => new(VmId.New(), shares, limit);

    [Fact]
    public void Shares_two_to_one_and_a_limited_vm_divide_the_host_and_each_may_borrow_up_to_its_ceiling()
    {
        var heavy = Vm(200);
        var light = Vm(100);
        var capped = Vm(100, limit: MiB / 2);

        var rates = NetShares.Divide(Host, [heavy, light, capped]);

        // The capped VM's share (3/4 MiB/s) is above its limit: it is guaranteed its limit, the rest goes 2:1.
        Assert.Equal(new NetRate(MiB / 2, MiB / 2), rates[capped.VmId]);
        Assert.Equal(2.0, (double)rates[heavy.VmId].GuaranteedBps / rates[light.VmId].GuaranteedBps, 3);
        Assert.Equal(3 * MiB, rates[heavy.VmId].CeilingBps);
        Assert.Equal(3 * MiB, rates[light.VmId].CeilingBps);
        Assert.InRange(rates.Values.Sum(r => r.GuaranteedBps), 3 * MiB - 2, 3 * MiB);
    }

    [Fact]
    public void No_capacity_configured_means_limits_only_and_an_unlimited_vm_is_not_shaped()
    {
        var free = Vm(100);
        var limited = Vm(200, limit: MiB);

        var rates = NetShares.Divide(new HostNetCapacity(0), [free, limited]);

        Assert.Equal(new NetRate(MiB, MiB), rates[limited.VmId]);
        Assert.False(rates.ContainsKey(free.VmId));
    }

    [Fact]
    public void A_vm_alone_may_use_the_whole_host_and_a_limit_above_the_host_is_capped_at_it()
    {
        var alone = Vm(100, limit: 10 * MiB);

        Assert.Equal(new NetRate(3 * MiB, 3 * MiB), NetShares.Divide(Host, [alone])[alone.VmId]);
    }

    private static readonly Arbitrary<(long Capacity, NetShares.Member[] Vms)> Cases = (
        from capacity in Gen.Choose(1, 1_000_000).Select(c => c * 1024L)
        from count in Gen.Choose(1, 12)
        from vms in Gen.CollectToArray(Enumerable.Range(0, count), _ =>
            from shares in Gen.Choose(NetLimits.MinShares, NetLimits.MaxShares)
            from limit in Gen.Frequency((1, Gen.Constant<long?>(null)),
                (2, Gen.Choose((int)(NetLimits.MinBps / 1024), 2_000_000).Select(l => (long?)(l * 1024L))))
            select new NetShares.Member(VmId.New(), shares, limit))
        select (capacity, vms)).ToArbitrary();

    [Property(MaxTest = 300)]
    public Property Guarantees_never_exceed_a_limit_nor_together_the_host_and_uncapped_ones_follow_the_shares() => Prop.ForAll(Cases, c =>
    {
        var rates = NetShares.Divide(new HostNetCapacity(c.Capacity), c.Vms);
        var withinLimits = c.Vms.All(v => rates[v.VmId].GuaranteedBps <= rates[v.VmId].CeilingBps
                                          && rates[v.VmId].CeilingBps <= Math.Min(v.LimitBps ?? long.MaxValue, c.Capacity));
        // Each guarantee is at least 1 byte/s (tc's least rate), so the sum may pass the capacity by that much per VM.
        var withinHost = rates.Values.Sum(r => r.GuaranteedBps) <= c.Capacity + c.Vms.Length;
        // Two VMs guaranteed less than their limits got their shares of the same rest: proportional, to a byte's rounding.
        var uncapped = c.Vms.Where(v => rates[v.VmId].GuaranteedBps < (v.LimitBps ?? c.Capacity)).ToList();
        var proportional = uncapped.Zip(uncapped.Skip(1)).All(p =>
            Math.Abs((decimal)rates[p.First.VmId].GuaranteedBps * p.Second.Shares - (decimal)rates[p.Second.VmId].GuaranteedBps * p.First.Shares)
            <= p.First.Shares + p.Second.Shares);
        return (withinLimits && withinHost && proportional).Label($"within limits {withinLimits}, within host {withinHost}, proportional {proportional}");
    });

    [Fact]
    public void Out_of_range_network_limits_are_refused_naming_the_field_and_a_patch_is_journaled()
    {
        var errors = new VmResources(NetBps: 1000, NetShares: 0).Validate(vcpus: 1, memoryMiB: 128);
        Assert.Equal(["netBps", "netShares"], errors.Select(e => e.Field));
        Assert.Empty(new VmResources(NetBps: 4 * MiB, NetShares: 200).Validate(1, 128));

        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var vm = ledger.Create("web", resources: new VmResources(NetBps: 4 * MiB));
        var decision = ledger.Send(new LedgerCommands.PatchVmResources(TenantId.System, "web",
            new VmResourcesPatch([VmResourcesPatch.NetBps, VmResourcesPatch.NetShares], new VmResources(NetBps: 8 * MiB, NetShares: 300))));
        Assert.Equal(new VmResources(NetBps: 8 * MiB, NetShares: 300), Assert.IsType<VmResourcesChanged>(Assert.Single(decision.Events)).Resources);

        var refused = ledger.Send(new LedgerCommands.PatchVmResources(TenantId.System, "web",
            new VmResourcesPatch([VmResourcesPatch.NetBps], new VmResources(NetBps: 0))));
        Assert.Equal(RefusalKind.Invalid, refused.Refusal?.Kind);
        Assert.Equal(["netBps"], refused.Refusal!.Errors.Select(e => e.Field));
        Assert.Equal(8 * MiB, ledger.State.Vms[vm.Id].Spec.EffectiveResources.NetBps);
    }
}
