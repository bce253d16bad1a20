using System.Collections.Immutable;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.SecurityGroupEvents;

namespace Orchestrator.Domain.Ledger;

/// <summary>Security groups: per-tenant allow rules for traffic into the NICs they are attached to.</summary>
public sealed partial record LedgerState
{
    /// <summary>Security groups by id.</summary>
    public ImmutableDictionary<string, SecurityGroupRecord> SecurityGroups { get; init; } = ImmutableDictionary<string, SecurityGroupRecord>.Empty;

    /// <summary>This state with the security groups a snapshot held.</summary>
    public LedgerState WithSecurityGroups(IEnumerable<SecurityGroupRecord> groups) =>
        this with { SecurityGroups = groups.ToImmutableDictionary(g => g.Id) };

    public SecurityGroupRecord? FindSecurityGroup(TenantId tenant, string name) =>
        SecurityGroups.Values.FirstOrDefault(g => g.Tenant == tenant && g.Name == name);

    public IEnumerable<SecurityGroupRecord> SecurityGroupsOf(TenantId tenant) =>
        SecurityGroups.Values.Where(g => g.Tenant == tenant).OrderBy(g => g.Name, StringComparer.Ordinal);

    /// <summary>
    /// What traffic the NIC lets in beyond its own network's: its groups' rules, a remote group resolved to the addresses
    /// of every NIC of the tenant's that has that group (one /32 each).
    /// </summary>
    public IReadOnlyList<InboundRule> InboundRulesOf(TenantId tenant, VmNic nic)
    {
        var rules = new List<InboundRule>();
        foreach (var group in (nic.SecurityGroups ?? []).Select(name => FindSecurityGroup(tenant, name)).OfType<SecurityGroupRecord>())
        {
            foreach (var rule in group.Rules)
            {
                var sources = rule.RemoteGroup is { } remote ? MemberAddresses(tenant, remote) : [rule.RemoteCidr!];
                rules.AddRange(sources.Select(cidr => new InboundRule(rule.Protocol, rule.PortFrom, rule.PortTo, cidr)));
            }
        }

        return rules.Distinct().ToList();
    }

    private IEnumerable<string> MemberAddresses(TenantId tenant, string group) =>
        VmsOf(tenant).SelectMany(vm => vm.Spec.Nics ?? [])
            .Where(n => n.Ip is not null && (n.SecurityGroups ?? []).Contains(group))
            .Select(n => $"{n.Ip}/32")
            .Distinct()
            .Order(StringComparer.Ordinal);

    /// <summary>The tenant's VMs with a NIC in <paramref name="group"/> or in a group whose rules name it: what a change to it touches.</summary>
    public IEnumerable<VmRecord> VmsAffectedBySecurityGroup(TenantId tenant, string group)
    {
        var groups = SecurityGroupsOf(tenant).Where(g => g.Name == group || g.Rules.Any(r => r.RemoteGroup == group)).Select(g => g.Name).ToHashSet();
        return VmsOf(tenant).Where(vm => (vm.Spec.Nics ?? []).Any(n => (n.SecurityGroups ?? []).Any(groups.Contains)));
    }

    /// <summary>
    /// The VMs whose hosts must rewrite their NICs' rules for <paramref name="evt"/>, as this state (before it, or after)
    /// sees it: a rule added or removed touches its group's VMs and those with rules naming the group; a VM that comes,
    /// goes or changes groups touches itself and every VM with rules naming one of its groups (their addresses changed).
    /// </summary>
    public IEnumerable<VmId> SecurityRulesTouchedBy(ILedgerEvent evt)
    {
        var (tenant, vm, groups) = evt switch
        {
            SecurityRuleAdded e when SecurityGroups.TryGetValue(e.GroupId, out var g) => (e.Tenant, (VmId?)null, new[] { g.Name }),
            SecurityRuleRemoved e when SecurityGroups.TryGetValue(e.GroupId, out var g) => (e.Tenant, null, new[] { g.Name }),
            NicSecurityGroupsChanged e when Vms.TryGetValue(e.VmId, out var v) => (e.Tenant, e.VmId, GroupsOf(v.Spec)),
            LedgerEvents.VmRequested e => (e.Tenant, null, GroupsOf(e.Spec)),
            LedgerEvents.VmReleased e when Vms.TryGetValue(e.VmId, out var v) => (v.Tenant, null, GroupsOf(v.Spec)),
            _ => (default(TenantId), null, []),
        };
        var touched = groups.SelectMany(g => VmsAffectedBySecurityGroup(tenant, g)).Select(v => v.Id);
        return vm is { } itself ? touched.Append(itself) : touched;
    }

