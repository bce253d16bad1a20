using System.Collections.Concurrent;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Actors.Events;

/// <summary>The tags persistent actors put on their events, so that a read model never scans the whole journal.</summary>
public static class EventTags
{
    private const string TenantPrefix = "tenant:";

    // Every event of a VM is tagged with its tenant: the strings are made once per tenant, not once per event (bounded,
    // so that a churn of tenants cannot grow them without end).
    private const int CachedTagsAtMost = 100_000;
    private static readonly ConcurrentDictionary<TenantId, string> TenantTags = new();

    public static string Tenant(TenantId tenant)
    {
        if (TenantTags.TryGetValue(tenant, out var tag))
        {
            return tag;
        }

        tag = TenantPrefix + tenant.Value;
        if (TenantTags.Count < CachedTagsAtMost)
        {
            TenantTags.TryAdd(tenant, tag);
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
    /// A ledger event's tags: its tenant's, so that a tenant's stream never needs a scan; none for an event of no tenant
    /// (hosts, shares), which only the whole journal's stream reads. Tagged against the state the event is decided on
    /// (the VM a VmPlaced follows in the same decision is there only, not yet in the persisted state).
    /// </summary>
    /// <remarks>
    /// Only the tags a reader asks for: each is a row and two index entries per event. Placements and hosts were
    /// tagged with their host too, which nothing ever read: a third of a placement's tag rows.
    /// </remarks>
    public static string[] For(LedgerState decided, ILedgerEvent evt)
    {
        TenantId? tenant = evt switch
        {
            IVmLedgerEvent vmEvent when decided.Vms.TryGetValue(vmEvent.VmId, out var vm) => vm.Tenant,
            VmRequested requested => requested.Tenant,
            TenantCreated created => created.Tenant,
            TenantUpdated updated => updated.Tenant,
            _ => null,
        };

        // An array of the exact size: the journal takes it as it is (see TagSet).
        return tenant is { } owner ? [Tenant(owner)] : [];
    }
}
