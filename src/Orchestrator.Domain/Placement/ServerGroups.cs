// Server groups: a tenant's VMs kept apart or together (Nova's server groups, vSphere's DRS VM rules).
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Placement;

public enum GroupPolicy
{
    /// <summary>Never two members on one host: a member with no host free of members waits Pending.</summary>
    AntiAffinity,

    /// <summary>Every member on the host of the members already placed: a member that does not fit there waits Pending.</summary>
    Affinity,

    /// <summary>Prefer the host with the fewest members, and share one when there is no other.</summary>
    SoftAntiAffinity,

    /// <summary>Prefer the host with the most members, and go elsewhere when it is full.</summary>
    SoftAffinity,
}

public static class GroupPolicies
{
    public static readonly IReadOnlyList<string> Names = ["anti-affinity", "affinity", "soft-anti-affinity", "soft-affinity"];

    public static string ToWire(this GroupPolicy policy) => policy switch
    {
        GroupPolicy.AntiAffinity => "anti-affinity",
        GroupPolicy.Affinity => "affinity",
        GroupPolicy.SoftAntiAffinity => "soft-anti-affinity",
        GroupPolicy.SoftAffinity => "soft-affinity",
        _ => throw new ArgumentOutOfRangeException(nameof(policy)),
    };

    public static bool TryParse(string? text, out GroupPolicy policy)
    {
        var at = text is null ? -1 : Names.ToList().IndexOf(text);
        policy = at < 0 ? default : (GroupPolicy)at;
        return at >= 0;
    }

    /// <summary>Hard policies filter hosts; soft ones only weigh them.</summary>
    public static bool IsHard(this GroupPolicy policy) => policy is GroupPolicy.AntiAffinity or GroupPolicy.Affinity;
}

/// <summary>A tenant's server group; its members are the tenant's VMs whose spec names it.</summary>
public sealed record GroupRecord(TenantId Tenant, string Name, GroupPolicy Policy, DateTimeOffset CreatedAt);

/// <summary>
/// A group as one placement sees it: the policy, and the hosts that hold its other members, with how many each
/// (the few hosts a group decision looks at; the index does the rest).
/// </summary>
public sealed record GroupPlacement(string Name, GroupPolicy Policy, IReadOnlyList<(HostRecord Host, int Members)> MemberHosts)
{
    public int MembersOn(HostId host)
    {
        foreach (var (h, members) in MemberHosts)
        {
            if (h.Id == host)
            {
                return members;
            }
        }

        return 0;
    }

    /// <summary>Hard affinity binds a VM to its members' hosts once one of them is up.</summary>
    public bool BindsToMembers => Policy == GroupPolicy.Affinity && MemberHosts.Any(m => m.Host.State == HostState.Up);
}

/// <summary>What besides the request and the capacity limits where a VM may go: hosts out of reach and its group.</summary>
public sealed record PlacementConstraints(IReadOnlySet<HostId> Unreachable, GroupPlacement? Group = null)
{
    public static readonly PlacementConstraints None = new(new HashSet<HostId>());

    public bool IsNone => Unreachable.Count == 0 && Group is null;

    /// <summary>Whether the host may take the VM: it fits, can be reached, and the hard policy of its group allows it.</summary>
    public bool Admits(HostRecord host, ResourceRequest request, PlacementPolicy policy) =>
        Placement.Fits(host, request, policy) && !Unreachable.Contains(host.Id) && Group switch
        {
            null => true,
            { Policy: GroupPolicy.AntiAffinity } g => g.MembersOn(host.Id) == 0,
            { BindsToMembers: true } g => g.MembersOn(host.Id) > 0,
            _ => true,
        };

    /// <summary>
    /// Positive when <paramref name="a"/> is the better host: a soft group's weigher first (fewer members for
    /// soft anti-affinity, more for soft affinity), then <see cref="Placement.Compare"/>.
    /// </summary>
    public int Compare(HostRecord a, HostRecord b, ResourceRequest request, PlacementPolicy policy)
    {
        var c = Group?.Policy switch
        {
            GroupPolicy.SoftAntiAffinity => Group.MembersOn(b.Id).CompareTo(Group.MembersOn(a.Id)),
            GroupPolicy.SoftAffinity => Group.MembersOn(a.Id).CompareTo(Group.MembersOn(b.Id)),
            _ => 0,
        };
        return c != 0 ? c : Placement.Compare(a, b, request, policy);
    }

    /// <summary>The plain scan with constraints: what <see cref="CapacityIndex.ChooseHost(ResourceRequest, PlacementPolicy, PlacementConstraints)"/> must agree with.</summary>
    public HostRecord? ChooseHost(IEnumerable<HostRecord> hosts, ResourceRequest request, PlacementPolicy policy)
    {
        HostRecord? best = null;
        foreach (var host in hosts)
        {
            if (Admits(host, request, policy) && (best is null || Compare(host, best, request, policy) > 0))
            {
                best = host;
            }
        }

        return best;
    }

    /// <summary>Why nothing fits, naming the selector, the unreachable hosts or the group when one of them is the reason.</summary>
    public string ExplainNoFit(IReadOnlyCollection<HostRecord> hosts, ResourceRequest request, PlacementPolicy policy)
    {
        var up = hosts.Where(h => h.State == HostState.Up).ToList();
        if (request.Selector is { Count: > 0 } selector && up.Count > 0)
        {
            var matching = up.Where(h => HostSelectors.Hold(selector, h.EffectiveLabels)).ToList();
            var shown = string.Join(", ", selector);
            if (matching.Count == 0)
            {
                var unmet = selector.FirstOrDefault(t => !up.Any(h => t.Holds(h.EffectiveLabels)));
                return $"no up host matches the host selector {shown}" +
                       (unmet is null ? $" (each term is met by some of the {up.Count} up hosts, but never all on one)" : $" (none has {unmet})");
            }

            up = matching;
        }

        var reachable = up.Where(h => !Unreachable.Contains(h.Id)).ToList();
        if (up.Count > 0 && reachable.Count == 0)
        {
            return $"every up host that could take it is unreachable ({string.Join(", ", up.Select(h => h.Id.Value).Order(StringComparer.Ordinal).Take(5))})";
        }

        if (Group is { } group && reachable.Count > 0)
        {
            var fitting = reachable.Where(h => Placement.Fits(h, request, policy)).ToList();
            if (group.Policy == GroupPolicy.AntiAffinity && fitting.Count > 0 && fitting.All(h => group.MembersOn(h.Id) > 0))
            {
                return $"anti-affinity group '{group.Name}': each of the {fitting.Count} host(s) with room already runs a member";
            }

            if (group.BindsToMembers)
            {
                var hostsOfMembers = string.Join(", ", group.MemberHosts.Select(m => m.Host.Id.Value).Order(StringComparer.Ordinal));
                return $"affinity group '{group.Name}': no room on the host(s) of its members ({hostsOfMembers}) " +
                       $"for {request.Vcpus} vCPUs and {request.MemoryMiB} MiB";
            }
        }

        // Among the hosts the selector and the failure detector leave, when they left fewer than all.
        var narrowed = reachable.Count > 0 && reachable.Count < hosts.Count(h => h.State == HostState.Up);
        var explanation = Placement.ExplainNoFit(narrowed ? reachable : hosts, request, policy);
        return request.Selector is { Count: > 0 } terms
            ? $"{explanation}; among the hosts that match the host selector {string.Join(", ", terms)}"
            : explanation;
    }
}
