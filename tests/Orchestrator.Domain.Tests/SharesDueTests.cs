using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Shares;
using Orchestrator.Domain.Tenants;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Domain.Tests;

public class SharesDueTests
{
    [Fact]
    public void A_vm_event_makes_its_host_due_a_placement_the_new_host_and_a_pool_change_every_host_of_the_tenant()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        ledger.Host("h2");
        var a = ledger.Create("a", tenant: "acme");
        var b = ledger.Create("b", tenant: "acme");

        Assert.Equal([a.Host!.Value], SharesDue.HostsChangedBy(ledger.State, new VmStopped(a.Id, a.Epoch, "stopped")));
        var elsewhere = new HostId(a.Host!.Value.Value == "h1" ? "h2" : "h1");
        Assert.Equal([a.Host!.Value, elsewhere], SharesDue.HostsChangedBy(ledger.State, new VmPlaced(a.Id, elsewhere, a.Epoch.Next())));
        Assert.Empty(SharesDue.HostsChangedBy(ledger.State, new SharesChanged(a.Id, a.Host!.Value, 500)));
        var pool = new TenantUpdated(new TenantId("acme"), TenantQuota.Unlimited, false);
        Assert.Equal(new[] { a.Host!.Value, b.Host!.Value }.Select(h => h.Value).Order(), SharesDue.HostsChangedBy(ledger.State, pool).Select(h => h.Value).Order());
    }
}
