using Orchestrator.Domain.Ledger;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Domain.Shares;

/// <summary>Which hosts' division of CPU a ledger event changes, so their entitlements are recomputed.</summary>
public static class SharesDue
{
    /// <summary>
    /// A VM event changes its host's division (placed, started, stopped, resized, gone), and a placement the new host's
    /// too; a tenant's update (its pool) changes every host its VMs are on. <paramref name="decided"/> is the state the
    /// event is decided on, before it applies.
    /// </summary>
    public static IEnumerable<HostId> HostsChangedBy(LedgerState decided, ILedgerEvent evt)
    {
        switch (evt)
        {
            case SharesChanged:
                yield break;
            case TenantUpdated updated:
                foreach (var vm in decided.VmsOf(updated.Tenant).Where(v => v.Host is not null))
                {
                    yield return vm.Host!.Value;
                }

                yield break;
            case IVmLedgerEvent vmEvent:
                if (decided.Vms.GetValueOrDefault(vmEvent.VmId)?.Host is { } host)
                {
                    yield return host;
                }

                if (evt is VmPlaced placed)
                {
                    yield return placed.HostId;
                }

                yield break;
        }
    }
}
