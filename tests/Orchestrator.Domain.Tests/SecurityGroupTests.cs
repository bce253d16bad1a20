using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>Security groups: the rule model, its validation, and what the ledger resolves for a NIC's host.</summary>
public class SecurityGroupTests
{
    private static readonly TenantId Acme = new("acme");
    private static readonly TenantId Bolt = new("bolt");

    [Theory]
    [InlineData("tcp", 8080, null, "10.0.1.0/24", null, "tcp 8080 from 10.0.1.0/24")]
    [InlineData("UDP", 5000, 5010, null, null, "udp 5000-5010 from 0.0.0.0/0")]
    [InlineData("icmp", null, null, "192.0.2.7", null, "icmp from 192.0.2.7/32")]
    [InlineData("any", null, null, null, "web", "any from group web")]
    public void A_valid_rule_is_normalised(string protocol, int? from, int? to, string? cidr, string? group, string shown)
    {
        var (rule, errors) = SecurityRule.Create("r1", protocol, from, to, cidr, group);
        Assert.Empty(errors);
        Assert.Equal(shown, rule!.ToString());
    }

    [Theory]
    [InlineData("sctp", 80, null, null, null, "protocol")]
    [InlineData(null, 80, null, null, null, "protocol")]
    [InlineData("tcp", null, null, null, null, "portFrom")]
    [InlineData("tcp", 0, null, null, null, "portFrom")]
    [InlineData("udp", 70000, null, null, null, "portFrom")]
    [InlineData("tcp", 9000, 8000, null, null, "portTo")]
    [InlineData("tcp", 80, 65536, null, null, "portTo")]
    [InlineData("icmp", 80, null, null, null, "portFrom")]
    [InlineData("tcp", 80, null, "10.0.0.1/24", null, "remoteCidr")]
    [InlineData("tcp", 80, null, "10.0.0.0/33", null, "remoteCidr")]
    [InlineData("tcp", 80, null, "not-an-address", null, "remoteCidr")]
    [InlineData("tcp", 80, null, "10.0.0.0/24", "web", "remoteGroup")]
    [InlineData("tcp", 80, null, null, "Web!", "remoteGroup")]
    public void A_bad_rule_is_refused_naming_the_field(string? protocol, int? from, int? to, string? cidr, string? group, string field)
    {
        var (rule, errors) = SecurityRule.Create("r1", protocol, from, to, cidr, group);
        Assert.Null(rule);
        Assert.Equal(field, Assert.Single(errors).Field);
    }