    private static string[] GroupsOf(VmSpec spec) => (spec.Nics ?? []).SelectMany(n => n.SecurityGroups ?? []).Distinct().ToArray();

    /// <summary>The groups a NIC is asked to have, or the error naming <paramref name="field"/>: every one the tenant's, none twice.</summary>
    private FieldError? WhyNotGroups(TenantId tenant, IReadOnlyList<string>? groups, string field)
    {
        foreach (var name in groups ?? [])
        {
            if (FindSecurityGroup(tenant, name) is null)
            {
                return new FieldError(field, $"no security group '{FieldError.Echo(name)}'");
            }
        }

        return groups is not null && groups.Distinct().Count() != groups.Count ? new FieldError(field, "names a group twice") : null;
    }

    private Decision DecideSecurityGroup(ILedgerCommand command, DateTimeOffset now) => command switch
    {
        SecurityGroupCommands.CreateSecurityGroup c => !VmSpecValidator.IsValidName(c.Name)
            ? Decision.Refuse(Refusal.Invalid([new FieldError("name",
                "must be 1-63 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'")]))
            : WhyNoNew(c.Tenant, "security group", c.Name, c.Id, FindSecurityGroup(c.Tenant, c.Name) is not null, SecurityGroups.ContainsKey(c.Id),
                SecurityGroupsOf(c.Tenant).Count(), SecurityGroupRecord.MaxPerTenant, out _)
            ?? Decision.Accept(new SecurityGroupCreated(c.Id, c.Tenant, c.Name, now)),
        SecurityGroupCommands.DeleteSecurityGroup c => DecideDeleteSecurityGroup(c),
        SecurityGroupCommands.AddSecurityRule c => DecideAddSecurityRule(c),
        SecurityGroupCommands.RemoveSecurityRule c => FindSecurityGroup(c.Tenant, c.Group) is not { } group
            ? Decision.Refuse(Refusal.NotFound($"no security group '{FieldError.Echo(c.Group)}'"))
            : group.Rules.All(r => r.Id != c.RuleId)
                ? Decision.Refuse(Refusal.NotFound($"security group '{c.Group}' has no rule '{FieldError.Echo(c.RuleId)}'"))
                : Decision.Accept(new SecurityRuleRemoved(group.Id, c.Tenant, c.RuleId)),
        SecurityGroupCommands.SetNicSecurityGroups c => DecideSetNicSecurityGroups(c),
        _ => throw new ArgumentOutOfRangeException(nameof(command)),
    };

    private Decision DecideDeleteSecurityGroup(SecurityGroupCommands.DeleteSecurityGroup c)
    {
        if (FindSecurityGroup(c.Tenant, c.Name) is not { } group)
        {
            return Decision.Refuse(Refusal.NotFound($"no security group '{FieldError.Echo(c.Name)}'"));
        }

        var users = VmsOf(c.Tenant).Count(vm => (vm.Spec.Nics ?? []).Any(n => (n.SecurityGroups ?? []).Contains(c.Name)));
        if (users > 0)
        {
            return Decision.Refuse(Refusal.Conflict("name", $"security group '{c.Name}' is on the NICs of {users} VM(s); take it off them first"));
        }

        return SecurityGroupsOf(c.Tenant).FirstOrDefault(g => g.Rules.Any(r => r.RemoteGroup == c.Name)) is { } referrer
            ? Decision.Refuse(Refusal.Conflict("name", $"a rule of security group '{referrer.Name}' names '{c.Name}'; remove it first"))
            : Decision.Accept(new SecurityGroupDeleted(group.Id, c.Tenant));
    }

