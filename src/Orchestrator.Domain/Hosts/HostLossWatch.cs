// The scheduler's decisions about lost hosts, apart from the actor that carries them out: when a host whose agent or
// cluster member is gone gets its VMs re-placed. Pure: the detector feeds it membership and lease news and performs
// the effects it returns, so the waits that keep a VM from running twice (I3) are tested without a cluster.
using System.Collections.Immutable;

namespace Orchestrator.Domain.Hosts;

/// <summary>How a host's member or agent went away; it decides how long the host's fence guard has been counting.</summary>
public enum HostDeparture
{
    /// <summary>Left the cluster gracefully: its guard only starts counting now.</summary>
    Left,

    /// <summary>Downed and removed: its guard has been counting since it lost the majority.</summary>
    Downed,

    /// <summary>Its agent died (the node process, most often): its guard only starts counting now.</summary>
    AgentDied,
}

/// <summary>What the detector learns, as it tells the watch.</summary>
public abstract record HostLossInput
{
    private HostLossInput() { }

    /// <summary>A host's agent registered (again) from a cluster member's address.</summary>
    public sealed record AgentRegistered(HostId Host, string Address) : HostLossInput;

    /// <summary>A member, or the agent at an address, is gone.</summary>
    public sealed record MemberGone(string Address, HostDeparture How) : HostLossInput;

    public sealed record Unreachable(string Address) : HostLossInput;

    public sealed record Reachable(string Address) : HostLossInput;

    /// <summary>A host's countdown ended.</summary>
    public sealed record Due(HostId Host) : HostLossInput;

    /// <summary>How long the lost host's lease still runs (zero or less: it has expired and was revoked).</summary>
    public sealed record LeaseChecked(HostId Host, TimeSpan Remaining) : HostLossInput;

    public sealed record LeaseCheckFailed(HostId Host) : HostLossInput;

    /// <summary>
    /// After the scheduler recovered, once agents had time to register again: the hosts the ledger has Up, and the
    /// addresses of the cluster's members now.
    /// </summary>
    public sealed record MembersChecked(IReadOnlyList<(HostId Host, string Address)> UpInLedger, IReadOnlySet<string> Members) : HostLossInput;
}

/// <summary>What the detector does for the watch.</summary>
public abstract record HostLossEffect
{
    private HostLossEffect() { }

    /// <summary>(Re)start the host's countdown: when it ends, the watch is told <see cref="HostLossInput.Due"/>.</summary>
    public sealed record StartCountdown(HostId Host, TimeSpan Delay, string Why) : HostLossEffect;

    /// <summary>Ask the lease store how long the host's lease still runs; revoke it if it has run out.</summary>
    public sealed record CheckLease(HostId Host) : HostLossEffect;

    /// <summary>Re-place the host's VMs: the ledger's LoseHost.</summary>
    public sealed record LoseHost(HostId Host) : HostLossEffect;

    /// <summary>The host's agent came back before its countdown ended: its VMs stay.</summary>
    public sealed record KeepHost(HostId Host) : HostLossEffect;

    /// <summary>The host's agent is gone: nothing is routed to it until it registers again.</summary>
    public sealed record AgentGone(HostId Host) : HostLossEffect;

    public sealed record ReachabilityChanged(HostId Host, bool Reachable) : HostLossEffect;
}

