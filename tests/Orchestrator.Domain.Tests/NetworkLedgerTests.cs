using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>Tenant networks and IPAM in the ledger.</summary>
public class NetworkLedgerTests
{
    private static readonly TenantId Acme = new("acme");
    private static readonly TenantId Bolt = new("bolt");

    private static LedgerDriver Ledger(params TenantId[] tenants)
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 64, memoryMiB: 1 << 20);
        ledger.Host("h2", cpus: 64, memoryMiB: 1 << 20);
        foreach (var tenant in tenants)
        {
            Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(tenant, TenantQuota.Unlimited)).Refusal);
        }

        return ledger;
    }

    private static Decision Network(LedgerDriver ledger, TenantId tenant, string name, string cidr = "10.0.0.0/24") =>
        ledger.Send(new NetworkCommands.CreateNetwork(Guid.NewGuid().ToString("N"), tenant, name, cidr));

    private static Decision Vm(LedgerDriver ledger, TenantId tenant, string name, string network, string? ip = null) =>
        ledger.Send(new LedgerCommands.CreateVm(tenant, new VmSpec(name, 1, 64, "demo", Nics: [new VmNic(network, ip)]), VmId.New()));

    private static VmNic NicOf(LedgerDriver ledger, TenantId tenant, string vm) => ledger.State.FindVm(tenant, vm)!.Spec.Nics!.Single();

    private static void Delete(LedgerDriver ledger, TenantId tenant, string vm)
    {
        var id = ledger.State.FindVm(tenant, vm)!.Id;
        ledger.Send(new LedgerCommands.DeleteVm(tenant, vm));
        ledger.Send(new LedgerCommands.ConfirmDeleted(id));
    }

    [Fact]
    public void The_network_and_address_quotas_refuse_the_one_too_many_naming_what_is_in_use_and_a_delete_frees_room()
    {
        var ledger = Ledger(Acme, Bolt);
        Assert.Null(ledger.Send(new LedgerCommands.UpdateTenant(Acme, new TenantQuota(MaxNetworks: 1, MaxAddresses: 2), null)).Refusal);
        Assert.Null(Network(ledger, Acme, "net").Refusal);
        var network = Network(ledger, Acme, "second").Refusal!;
        Assert.Equal(RefusalKind.Forbidden, network.Kind);
        Assert.Equal(new FieldError("name", "quota exceeded: 1 of 1 networks in use"), network.Errors.Single());

        Assert.Null(Vm(ledger, Acme, "a", "net").Refusal);
        var twoNics = ledger.Send(new LedgerCommands.CreateVm(Acme,
            new VmSpec("b", 1, 64, "demo", Nics: [new VmNic("net"), new VmNic("net")]), VmId.New())).Refusal!;
        Assert.Equal(new FieldError("nics", "quota exceeded: 1 of 2 addresses in use, 2 more asked"), twoNics.Errors.Single());
        Assert.Null(ledger.State.FindVm(Acme, "b")); // refused whole: no VM, no address
        Assert.Equal(1, ledger.State.AddressesOf(Acme));
        Assert.Null(Vm(ledger, Acme, "c", "net").Refusal);
        Assert.Equal(RefusalKind.Forbidden, Vm(ledger, Acme, "d", "net").Refusal!.Kind);

        Delete(ledger, Acme, "a");
        Assert.Null(Vm(ledger, Acme, "d", "net").Refusal);
        Assert.Null(Network(ledger, Bolt, "second").Refusal); // another tenant's quota is its own
    }

    [Fact]
    public void Two_tenants_may_use_one_cidr_and_neither_sees_the_others_network()
    {
        var ledger = Ledger(Acme, Bolt);
        Assert.Null(Network(ledger, Acme, "net").Refusal);
        Assert.Null(Network(ledger, Bolt, "net").Refusal);
        var (a, b) = (ledger.State.FindNetwork(Acme, "net")!, ledger.State.FindNetwork(Bolt, "net")!);
        Assert.Equal(a.Cidr, b.Cidr);
        Assert.NotEqual(a.Vni, b.Vni);

        Assert.Null(Vm(ledger, Acme, "a", "net").Refusal);
        Assert.Null(Vm(ledger, Bolt, "b", "net").Refusal);
        Assert.Equal("10.0.0.2", NicOf(ledger, Acme, "a").Ip);
        Assert.Equal("10.0.0.2", NicOf(ledger, Bolt, "b").Ip); // the same address, on another tenant's network

        ledger.Send(new LedgerCommands.CreateTenant(new TenantId("carl"), TenantQuota.Unlimited));
        var stranger = Vm(ledger, new TenantId("carl"), "c", "net");
        Assert.Equal("nics[0].network", stranger.Refusal!.Errors.Single().Field);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new NetworkCommands.DeleteNetwork(new TenantId("carl"), "net")).Refusal!.Kind);
    }

    [Fact]
    public void A_network_in_use_is_not_deleted_and_its_addresses_come_back_when_the_vms_go()
    {
        var ledger = Ledger(Acme);
        Network(ledger, Acme, "net");
        Vm(ledger, Acme, "a", "net");
        var busy = ledger.Send(new NetworkCommands.DeleteNetwork(Acme, "net"));
        Assert.Equal(RefusalKind.Conflict, busy.Refusal!.Kind);

        Delete(ledger, Acme, "a");
        Vm(ledger, Acme, "b", "net");
        Assert.Equal("10.0.0.2", NicOf(ledger, Acme, "b").Ip);
        Delete(ledger, Acme, "b");
        Assert.Null(ledger.Send(new NetworkCommands.DeleteNetwork(Acme, "net")).Refusal);
        Assert.Null(ledger.State.FindNetwork(Acme, "net"));
    }

    [Theory]
    [InlineData("10.0.0.1", "nics[0].ip", RefusalKind.Invalid)] // the router
    [InlineData("10.0.0.0", "nics[0].ip", RefusalKind.Invalid)]
    [InlineData("10.0.0.255", "nics[0].ip", RefusalKind.Invalid)]
    [InlineData("10.0.1.7", "nics[0].ip", RefusalKind.Invalid)]
    [InlineData("10.0.0.7.1", "nics[0].ip", RefusalKind.Invalid)]
    [InlineData("10.0.0.9", "nics[0].ip", RefusalKind.Conflict)] // taken by "first"
    public void An_address_asked_for_outside_the_guests_range_or_taken_is_refused_naming_the_field(string ip, string field, RefusalKind kind)
    {
        var ledger = Ledger(Acme);
        Network(ledger, Acme, "net");
        Assert.Null(Vm(ledger, Acme, "first", "net", "10.0.0.9").Refusal);
        Assert.Equal("10.0.0.9", NicOf(ledger, Acme, "first").Ip);
        var refused = Vm(ledger, Acme, "second", "net", ip);
        Assert.Equal(kind, refused.Refusal!.Kind);
        Assert.Equal(field, refused.Refusal.Errors.Single().Field);
        Assert.Empty(refused.Events);
    }

    [Theory]
    [InlineData("bad", "cidr")]
    [InlineData("10.0.0.1/24", "cidr")]
    [InlineData("10.0.0.0/8", "cidr")]
    [InlineData("10.0.0.0/30", "cidr")]
    public void A_bad_cidr_is_refused_naming_the_field(string cidr, string field)
    {
        var refused = Network(Ledger(Acme), Acme, "net", cidr);
        Assert.Equal(RefusalKind.Invalid, refused.Refusal!.Kind);
        Assert.Equal(field, refused.Refusal.Errors.Single().Field);
    }

    [Fact]
    public void A_tenant_has_at_most_its_share_of_networks()
    {
        var ledger = Ledger(Acme);
        for (var i = 0; i < NetworkRecord.MaxPerTenant; i++)
        {
            Assert.Null(Network(ledger, Acme, $"n{i}").Refusal);
        }

        Assert.Equal(RefusalKind.Forbidden, Network(ledger, Acme, "one-more").Refusal!.Kind);
    }

    [Fact]
    public void A_vm_keeps_its_address_and_mac_when_its_host_is_lost_and_a_snapshot_keeps_the_leases()
    {
        var ledger = Ledger(Acme);
        Network(ledger, Acme, "net");
        Vm(ledger, Acme, "a", "net");
        var before = ledger.State.FindVm(Acme, "a")!;
        ledger.Send(new LedgerCommands.LoseHost(before.Host!.Value));
        var after = ledger.State.FindVm(Acme, "a")!;
        Assert.NotEqual(before.Host, after.Host);
        Assert.Equal(before.Spec.Nics!.Single(), after.Spec.Nics!.Single());
        Assert.Matches("^02(:[0-9a-f]{2}){5}$", after.Spec.Nics!.Single().Mac);
        Assert.Equal(after.Spec.Nics!.Single().Mac, ledger.State.AssignmentOf(after).Nics!.Single().Mac);

        var state = ledger.State;
        var rebuilt = LedgerState.FromRecords(state.Hosts.Values, state.Vms.Values, state.Tenants.Values, networks: state.Networks.Values);
        Assert.Equal(state.LeasesOf(state.FindNetwork(Acme, "net")!.Id).Addresses, rebuilt.LeasesOf(rebuilt.FindNetwork(Acme, "net")!.Id).Addresses);
        Assert.Equal(RefusalKind.Conflict, rebuilt.Decide(new LedgerCommands.CreateVm(Acme,
            new VmSpec("b", 1, 64, "demo", Nics: [new VmNic("net", "10.0.0.2")]), VmId.New()), ledger.Rules, LedgerDriver.Now).Refusal!.Kind);
    }

    /// <summary>A step: create a VM (asking for an address or not), or delete one of those that exist.</summary>
    public sealed record Step(bool Create, int Pick, bool Ask);

    private static readonly Arbitrary<Step[]> Steps = ArbMap.Default.ArbFor<Step[]>();

    [Property(MaxTest = 200)]
    public Property No_address_or_mac_is_ever_held_twice_and_an_address_asked_for_is_honoured_or_refused() => Prop.ForAll(Steps, steps =>
    {
        var ledger = Ledger(Acme);
        Network(ledger, Acme, "net", "10.0.0.0/28"); // 13 guest addresses: creates run out and deletes make room
        var names = new List<string>();
        var n = 0;
        foreach (var step in steps.Where(s => s is not null))
        {
            if (step.Create || names.Count == 0)
            {
                var name = $"vm{n++}";
                var asked = step.Ask ? $"10.0.0.{2 + Math.Abs(step.Pick % 13)}" : null;
                var decision = Vm(ledger, Acme, name, "net", asked);
                if (decision.Refusal is null)
                {
                    names.Add(name);
                    if (asked is not null && NicOf(ledger, Acme, name).Ip != asked)
                    {
                        return false.Label($"{name} asked for {asked} and got {NicOf(ledger, Acme, name).Ip}");
                    }
                }
                else if (decision.Refusal.Kind != RefusalKind.Conflict)
                {
                    return false.Label($"{name} was refused for another reason than a taken address: {decision.Refusal.Message}");
                }
            }
            else
            {
                var name = names[Math.Abs(step.Pick % names.Count)];
                Delete(ledger, Acme, name);
                names.Remove(name);
            }

            var nics = names.Select(v => NicOf(ledger, Acme, v)).ToList();
            if (nics.Select(x => x.Ip).Distinct().Count() != nics.Count || nics.Select(x => x.Mac).Distinct().Count() != nics.Count)
            {
                return false.Label($"an address or MAC is held twice: {string.Join(", ", nics)}");
            }
        }

        return true.ToProperty();
    });
}
