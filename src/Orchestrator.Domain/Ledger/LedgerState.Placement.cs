// Host labels, server groups and the constraints they put on placement.
using System.Collections.Immutable;
using Orchestrator.Domain.Collections;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;
using static Orchestrator.Domain.Ledger.PlacementEvents;

namespace Orchestrator.Domain.Ledger;

public sealed partial record LedgerState
{
    /// <summary>Server groups by tenant and name.</summary>
    public ImmutableDictionary<(TenantId Tenant, string Name), GroupRecord> Groups { get; init; } =
        ImmutableDictionary<(TenantId, string), GroupRecord>.Empty;

    /// <summary>The state with these groups (from a snapshot).</summary>
    public LedgerState WithGroups(IEnumerable<GroupRecord> groups) => this with { Groups = groups.ToImmutableDictionary(g => (g.Tenant, g.Name)) };

    public IEnumerable<GroupRecord> GroupsOf(TenantId tenant) =>
        Groups.Values.Where(g => g.Tenant == tenant).OrderBy(g => g.Name, StringComparer.Ordinal);

    /// <summary>The tenant's VMs whose spec names the group.</summary>
    public IEnumerable<VmRecord> MembersOf(TenantId tenant, string group) =>
        GroupLookup.TryGetValue((tenant, group), out var ids) ? ids.Select(id => Vms[id]) : [];

    private Decision DecidePlacement(IPlacementCommand command, LedgerRules rules, DateTimeOffset now) => command switch
    {
        PlacementCommands.SetHostLabels c => DecideSetHostLabels(c, rules),
        PlacementCommands.CreateGroup c => DecideCreateGroup(c, now),
        PlacementCommands.DeleteGroup c => !Groups.ContainsKey((c.Tenant, c.Name))
            ? Decision.Refuse(Refusal.NotFound($"no group '{FieldError.Echo(c.Name)}'"))
            : MembersOf(c.Tenant, c.Name).Count() is var members and > 0
                ? Decision.Refuse(Refusal.Conflict("name", $"group '{c.Name}' still has {members} member VM(s); delete them first"))
                : Decision.Accept(new GroupDeleted(c.Tenant, c.Name)),
        PlacementCommands.PlacePending => new Decision(PlacePending(rules).ToList(), null),
        _ => throw new ArgumentException($"not a placement command: {command.GetType().Name}", nameof(command)),
    };

    private Decision DecideSetHostLabels(PlacementCommands.SetHostLabels c, LedgerRules rules)
    {
        if (!Hosts.TryGetValue(c.HostId, out var host))
        {
            return Decision.Refuse(Refusal.NotFound($"no host '{FieldError.Echo(c.HostId.Value)}'"));
        }

        var labels = new SortedDictionary<string, string>(host.EffectiveLabels.ToDictionary(), StringComparer.Ordinal);
        foreach (var key in c.Remove)
        {
            labels.Remove(key);
        }

        foreach (var (key, value) in c.Set)
        {
            labels[key] = value;
        }

        var errors = VmLabels.Validate(c.Set).Concat(c.Remove.Where(k => string.IsNullOrEmpty(k) || k.Any(char.IsControl))
            .Select(k => new FieldError("remove", $"'{FieldError.Echo(k)}' is not a label key"))).ToList();
        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (labels.Count > VmLabels.MaxLabels)
        {
            return Decision.Refuse(Refusal.Invalid([new FieldError("labels", $"a host has at most {VmLabels.MaxLabels} labels, would have {labels.Count}")]));
        }

        if (VmLabels.Same(labels, host.EffectiveLabels))
        {
            return Decision.Nothing;
        }

        var changed = new HostLabelsChanged(c.HostId, labels);
        return Decision.Accept([changed, .. Apply(changed).PlacePending(rules)]);
    }

    public const int MaxGroupsPerTenant = 100;

    private Decision DecideCreateGroup(PlacementCommands.CreateGroup c, DateTimeOffset now)
    {
        if (FindTenant(c.Tenant) is null)
        {
            return Decision.Refuse(Refusal.NotFound($"no tenant '{FieldError.Echo(c.Tenant.Value)}'"));
        }

        var errors = new List<FieldError>();
        if (!VmSpecValidator.IsValidName(c.Name))
        {
            errors.Add(new FieldError("name", "must be 1-63 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'"));
        }

        if (!Enum.IsDefined(c.Policy))
        {
            errors.Add(new FieldError("policy", $"must be one of {string.Join(", ", GroupPolicies.Names)}"));
        }

        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (Groups.ContainsKey((c.Tenant, c.Name)))
        {
            return Decision.Refuse(Refusal.Conflict("name", $"a group named '{c.Name}' already exists"));
        }

        return GroupsOf(c.Tenant).Count() >= MaxGroupsPerTenant
            ? Decision.Refuse(Refusal.Forbidden(new FieldError("name", $"a tenant has at most {MaxGroupsPerTenant} groups")))
            : Decision.Accept(new GroupCreated(c.Tenant, c.Name, c.Policy, now));
    }