    private Decision DecideAddSecurityRule(SecurityGroupCommands.AddSecurityRule c)
    {
        if (FindSecurityGroup(c.Tenant, c.Group) is not { } group)
        {
            return Decision.Refuse(Refusal.NotFound($"no security group '{FieldError.Echo(c.Group)}'"));
        }

        // Checked again here: the rule may come from anywhere that speaks to the ledger, not only the API.
        var (rule, errors) = SecurityRule.Create(c.Rule.Id, c.Rule.Protocol, c.Rule.HasPorts ? c.Rule.PortFrom : null,
            c.Rule.HasPorts ? c.Rule.PortTo : null, c.Rule.RemoteCidr, c.Rule.RemoteGroup);
        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (rule!.RemoteGroup is { } remote && FindSecurityGroup(c.Tenant, remote) is null)
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("remoteGroup", $"no security group '{FieldError.Echo(remote)}'")]));
        }

        return group.Rules.Any(r => r.Id == rule.Id) ? Decision.Refuse(Refusal.Conflict("id", $"a rule with id '{FieldError.Echo(rule.Id)}' already exists"))
            : group.Rules.Any(r => r with { Id = rule.Id } == rule) ? Decision.Refuse(Refusal.Conflict("rule", $"security group '{c.Group}' already has the rule {rule}"))
            : group.Rules.Count >= SecurityGroupRecord.MaxRules
                ? Decision.Refuse(Refusal.Forbidden(new FieldError("rules", $"security group '{c.Group}' has {SecurityGroupRecord.MaxRules} rules, the most it may have")))
            : Decision.Accept(new SecurityRuleAdded(group.Id, c.Tenant, rule));
    }

    private Decision DecideSetNicSecurityGroups(SecurityGroupCommands.SetNicSecurityGroups c)
    {
        if (FindVm(c.Tenant, c.Vm) is not { } vm)
        {
            return Decision.Refuse(Refusal.NotFound($"no VM '{FieldError.Echo(c.Vm)}'"));
        }

        var nics = vm.Spec.Nics ?? [];
        if (c.Nic < 0 || c.Nic >= nics.Count)
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("nic", nics.Count == 0
                ? $"VM '{c.Vm}' has no NIC"
                : $"must be a NIC of VM '{c.Vm}', 0 to {nics.Count - 1}, was {c.Nic}")]));
        }

        return WhyNotGroups(c.Tenant, c.Groups, "groups") is { } error
            ? Decision.Refuse(Refusal.Invalid([error]))
            : (nics[c.Nic].SecurityGroups ?? []).SequenceEqual(c.Groups)
                ? Decision.Accept()
                : Decision.Accept(new NicSecurityGroupsChanged(vm.Id, c.Tenant, c.Nic, c.Groups.ToList()));
    }

    /// <summary>Folds in what an event changes about security groups and the NICs' groups.</summary>
    private LedgerState ApplySecurityGroups(ILedgerEvent evt) => evt switch
    {
        SecurityGroupCreated e => this with
        {
            SecurityGroups = SecurityGroups.SetItem(e.Id, new SecurityGroupRecord(e.Id, e.Tenant, e.Name, [], e.At)),
        },
        SecurityGroupDeleted e => this with { SecurityGroups = SecurityGroups.Remove(e.Id) },
        SecurityRuleAdded e => this with
        {
            SecurityGroups = SecurityGroups.SetItem(e.GroupId, SecurityGroups[e.GroupId] with { Rules = SecurityGroups[e.GroupId].Rules.Add(e.Rule) }),
        },
        SecurityRuleRemoved e => WithoutRule(e),
        NicSecurityGroupsChanged e when Vms.TryGetValue(e.VmId, out var vm) => WithNicGroups(vm, e),
        _ => this,
    };

    // These two apart from the switch: a lambda there that captured an arm's event made every Apply allocate its closure.
    private LedgerState WithoutRule(SecurityRuleRemoved e) => this with
    {
        SecurityGroups = SecurityGroups.SetItem(e.GroupId,
            SecurityGroups[e.GroupId] with { Rules = SecurityGroups[e.GroupId].Rules.RemoveAll(r => r.Id == e.RuleId) }),
    };

    private LedgerState WithNicGroups(VmRecord vm, NicSecurityGroupsChanged e) => this with
    {
        Vms = Vms.SetItem(e.VmId, vm with
        {
            Spec = vm.Spec with { Nics = vm.Spec.Nics!.Select((n, i) => i == e.Nic ? n with { SecurityGroups = e.Groups.Count > 0 ? e.Groups : null } : n).ToList() },
        }),
    };
}
