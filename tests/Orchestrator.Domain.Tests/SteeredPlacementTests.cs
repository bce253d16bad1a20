using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>Host labels, selectors, server groups and reachability, through the ledger's own decisions.</summary>
public class SteeredPlacementTests
{
    private static readonly TenantId Acme = new("acme");

    private static (LedgerDriver Ledger, HashSet<HostId> Unreachable) NewLedger(PlacementStrategy strategy = PlacementStrategy.Spread)
    {
        var unreachable = new HashSet<HostId>();
        var rules = LedgerRules.Create(["demo"]) is var r ? r with { Placement = r.Placement with { Strategy = strategy }, Unreachable = unreachable } : null!;
        var ledger = new LedgerDriver(rules);
        Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(Acme, Tenants.TenantQuota.Unlimited)).Refusal);
        return (ledger, unreachable);
    }

    private static void Host(LedgerDriver ledger, string id, IReadOnlyDictionary<string, string>? labels = null, int cpus = 8) =>
        ledger.Send(new LedgerCommands.RegisterHost(new HostId(id), cpus, 16384, "qemu", Labels: labels));

    private static Decision Create(LedgerDriver ledger, string name, string? group = null, string[]? selector = null, TenantId? tenant = null,
        int memoryMiB = 256) =>
        ledger.Send(new LedgerCommands.CreateVm(tenant ?? Acme,
            new VmSpec(name, 1, memoryMiB, "demo", HostSelector: selector, Group: group), VmId.New()));

    private static VmRecord Vm(LedgerDriver ledger, string name) => ledger.State.FindVm(Acme, name)!;

    private static void Group(LedgerDriver ledger, string name, GroupPolicy policy) =>
        Assert.Null(ledger.Send(new PlacementCommands.CreateGroup(Acme, name, policy)).Refusal);

    // A random cluster and a random stream of VMs with groups and selectors, some hosts unreachable meanwhile.
    private sealed record Workload(int Seed, int Hosts, int Vms, bool Pack);

    private static readonly Arbitrary<Workload> Workloads =
        Gen.Choose(0, int.MaxValue - 1).Zip(Gen.Choose(1, 8)).Zip(Gen.Choose(0, 40)).Zip(Gen.Elements(false, true))
            .Select(t => new Workload(t.Item1.Item1.Item1, t.Item1.Item1.Item2, t.Item1.Item2, t.Item2))
            .ToArbitrary();

    private static readonly string[][] Selectors = [[], ["zone=a"], ["zone!=a"], ["ssd"], ["!ssd"]];

    /// <summary>Runs the workload and checks every placement decision against the rules; returns the first breach.</summary>
    private static string? FirstBreach(Workload w)
    {
        var random = new Random(w.Seed);
        var (ledger, unreachable) = NewLedger(w.Pack ? PlacementStrategy.Pack : PlacementStrategy.Spread);
        for (var i = 0; i < w.Hosts; i++)
        {
            var labels = new Dictionary<string, string> { ["zone"] = random.Next(2) == 0 ? "a" : "b" };
            if (random.Next(2) == 0)
            {
                labels["ssd"] = "true";
            }

            Host(ledger, $"h{i}", labels, cpus: 1 + random.Next(4));
        }

        foreach (var policy in Enum.GetValues<GroupPolicy>())
        {
            Group(ledger, policy.ToWire(), policy);
        }

        for (var i = 0; i < w.Vms; i++)
        {
            unreachable.Clear();
            unreachable.UnionWith(ledger.State.Hosts.Keys.Where(_ => random.Next(5) == 0));
            string? group = random.Next(3) == 0 ? null : GroupPolicies.Names[random.Next(4)];
            var selector = Selectors[random.Next(Selectors.Length)];
            var decision = Create(ledger, $"vm{i}", group, selector, memoryMiB: 256 * (1 + random.Next(16)));
            if (decision.Refusal is { } refusal)
            {
                return $"vm{i} refused: {refusal.Message}";
            }

            if (decision.Events.OfType<LedgerEvents.VmPlaced>().SingleOrDefault() is not { } placed)
            {
                continue;
            }

            var host = ledger.State.Hosts[placed.HostId];
            var vm = ledger.State.Vms[placed.VmId];
            var others = group is null ? [] : ledger.State.MembersOf(Acme, group).Where(m => m.Id != vm.Id && m.Host is not null).ToList();
            if (unreachable.Contains(host.Id))
            {
                return $"vm{i} placed on unreachable {host.Id}";
            }

            if (!HostSelectors.Hold(HostSelectors.Of(vm.Spec), host.EffectiveLabels))
            {
                return $"vm{i} ({string.Join(",", selector)}) placed on {host.Id} labelled {string.Join(",", host.EffectiveLabels)}";
            }

            if (group == "anti-affinity" && others.Any(m => m.Host == host.Id))
            {
                return $"vm{i} placed beside another anti-affinity member on {host.Id}";
            }

            if (group == "affinity" && others.Any(m => m.Host != host.Id))
            {
                return $"vm{i} placed on {host.Id} away from its affinity members on {string.Join(",", others.Select(m => m.Host))}";
            }
        }

        // The members each group is known by (built when first asked, then kept by Apply) are the VMs that name it.
        foreach (var name in GroupPolicies.Names)
        {
            var known = ledger.State.MembersOf(Acme, name).Select(m => m.Id).ToHashSet();
            var naming = ledger.State.VmsOf(Acme).Where(v => v.Spec.Group == name).Select(v => v.Id).ToHashSet();
            if (!known.SetEquals(naming))
            {
                return $"group {name} knows {known.Count} member(s), {naming.Count} VM(s) name it";
            }
        }

        return null;
    }

    [Property(MaxTest = 200)]
    public Property Placements_keep_hard_groups_selectors_and_reachability() => Prop.ForAll(Workloads, w =>
        FirstBreach(w) is not { } breach ? true.ToProperty() : false.Label(breach));

    [Fact]
    public void A_vm_no_host_satisfies_waits_pending_naming_the_selector()
    {
        var (ledger, _) = NewLedger();
        Host(ledger, "h1", new Dictionary<string, string> { ["zone"] = "b" });
        Assert.Null(Create(ledger, "web", selector: ["zone=a"]).Refusal);
        var vm = Vm(ledger, "web");
        Assert.Equal(VmStatus.Pending, vm.Status);
        Assert.Contains("zone=a", vm.Reason);

        // An admin labels the host: the waiting VM is placed there in the same decision.
        var labelled = ledger.Send(new PlacementCommands.SetHostLabels(new HostId("h1"), new Dictionary<string, string> { ["zone"] = "a" }, []));
        Assert.Contains(labelled.Events, e => e is LedgerEvents.VmPlaced);
        Assert.Equal("h1", Vm(ledger, "web").Host!.Value.Value);
    }

    [Fact]
    public void Host_labels_come_from_the_config_at_first_registration_and_an_admin_changes_them_after()
    {
        var (ledger, _) = NewLedger();
        Host(ledger, "h1", new Dictionary<string, string> { ["zone"] = "a", ["ssd"] = "true" });
        ledger.Send(new PlacementCommands.SetHostLabels(new HostId("h1"), new Dictionary<string, string> { ["rack"] = "r1" }, ["ssd"]));
        // The node restarts with the same config: the admin's labels stand.
        ledger.Send(new LedgerCommands.RegisterHost(new HostId("h1"), 8, 16384, "qemu", "elsewhere",
            Labels: new Dictionary<string, string> { ["zone"] = "a", ["ssd"] = "true" }));
        Assert.Equal(new Dictionary<string, string> { ["rack"] = "r1", ["zone"] = "a" }, ledger.State.Hosts[new HostId("h1")].EffectiveLabels);

        var bad = ledger.Send(new PlacementCommands.SetHostLabels(new HostId("h1"), new Dictionary<string, string> { ["Zone A"] = "x" }, []));
        Assert.Equal(RefusalKind.Invalid, bad.Refusal!.Kind);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new PlacementCommands.SetHostLabels(new HostId("nope"), new Dictionary<string, string>(), [])).Refusal!.Kind);
    }

    [Fact]
    public void A_hard_anti_affinity_group_with_more_members_than_hosts_leaves_the_extra_vm_pending_with_the_reason()
    {
        var (ledger, _) = NewLedger();
        Host(ledger, "h1");
        Host(ledger, "h2");
        Group(ledger, "web", GroupPolicy.AntiAffinity);
        Create(ledger, "web1", "web");
        Create(ledger, "web2", "web");
        Create(ledger, "web3", "web");
        Assert.NotEqual(Vm(ledger, "web1").Host, Vm(ledger, "web2").Host);
        Assert.Equal(VmStatus.Pending, Vm(ledger, "web3").Status);
        Assert.Contains("anti-affinity group 'web'", Vm(ledger, "web3").Reason);

        // A third host: the waiting member goes there.
        Host(ledger, "h3");
        Assert.Equal("h3", Vm(ledger, "web3").Host!.Value.Value);
    }

    [Fact]
    public void A_soft_anti_affinity_group_spreads_and_then_shares_a_host()
    {
        var (ledger, _) = NewLedger(PlacementStrategy.Pack);
        Host(ledger, "h1");
        Host(ledger, "h2");
        Group(ledger, "web", GroupPolicy.SoftAntiAffinity);
        Create(ledger, "web1", "web");
        Create(ledger, "web2", "web");
        Create(ledger, "web3", "web");
        Assert.NotEqual(Vm(ledger, "web1").Host, Vm(ledger, "web2").Host); // pack alone would have stacked them
        Assert.NotNull(Vm(ledger, "web3").Host);
    }

    [Fact]
    public void Affinity_keeps_members_together_and_soft_affinity_goes_elsewhere_when_full()
    {
        var (ledger, _) = NewLedger();
        Host(ledger, "h1", cpus: 1);
        Host(ledger, "h2", cpus: 1);
        Group(ledger, "db", GroupPolicy.Affinity);
        Group(ledger, "cache", GroupPolicy.SoftAffinity);
        // 4 vCPUs per host at the default ratio: three members fit beside each other, the fifth does not.
        for (var i = 1; i <= 5; i++)
        {
            Create(ledger, $"db{i}", "db");
        }

        var dbHost = Vm(ledger, "db1").Host;
        Assert.All(Enumerable.Range(1, 4), i => Assert.Equal(dbHost, Vm(ledger, $"db{i}").Host));
        Assert.Equal(VmStatus.Pending, Vm(ledger, "db5").Status);
        Assert.Contains("affinity group 'db'", Vm(ledger, "db5").Reason);

        Create(ledger, "cache1", "cache");
        Create(ledger, "cache2", "cache");
        Assert.NotEqual(dbHost, Vm(ledger, "cache1").Host);
        Assert.Equal(Vm(ledger, "cache1").Host, Vm(ledger, "cache2").Host);
    }

    [Fact]
    public void Anti_affinity_holds_when_a_lost_hosts_vm_is_placed_again()
    {
        var (ledger, _) = NewLedger();
        Host(ledger, "h1");
        Host(ledger, "h2");
        Host(ledger, "h3");
        Group(ledger, "web", GroupPolicy.AntiAffinity);
        Create(ledger, "web1", "web");
        Create(ledger, "web2", "web");
        var lost = Vm(ledger, "web1").Host!.Value;
        ledger.Send(new LedgerCommands.LoseHost(lost));
        var moved = Vm(ledger, "web1");
        Assert.NotNull(moved.Host);
        Assert.NotEqual(Vm(ledger, "web2").Host, moved.Host);

        // Nowhere left: the next loss leaves its member pending, saying why.
        ledger.Send(new LedgerCommands.LoseHost(moved.Host!.Value));
        Assert.Equal(VmStatus.Pending, Vm(ledger, "web1").Status);
        Assert.Contains("anti-affinity group 'web'", Vm(ledger, "web1").Reason);
    }

    [Fact]
    public void Groups_belong_to_their_tenant()
    {
        var (ledger, _) = NewLedger();
        Host(ledger, "h1");
        Group(ledger, "web", GroupPolicy.AntiAffinity);
        Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(new TenantId("other"), Tenants.TenantQuota.Unlimited)).Refusal);
        var refused = Create(ledger, "sneaky", "web", tenant: new TenantId("other")).Refusal;
        Assert.Equal(RefusalKind.NotFound, refused!.Kind);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new PlacementCommands.DeleteGroup(new TenantId("other"), "web")).Refusal!.Kind);

        Create(ledger, "web1", "web");
        Assert.Equal(RefusalKind.Conflict, ledger.Send(new PlacementCommands.DeleteGroup(Acme, "web")).Refusal!.Kind);
        Assert.Equal(RefusalKind.Conflict, ledger.Send(new PlacementCommands.CreateGroup(Acme, "web", GroupPolicy.Affinity)).Refusal!.Kind);
    }

    [Fact]
    public void An_unreachable_host_takes_no_new_vms_until_it_is_reachable_again()
    {
        var (ledger, unreachable) = NewLedger();
        Host(ledger, "h1");
        unreachable.Add(new HostId("h1"));
        Create(ledger, "web1");
        Assert.Equal(VmStatus.Pending, Vm(ledger, "web1").Status);
        Assert.Contains("unreachable", Vm(ledger, "web1").Reason);

        unreachable.Clear();
        var placed = ledger.Send(new PlacementCommands.PlacePending());
        Assert.Contains(placed.Events, e => e is LedgerEvents.VmPlaced);
        Assert.Equal("h1", Vm(ledger, "web1").Host!.Value.Value);
    }
}