    /// <summary>A VM may name only a group of its own tenant's (another tenant's is a missing one).</summary>
    private Decision? WhyNoGroup(TenantId tenant, VmSpec spec) =>
        spec.Group is { } group && !Groups.ContainsKey((tenant, group))
            ? Decision.Refuse(new Refusal(RefusalKind.NotFound, $"no group '{FieldError.Echo(group)}'",
                [new FieldError("group", $"no group '{FieldError.Echo(group)}'; create it first (group create)")]))
            : null;

    /// <summary>The VM's constraints now: unreachable hosts, and its group with the hosts of its other members.</summary>
    private PlacementConstraints ConstraintsFor(VmRecord vm, LedgerRules rules)
    {
        if (vm.Spec.Group is not { } name || !Groups.TryGetValue((vm.Tenant, name), out var group))
        {
            return rules.Unreachable.Count == 0 ? PlacementConstraints.None : new PlacementConstraints(rules.Unreachable);
        }

        var counts = new Dictionary<HostId, int>();
        foreach (var member in MembersOf(vm.Tenant, name))
        {
            if (member.Id != vm.Id && member.Host is { } host && Hosts.ContainsKey(host))
            {
                counts[host] = counts.GetValueOrDefault(host) + 1;
            }
        }

        var memberHosts = counts.OrderBy(kv => kv.Key.Value, StringComparer.Ordinal).Select(kv => (Hosts[kv.Key], kv.Value)).ToList();
        return new PlacementConstraints(rules.Unreachable, new GroupPlacement(name, group.Policy, memberHosts));
    }

    private LedgerState ApplyPlacement(IPlacementEvent evt) => evt switch
    {
        HostLabelsChanged e => this with
        {
            Hosts = Hosts.SetItem(e.HostId, Hosts[e.HostId] with { Labels = e.Labels.Count == 0 ? null : e.Labels }),
        },
        GroupCreated e => this with { Groups = Groups.SetItem((e.Tenant, e.Name), new GroupRecord(e.Tenant, e.Name, e.Policy, e.At)) },
        GroupDeleted e => this with { Groups = Groups.Remove((e.Tenant, e.Name)) },
        _ => throw new ArgumentException($"unknown placement event {evt.GetType().Name}", nameof(evt)),
    };

    // The members of each group by tenant and name, derived from the VMs: a VM joins with its request and leaves when
    // released (a spec's group never changes). Built when first asked for, then kept up to date by Apply, so that the
    // scratch states a decision makes never rebuild it; a state that never asked (a recovery replaying its journal) never
    // pays for it per event: building it at the first replayed event was a scan of every VM, cold, in each recovery.
    private Derived<PersistentHashMap<VmId, VmRecord>, ImmutableDictionary<(TenantId, string), ImmutableHashSet<VmId>>>? _groups;

    private ImmutableDictionary<(TenantId, string), ImmutableHashSet<VmId>> GroupLookup => Current(ref _groups, Vms, vms =>
        vms.Values.Where(v => v.Spec.Group is not null)
            .GroupBy(v => (v.Tenant, v.Spec.Group!))
            .ToImmutableDictionary(g => g.Key, g => g.Select(v => v.Id).ToImmutableHashSet()));

    private LedgerState WithGroupIndex(LedgerState next, ILedgerEvent evt)
    {
        if (ReferenceEquals(next.Vms, Vms))
        {
            return next; // unchanged VMs keep it (a `with` copies it)
        }

        if (_groups is not { } built || !ReferenceEquals(built.Source, Vms))
        {
            return next; // absent or stale: built when first asked for (a `with` copied this one, stale for next's VMs)
        }

        var lookup = built.Index;
        var before = evt is IVmLedgerEvent v1 ? Vms.GetValueOrDefault(v1.VmId) : null;
        var after = evt is IVmLedgerEvent v2 ? next.Vms.GetValueOrDefault(v2.VmId) : null;
        if (before?.Spec.Group is { } left && after is null)
        {
            var key = (before.Tenant, left);
            var members = lookup.GetValueOrDefault(key, []).Remove(before.Id);
            lookup = members.IsEmpty ? lookup.Remove(key) : lookup.SetItem(key, members);
        }
        else if (after?.Spec.Group is { } joined && before is null)
        {
            var key = (after.Tenant, joined);
            lookup = lookup.SetItem(key, lookup.GetValueOrDefault(key, []).Add(after.Id));
        }

        next._groups = new(next.Vms, lookup);
        return next;
    }
}
