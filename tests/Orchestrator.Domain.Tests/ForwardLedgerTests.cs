using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>Port forwards in the ledger: granted ranges, one owner per host port, tenants apart, gone with their VM.</summary>
public class ForwardLedgerTests
{
    private static readonly TenantId Acme = new("acme");
    private static readonly TenantId Bolt = new("bolt");

    private static LedgerDriver Ledger()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 64, memoryMiB: 1 << 20);
        Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(Acme, new TenantQuota(ForwardPorts: "20000-20099"))).Refusal);
        Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(Bolt, new TenantQuota(ForwardPorts: "20050-20149"))).Refusal);
        foreach (var tenant in new[] { Acme, Bolt })
        {
            Assert.Null(ledger.Send(new NetworkCommands.CreateNetwork(Guid.NewGuid().ToString("N"), tenant, "net", "10.0.0.0/24")).Refusal);
            Assert.Null(ledger.Send(new NetworkCommands.CreateNetwork(Guid.NewGuid().ToString("N"), tenant, "closed", "10.0.1.0/24", Gateway: false)).Refusal);
            Assert.Null(ledger.Send(new LedgerCommands.CreateVm(tenant,
                new VmSpec("web", 1, 64, "demo", Nics: [new VmNic("closed"), new VmNic("net", "10.0.0.5")]), VmId.New())).Refusal);
        }

        return ledger;
    }

    private static Decision Forward(LedgerDriver ledger, TenantId tenant, int hostPort, string vm = "web", int port = 80, string protocol = "tcp",
        string network = "net") =>
        ledger.Send(new ForwardCommands.AddForward("f" + Guid.NewGuid().ToString("N")[..8], tenant, network, hostPort, vm, port, protocol));

    private static FieldError Refused(Decision decision, RefusalKind kind)
    {
        Assert.NotNull(decision.Refusal);
        Assert.Equal(kind, decision.Refusal!.Kind);
        return Assert.Single(decision.Refusal.Errors);
    }

    [Fact]
    public void A_forward_reaches_the_vms_nic_on_that_network_and_its_host_is_told_with_the_nic()
    {
        var ledger = Ledger();
        Assert.Null(Forward(ledger, Acme, 20000).Refusal);
        Assert.Null(Forward(ledger, Acme, 20001, port: 53, protocol: "udp").Refusal);
        var vm = ledger.State.FindVm(Acme, "web")!;
        var nics = ledger.State.NicsOf(vm);
        Assert.Null(nics[0].Forwards);
        Assert.Equal([new NicForward("tcp", 20000, 80), new NicForward("udp", 20001, 53)], nics[1].Forwards!);
        Assert.Equal([vm.Id], LedgerState.ForwardsTouchedBy(ledger.Journal[^1]));
        Assert.Equal(2, ledger.State.ForwardsOf(Acme, ledger.State.FindNetwork(Acme, "net")!.Id).Count());
    }

    [Theory]
    [InlineData(19999, 80, "tcp", "hostPort")]
    [InlineData(20100, 80, "tcp", "hostPort")]
    [InlineData(20000, 0, "tcp", "port")]
    [InlineData(20000, 65536, "tcp", "port")]
    [InlineData(20000, 80, "sctp", "protocol")]
    public void A_port_outside_the_granted_range_or_a_bad_value_is_refused_naming_the_field(int hostPort, int port, string protocol, string field)
    {
        var ledger = Ledger();
        Assert.Equal(field, Refused(Forward(ledger, Acme, hostPort, port: port, protocol: protocol), RefusalKind.Invalid).Field);
    }

    [Fact]
    public void A_tenant_with_no_granted_ports_and_a_network_without_gateway_get_no_forward()
    {
        var ledger = Ledger();
        Assert.Null(ledger.Send(new LedgerCommands.UpdateTenant(Bolt, TenantQuota.Unlimited, null)).Refusal);
        Assert.Contains("quota.forwardPorts", Refused(Forward(ledger, Bolt, 20050), RefusalKind.Invalid).Message);
        Assert.Equal("network", Refused(Forward(ledger, Acme, 20000, network: "closed"), RefusalKind.Invalid).Field);
        Assert.Equal("quota.forwardPorts", Assert.Single(new TenantQuota(ForwardPorts: "20099-20000").Validate()).Field);
        Assert.Equal("quota.forwardPorts", Assert.Single(new TenantQuota(ForwardPorts: "0-10").Validate()).Field);
    }

    [Fact]
    public void A_host_port_is_forwarded_once_in_the_cluster_per_protocol()
    {
        var ledger = Ledger();
        Assert.Null(Forward(ledger, Acme, 20050).Refusal);
        Assert.Equal("hostPort", Refused(Forward(ledger, Acme, 20050, port: 81), RefusalKind.Conflict).Field);
        // Bolt's range overlaps acme's: the port is still taken.
        Assert.Equal("hostPort", Refused(Forward(ledger, Bolt, 20050), RefusalKind.Conflict).Field);
        Assert.Null(Forward(ledger, Bolt, 20050, protocol: "udp").Refusal);
    }

    [Fact]
    public void Another_tenants_vm_network_and_forward_are_not_found()
    {
        var ledger = Ledger();
        Assert.Null(Forward(ledger, Acme, 20000).Refusal);
        var acmeForward = ledger.State.Forwards.Values.Single();
        Assert.Null(ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec("solo", 1, 64, "demo", Nics: [new VmNic("net")]), VmId.New())).Refusal);
        Assert.Equal(RefusalKind.NotFound, Forward(ledger, Bolt, 20060, vm: "solo").Refusal!.Kind);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new ForwardCommands.RemoveForward(Bolt, "net", acmeForward.Id)).Refusal!.Kind);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new ForwardCommands.AddForward("fx", new TenantId("carl"), "net", 20000, "web", 80, "tcp")).Refusal!.Kind);
        Assert.Empty(ledger.State.ForwardsOf(Bolt, ledger.State.FindNetwork(Bolt, "net")!.Id));
        Assert.Null(ledger.Send(new ForwardCommands.RemoveForward(Acme, "net", acmeForward.Id)).Refusal);
        Assert.Empty(ledger.State.Forwards);
    }

    [Fact]
    public void A_deleted_vm_releases_its_forwards_and_their_ports()
    {
        var ledger = Ledger();
        Assert.Null(Forward(ledger, Acme, 20000).Refusal);
        var id = ledger.State.FindVm(Acme, "web")!.Id;
        Assert.Null(ledger.Send(new LedgerCommands.DeleteVm(Acme, "web")).Refusal);
        ledger.Send(new LedgerCommands.ConfirmDeleted(id));
        Assert.Empty(ledger.State.Forwards);
        Assert.Null(ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec("next", 1, 64, "demo", Nics: [new VmNic("net")]), VmId.New())).Refusal);
        Assert.Null(Forward(ledger, Acme, 20000, vm: "next").Refusal);
    }
}