/// <summary>
/// The hosts whose agents the scheduler knows, and those it is counting down to lose. A gone host's VMs are re-placed
/// only once its fence guard has surely killed them: <see cref="AfterDown"/> after its member was downed (the guard
/// has been counting since it lost the majority), <see cref="AfterLeave"/> after a leave or its agent's death; and,
/// with leases, only once its lease has run out too. A host that registers again before then keeps its VMs.
/// </summary>
/// <param name="Agents">hosts with a live agent, by the address of the member it runs on.</param>
/// <param name="Gone">hosts whose agent is gone, by the address it had, until their loss is decided.</param>
/// <param name="Counting">hosts with a countdown running.</param>
/// <param name="CheckingLease">hosts whose lease the store is being asked about.</param>
/// <param name="UnreachableAddresses">members the failure detector cannot reach now.</param>
public sealed record HostLossWatch(
    TimeSpan AfterDown,
    TimeSpan AfterLeave,
    bool Leases,
    ImmutableDictionary<HostId, string> Agents,
    ImmutableDictionary<string, ImmutableHashSet<HostId>> Gone,
    ImmutableHashSet<HostId> Counting,
    ImmutableHashSet<HostId> CheckingLease,
    ImmutableHashSet<string> UnreachableAddresses)
{
    /// <summary>Past a lease's end, so that the lease store's clock and ours need not agree to the millisecond.</summary>
    public static readonly TimeSpan LeaseSlack = TimeSpan.FromMilliseconds(200);

    /// <summary>How soon to ask again when the lease store did not answer (VMs never move on a guess).</summary>
    public static readonly TimeSpan LeaseRetry = TimeSpan.FromSeconds(1);

    public static HostLossWatch Create(TimeSpan afterDown, TimeSpan afterLeave, bool leases) => new(afterDown, afterLeave, leases,
        ImmutableDictionary<HostId, string>.Empty, ImmutableDictionary<string, ImmutableHashSet<HostId>>.Empty,
        ImmutableHashSet<HostId>.Empty, ImmutableHashSet<HostId>.Empty, ImmutableHashSet<string>.Empty);

    /// <summary>A host shows as unreachable while its agent lives on a member the failure detector cannot reach.</summary>
    public bool IsUnreachable(HostId host) => Agents.TryGetValue(host, out var address) && UnreachableAddresses.Contains(address);

    public (HostLossWatch Watch, IReadOnlyList<HostLossEffect> Effects) Decide(HostLossInput input) => input switch
    {
        HostLossInput.AgentRegistered r => (this with { Agents = Agents.SetItem(r.Host, r.Address) }, []),
        HostLossInput.MemberGone g => OnGone(g),
        HostLossInput.Unreachable u => OnReachability(u.Address, reachable: false),
        HostLossInput.Reachable r => OnReachability(r.Address, reachable: true),
        HostLossInput.Due d => OnDue(d.Host),
        HostLossInput.LeaseChecked l => OnLeaseChecked(l),
        HostLossInput.LeaseCheckFailed f when CheckingLease.Contains(f.Host) =>
            (this with { CheckingLease = CheckingLease.Remove(f.Host) }).Countdown([], f.Host, LeaseRetry, "did not answer whether its lease runs; asking again"),
        HostLossInput.LeaseCheckFailed => (this, []),
        HostLossInput.MembersChecked m => OnMembersChecked(m),
        _ => throw new ArgumentOutOfRangeException(nameof(input), input, "unknown input"),
    };

    /// <summary>Whichever comes first, the agent's death or its member's removal, starts the countdown once; a down shortens it.</summary>
    private (HostLossWatch, IReadOnlyList<HostLossEffect>) OnGone(HostLossInput.MemberGone gone)
    {
        var leaving = Agents.Where(kv => kv.Value == gone.Address).Select(kv => kv.Key).ToList();
        var hosts = (Gone.GetValueOrDefault(gone.Address) ?? ImmutableHashSet<HostId>.Empty).Union(leaving);
        var watch = this with
        {
            Agents = Agents.RemoveRange(leaving),
            Gone = Gone.SetItem(gone.Address, hosts),
            UnreachableAddresses = UnreachableAddresses.Remove(gone.Address),
        };
        var effects = new List<HostLossEffect>(leaving.Select(h => new HostLossEffect.AgentGone(h)));
        var (delay, why) = gone.How switch
        {
            HostDeparture.Downed => (AfterDown, "was downed and removed"),
            HostDeparture.Left => (AfterLeave, "left the cluster"),
            _ => (AfterLeave, "lost its host agent"),
        };
        foreach (var host in hosts.OrderBy(h => h.Value, StringComparer.Ordinal))
        {
            if (!watch.Counting.Contains(host) || gone.How == HostDeparture.Downed)
            {
                (watch, _) = watch.Countdown(effects, host, delay, $"({gone.Address}) {why}");
            }
        }

        return (watch, effects);
    }

    private (HostLossWatch, IReadOnlyList<HostLossEffect>) OnReachability(string address, bool reachable)
    {
        var watch = this with
        {
            UnreachableAddresses = reachable ? UnreachableAddresses.Remove(address) : UnreachableAddresses.Add(address),
        };
        if (watch.UnreachableAddresses == UnreachableAddresses)
        {
            return (this, []);
        }

        return (watch, Agents.Where(kv => kv.Value == address).OrderBy(kv => kv.Key.Value, StringComparer.Ordinal)
            .Select(kv => (HostLossEffect)new HostLossEffect.ReachabilityChanged(kv.Key, reachable)).ToList());
    }

    private (HostLossWatch, IReadOnlyList<HostLossEffect>) OnDue(HostId host)
    {
        if (!Counting.Contains(host))
        {
            return (this, []); // no countdown of this host runs (a stale timer)
        }

        var watch = this with
        {
            Counting = Counting.Remove(host),
            Gone = Gone.Where(kv => kv.Value.Contains(host)).Aggregate(Gone, (gone, kv) => gone.SetItem(kv.Key, kv.Value.Remove(host))),
        };
        if (Agents.ContainsKey(host))
        {
            return (watch, [new HostLossEffect.KeepHost(host)]);
        }

        return Leases
            ? (watch with { CheckingLease = watch.CheckingLease.Add(host) }, [new HostLossEffect.CheckLease(host)])
            : (watch, [new HostLossEffect.LoseHost(host)]);
    }

    /// <summary>The lease is the host's own word that it still runs: wait it out, then lose the host.</summary>
    private (HostLossWatch, IReadOnlyList<HostLossEffect>) OnLeaseChecked(HostLossInput.LeaseChecked leased)
    {
        if (!CheckingLease.Contains(leased.Host))
        {
            return (this, []); // not asked
        }

        var watch = this with { CheckingLease = CheckingLease.Remove(leased.Host) };
        if (Agents.ContainsKey(leased.Host))
        {
            return (watch, []); // came back meanwhile
        }

        return leased.Remaining > TimeSpan.Zero
            ? watch.Countdown([], leased.Host, leased.Remaining + LeaseSlack, $"still holds its lease for {leased.Remaining}; waiting")
            : (watch, [new HostLossEffect.LoseHost(leased.Host)]);
    }

    /// <summary>Hosts lost while no scheduler was watching (it was moving): Up in the ledger, no agent, not a member.</summary>
    private (HostLossWatch, IReadOnlyList<HostLossEffect>) OnMembersChecked(HostLossInput.MembersChecked check)
    {
        var watch = this;
        var effects = new List<HostLossEffect>();
        foreach (var (host, address) in check.UpInLedger.OrderBy(h => h.Host.Value, StringComparer.Ordinal))
        {
            if (!Agents.ContainsKey(host) && !check.Members.Contains(address))
            {
                (watch, _) = watch.Countdown(effects, host, AfterLeave, $"({address}) is not a cluster member");
            }
        }

        return (watch, effects);
    }

    private (HostLossWatch, IReadOnlyList<HostLossEffect>) Countdown(List<HostLossEffect> effects, HostId host, TimeSpan delay, string why)
    {
        effects.Add(new HostLossEffect.StartCountdown(host, delay, why));
        return (this with { Counting = Counting.Add(host) }, effects);
    }
}
