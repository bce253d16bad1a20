using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Actors.Events;

/// <summary>The tags persistent actors put on their events, so that a read model never scans the whole journal.</summary>
public static class EventTags
{
    private const string TenantPrefix = "tenant:";

    public static string Tenant(TenantId tenant) => TenantPrefix + tenant.Value;

    public static string Host(HostId host) => "host:" + host.Value;

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
    public static IReadOnlyList<string> For(LedgerState decided, ILedgerEvent evt)
    {
        var tags = new List<string>(2);
        if (evt is IVmLedgerEvent vmEvent && decided.Vms.TryGetValue(vmEvent.VmId, out var vm))
        {
            tags.Add(Tenant(vm.Tenant));
        }
        else if (evt is VmRequested requested)
        {
            tags.Add(Tenant(requested.Tenant));
        }

        switch (evt)
        {
            case VmPlaced placed:
                tags.Add(Host(placed.HostId));
                break;
            case HostRegistered registered:
                tags.Add(Host(registered.HostId));
                break;
            case SharesChanged shares:
                tags.Add(Host(shares.HostId));
                break;
            case TenantCreated created:
                tags.Add(Tenant(created.Tenant));
                break;
            case TenantUpdated updated:
                tags.Add(Tenant(updated.Tenant));
                break;
        }

        return tags;
    }
}
