using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>Which hosts a network's VXLAN joins, as the ledger's placements say.</summary>
public class VxlanFabricTests
{
    private static readonly TenantId Acme = new("acme");
    private static readonly TenantId Bolt = new("bolt");

    private static readonly Dictionary<HostId, string> Underlays = new()
    {
        [new HostId("h1")] = "192.0.2.1",
        [new HostId("h2")] = "192.0.2.2",
        [new HostId("h3")] = "192.0.2.3",
    };

    private static LedgerDriver Cluster()
    {
        var ledger = new LedgerDriver();
        foreach (var host in new[] { "h1", "h2", "h3" })
        {
            ledger.Send(new LedgerCommands.RegisterHost(new HostId(host), 64, 1 << 20, "qemu", Labels: new Dictionary<string, string> { ["name"] = host }));
        }

        foreach (var tenant in new[] { Acme, Bolt })
        {
            Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(tenant, TenantQuota.Unlimited)).Refusal);
            Assert.Null(ledger.Send(new NetworkCommands.CreateNetwork(Guid.NewGuid().ToString("N"), tenant, "net", "10.0.0.0/24")).Refusal);
        }

        return ledger;
    }

    private static void Vm(LedgerDriver ledger, TenantId tenant, string name, string host) =>
        Assert.Null(ledger.Send(new LedgerCommands.CreateVm(tenant,
            new VmSpec(name, 1, 64, "demo", HostSelector: [$"name={host}"], Nics: [new VmNic("net")]), VmId.New())).Refusal);

    private static Dictionary<int, string[]> TableOf(LedgerDriver ledger, string host) =>
        (VxlanFabric.Compute(ledger.State, Underlays).GetValueOrDefault(new HostId(host)) ?? [])
        .ToDictionary(p => p.Vni, p => p.Underlays.ToArray());

    [Fact]
    public void A_network_joins_exactly_the_hosts_holding_its_vms_and_another_tenants_network_stays_apart()
    {
        var ledger = Cluster();
        var (acme, bolt) = (ledger.State.FindNetwork(Acme, "net")!.Vni, ledger.State.FindNetwork(Bolt, "net")!.Vni);
        Vm(ledger, Acme, "a1", "h1");
        Vm(ledger, Acme, "a2", "h2");
        Vm(ledger, Bolt, "b2", "h2");

        Assert.Equal(new Dictionary<int, string[]> { [acme] = ["192.0.2.2"] }, TableOf(ledger, "h1"));
        Assert.Equal(new Dictionary<int, string[]> { [acme] = ["192.0.2.1"], [bolt] = [] }, TableOf(ledger, "h2"));
        Assert.Empty(TableOf(ledger, "h3"));

        Vm(ledger, Acme, "a3", "h3");
        Assert.Equal(["192.0.2.2", "192.0.2.3"], TableOf(ledger, "h1")[acme]);
        Assert.Equal(["192.0.2.1", "192.0.2.2"], TableOf(ledger, "h3")[acme]);
    }

    [Fact]
    public void A_deleted_vm_and_a_lost_host_leave_the_peers_of_the_others()
    {
        var ledger = Cluster();
        var acme = ledger.State.FindNetwork(Acme, "net")!.Vni;
        Vm(ledger, Acme, "a1", "h1");
        Vm(ledger, Acme, "a2", "h2");
        Vm(ledger, Acme, "a3", "h3");

        var a2 = ledger.State.FindVm(Acme, "a2")!.Id;
        ledger.Send(new LedgerCommands.DeleteVm(Acme, "a2"));
        Assert.Equal(["192.0.2.2", "192.0.2.3"], TableOf(ledger, "h1")[acme]); // still on h2 until its host let go
        ledger.Send(new LedgerCommands.ConfirmDeleted(a2));
        Assert.Equal(["192.0.2.3"], TableOf(ledger, "h1")[acme]);
        Assert.Empty(TableOf(ledger, "h2"));

        ledger.Send(new LedgerCommands.LoseHost(new HostId("h3")));
        Assert.Equal([], TableOf(ledger, "h1")[acme]);
        Assert.Empty(TableOf(ledger, "h3"));
    }

    [Fact]
    public void A_host_without_an_underlay_address_is_nobodys_peer()
    {
        var ledger = Cluster();
        var acme = ledger.State.FindNetwork(Acme, "net")!.Vni;
        Vm(ledger, Acme, "a1", "h1");
        Vm(ledger, Acme, "a2", "h2");
        var table = VxlanFabric.Compute(ledger.State, new Dictionary<HostId, string> { [new HostId("h1")] = "192.0.2.1" });
        Assert.Equal([], table[new HostId("h1")].Single(p => p.Vni == acme).Underlays);
        Assert.Equal(["192.0.2.1"], table[new HostId("h2")].Single(p => p.Vni == acme).Underlays);
    }

    [Fact]
    public void Tables_compare_by_what_they_program()
    {
        IReadOnlyList<VxlanPeers> a = [new VxlanPeers(1, ["192.0.2.1"])];
        Assert.True(VxlanFabric.Same(a, [new VxlanPeers(1, ["192.0.2.1"])]));
        Assert.False(VxlanFabric.Same(a, [new VxlanPeers(1, ["192.0.2.2"])]));
        Assert.False(VxlanFabric.Same(a, null));
        Assert.True(VxlanFabric.Same([], null));
    }
}