    private static LedgerDriver Ledger()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 64, memoryMiB: 1 << 20);
        foreach (var tenant in new[] { Acme, Bolt })
        {
            Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(tenant, TenantQuota.Unlimited)).Refusal);
            Assert.Null(ledger.Send(new NetworkCommands.CreateNetwork(Guid.NewGuid().ToString("N"), tenant, "net", "10.0.0.0/24")).Refusal);
        }

        return ledger;
    }

    private static Decision Group(LedgerDriver ledger, TenantId tenant, string name) =>
        ledger.Send(new SecurityGroupCommands.CreateSecurityGroup(Guid.NewGuid().ToString("N"), tenant, name));

    private static Decision Rule(LedgerDriver ledger, TenantId tenant, string group, string id, string protocol, int? port, string? cidr = null,
        string? remoteGroup = null) =>
        ledger.Send(new SecurityGroupCommands.AddSecurityRule(tenant, group, SecurityRule.Create(id, protocol, port, null, cidr, remoteGroup).Rule!));

    private static Decision Vm(LedgerDriver ledger, TenantId tenant, string name, string ip, params string[] groups) =>
        ledger.Send(new LedgerCommands.CreateVm(tenant,
            new VmSpec(name, 1, 64, "demo", Nics: [new VmNic("net", ip, SecurityGroups: groups.Length > 0 ? groups : null)]), VmId.New()));

    private static IReadOnlyList<InboundRule> InboundOf(LedgerDriver ledger, TenantId tenant, string vm) =>
        ledger.State.NicsOf(ledger.State.FindVm(tenant, vm)!).Single().Inbound ?? [];

    [Fact]
    public void A_nics_groups_resolve_to_the_rules_its_host_enforces_and_a_remote_group_to_its_members_addresses()
    {
        var ledger = Ledger();
        Assert.Null(Group(ledger, Acme, "web").Refusal);
        Assert.Null(Group(ledger, Acme, "db").Refusal);
        Assert.Null(Rule(ledger, Acme, "web", "r1", "tcp", 8080, "10.0.1.0/24").Refusal);
        Assert.Null(Rule(ledger, Acme, "db", "r1", "tcp", 5432, remoteGroup: "web").Refusal);
        Assert.Null(Vm(ledger, Acme, "front", "10.0.0.5", "web").Refusal);
        Assert.Null(Vm(ledger, Acme, "back", "10.0.0.9", "db").Refusal);
        Assert.Null(Vm(ledger, Acme, "plain", "10.0.0.11").Refusal);

        Assert.Equal([new InboundRule("tcp", 8080, 8080, "10.0.1.0/24")], InboundOf(ledger, Acme, "front"));
        Assert.Equal([new InboundRule("tcp", 5432, 5432, "10.0.0.5/32")], InboundOf(ledger, Acme, "back"));
        Assert.Empty(InboundOf(ledger, Acme, "plain"));

        // A running VM's groups change: it joins web, so the db rule now admits it too.
        Assert.Null(ledger.Send(new SecurityGroupCommands.SetNicSecurityGroups(Acme, "plain", 0, ["web"])).Refusal);
        Assert.Equal(["10.0.0.11/32", "10.0.0.5/32"], InboundOf(ledger, Acme, "back").Select(r => r.Cidr));
        Assert.Contains(ledger.State.VmsAffectedBySecurityGroup(Acme, "web"), v => v.Spec.Name == "back");

        Assert.Null(ledger.Send(new SecurityGroupCommands.RemoveSecurityRule(Acme, "web", "r1")).Refusal);
        Assert.Empty(InboundOf(ledger, Acme, "front"));
    }

    [Fact]
    public void Groups_are_the_tenants_own_and_one_in_use_is_not_deleted()
    {
        var ledger = Ledger();
        Group(ledger, Acme, "web");
        Assert.Equal(RefusalKind.Conflict, Group(ledger, Acme, "web").Refusal!.Kind);
        Assert.Null(Group(ledger, Bolt, "web").Refusal); // another tenant may use the name

        var stranger = Vm(ledger, Bolt, "b", "10.0.0.5", "nope");
        Assert.Equal("nics[0].securityGroups", Assert.Single(stranger.Refusal!.Errors).Field);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new SecurityGroupCommands.RemoveSecurityRule(Bolt, "db", "r1")).Refusal!.Kind);
        Assert.Equal("remoteGroup", Assert.Single(Rule(ledger, Acme, "web", "r1", "tcp", 80, remoteGroup: "ghost").Refusal!.Errors).Field);

        Assert.Null(Vm(ledger, Acme, "a", "10.0.0.5", "web").Refusal);
        Assert.Equal(RefusalKind.Conflict, ledger.Send(new SecurityGroupCommands.DeleteSecurityGroup(Acme, "web")).Refusal!.Kind);
        var badNic = ledger.Send(new SecurityGroupCommands.SetNicSecurityGroups(Acme, "a", 3, []));
        Assert.Equal("nic", Assert.Single(badNic.Refusal!.Errors).Field);
        Assert.Null(ledger.Send(new SecurityGroupCommands.SetNicSecurityGroups(Acme, "a", 0, [])).Refusal);
        Assert.Null(ledger.Send(new SecurityGroupCommands.DeleteSecurityGroup(Acme, "web")).Refusal);
        Assert.Null(ledger.State.FindSecurityGroup(Acme, "web"));
        Assert.NotNull(ledger.State.FindSecurityGroup(Bolt, "web"));
    }

    [Fact]
    public void A_rule_twice_and_a_group_named_by_another_groups_rule_are_conflicts()
    {
        var ledger = Ledger();
        Group(ledger, Acme, "web");
        Group(ledger, Acme, "db");
        Assert.Null(Rule(ledger, Acme, "web", "r1", "tcp", 80).Refusal);
        Assert.Equal("rule", Assert.Single(Rule(ledger, Acme, "web", "r2", "tcp", 80).Refusal!.Errors).Field);
        Assert.Null(Rule(ledger, Acme, "db", "r1", "any", null, remoteGroup: "web").Refusal);
        Assert.Equal(RefusalKind.Conflict, ledger.Send(new SecurityGroupCommands.DeleteSecurityGroup(Acme, "web")).Refusal!.Kind);
    }
}
