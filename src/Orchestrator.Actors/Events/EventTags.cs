using System.Collections.Concurrent;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Actors.Events;

/// <summary>The tags persistent actors put on their events, so that a read model never scans the whole journal.</summary>
public static class EventTags
{
    private const string TenantPrefix = "tenant:";

    // Every event of a placement is tagged with its tenant and host: the strings are made once per tenant and host, not
    // once per event (bounded, so that a churn of hosts or tenants cannot grow them without end).
    private const int CachedTagsAtMost = 100_000;
    private static readonly ConcurrentDictionary<TenantId, string> TenantTags = new();
    private static readonly ConcurrentDictionary<HostId, string> HostTags = new();

    public static string Tenant(TenantId tenant) =>
        TenantTags.TryGetValue(tenant, out var tag) ? tag : Remember(TenantTags, tenant, TenantPrefix + tenant.Value);

    public static string Host(HostId host) =>
        HostTags.TryGetValue(host, out var tag) ? tag : Remember(HostTags, host, "host:" + host.Value);

    private static string Remember<TKey>(ConcurrentDictionary<TKey, string> cache, TKey key, string tag)
        where TKey : notnull
    {
        if (cache.Count < CachedTagsAtMost)
        {
            cache.TryAdd(key, tag);
        }

        return tag;
    }

    /// <summary>The tenant an event belongs to, by its tag; null for events of no tenant (hosts).</summary>
    public static TenantId? TenantOf(IEnumerable<string>? tags)
    {
        foreach (var tag in tags ?? [])
        {
            if (tag.StartsWith(TenantPrefix, StringComparison.Ordinal))
            {
                return new TenantId(tag[TenantPrefix.Length..]);
            }
        }

        return null;
    }

    /// <summary>
    /// A ledger event's tags: every VM event by tenant and host, so a tenant's stream never needs a scan. Tagged against
    /// the state the event is decided on (the VM a VmPlaced follows in the same decision is there only, not yet in the
    /// persisted state).
    /// </summary>
    public static string[] For(LedgerState decided, ILedgerEvent evt)
    {
        string? tenant = null;
        if (evt is IVmLedgerEvent vmEvent && decided.Vms.TryGetValue(vmEvent.VmId, out var vm))
        {
            tenant = Tenant(vm.Tenant);
        }
        else if (evt is VmRequested requested)
        {
            tenant = Tenant(requested.Tenant);
        }

        var other = evt switch
        {
            VmPlaced placed => Host(placed.HostId),
            HostRegistered registered => Host(registered.HostId),
            SharesChanged shares => Host(shares.HostId),
            TenantCreated created => Tenant(created.Tenant),
            TenantUpdated updated => Tenant(updated.Tenant),
            _ => null,
        };

        // An array of the exact size: the journal takes it as it is (see TagSet).
        return (tenant, other) switch
        {
            (null, null) => [],
            ({ } one, null) => [one],
            (null, { } one) => [one],
            ({ } one, { } two) => one == two ? [one] : [one, two],
        };
    }
}
