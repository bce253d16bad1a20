using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Domain.Tests;

/// <summary>Tenants, keys and quotas in the ledger.</summary>
public class TenantLedgerTests
{
    private static readonly TenantId Acme = new("acme");

    [Fact]
    public void A_vm_beyond_the_quota_is_refused_in_the_same_step_as_placement_and_a_release_makes_room()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        ledger.Send(new LedgerCommands.CreateTenant(Acme, new TenantQuota(MaxVms: 5, MaxVcpus: 3, MaxMemoryMiB: 1024)));
        ledger.Create("a", vcpus: 2, memoryMiB: 512, tenant: "acme");
        var refused = ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec("b", 2, 256, "demo"), VmId.New()));
        Assert.Equal(RefusalKind.Forbidden, refused.Refusal?.Kind);
        Assert.Equal("vcpus", refused.Refusal!.Errors.Single().Field);
        Assert.Contains("2 of 3 vCPUs in use", refused.Refusal.Message);
        Assert.Empty(refused.Events);

        ledger.Create("c", vcpus: 1, memoryMiB: 512, tenant: "acme");
        var memory = ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec("d", 0 + 1, 64, "demo"), VmId.New()));
        Assert.Equal("vcpus", memory.Refusal!.Errors.Single().Field);
        Assert.Equal(new TenantUsage(2, 3, 1024), ledger.State.UsageOf(Acme));

        ledger.Send(new LedgerCommands.DeleteVm(Acme, "a"));
        ledger.Send(new LedgerCommands.ConfirmDeleted(ledger.State.FindVm(Acme, "a")!.Id));
        Assert.Equal(new TenantUsage(1, 1, 512), ledger.State.UsageOf(Acme));
        ledger.Create("b", vcpus: 2, memoryMiB: 256, tenant: "acme");
    }

    [Fact]
    public void Usage_is_rebuilt_from_a_snapshot()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        ledger.Create("a", vcpus: 2, tenant: "acme");
        ledger.Create("b", vcpus: 1, tenant: "acme");
        var state = ledger.State;
        var rebuilt = LedgerState.FromRecords(state.Hosts.Values, state.Vms.Values, state.Tenants.Values, state.Keys.Values);
        Assert.Equal(state.UsageOf(Acme), rebuilt.UsageOf(Acme));
        Assert.Equal(state.Tenants[Acme], rebuilt.Tenants[Acme]);
    }

    [Fact]
    public void A_disabled_tenant_creates_nothing_and_an_unknown_tenant_is_not_found()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        ledger.Send(new LedgerCommands.CreateTenant(Acme, TenantQuota.Unlimited));
        ledger.Send(new LedgerCommands.UpdateTenant(Acme, null, true));
        var disabled = ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec("a", 1, 256, "demo"), VmId.New()));
        Assert.Equal(RefusalKind.Forbidden, disabled.Refusal?.Kind);
        var unknown = ledger.Send(new LedgerCommands.CreateVm(new TenantId("nobody"), new VmSpec("a", 1, 256, "demo"), VmId.New()));
        Assert.Equal(RefusalKind.NotFound, unknown.Refusal?.Kind);
    }

    [Theory]
    [InlineData("system", RefusalKind.Conflict)]
    [InlineData("Bad_Name", RefusalKind.Invalid)]
    [InlineData("../etc", RefusalKind.Invalid)]
    public void Tenant_ids_are_dns_labels_and_system_exists_already(string id, RefusalKind kind)
    {
        var ledger = new LedgerDriver();
        Assert.Equal(kind, ledger.Send(new LedgerCommands.CreateTenant(new TenantId(id), TenantQuota.Unlimited)).Refusal?.Kind);
    }

    [Fact]
    public void The_system_tenant_cannot_be_disabled_and_negative_quotas_are_refused()
    {
        var ledger = new LedgerDriver();
        Assert.Equal(RefusalKind.Invalid, ledger.Send(new LedgerCommands.UpdateTenant(TenantId.System, null, true)).Refusal?.Kind);
        var negative = ledger.Send(new LedgerCommands.CreateTenant(Acme, new TenantQuota(MaxVcpus: -1)));
        Assert.Equal("quota.vcpus", negative.Refusal!.Errors.Single().Field);
    }

    [Fact]
    public void Keys_are_issued_to_existing_tenants_admin_keys_only_to_system_and_revoked_once()
    {
        var ledger = new LedgerDriver();
        ledger.Send(new LedgerCommands.CreateTenant(Acme, TenantQuota.Unlimited));
        Assert.Null(ledger.Send(new LedgerCommands.IssueKey("k1", Acme, KeyRole.Member, "hash1", "ci")).Refusal);
        Assert.Equal(RefusalKind.Invalid, ledger.Send(new LedgerCommands.IssueKey("k2", Acme, KeyRole.Admin, "hash2", null)).Refusal?.Kind);
        Assert.Null(ledger.Send(new LedgerCommands.IssueKey("k3", TenantId.System, KeyRole.Admin, "hash3", null)).Refusal);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new LedgerCommands.IssueKey("k4", new TenantId("nobody"), KeyRole.Member, "h", null)).Refusal?.Kind);
        Assert.Equal(RefusalKind.Conflict, ledger.Send(new LedgerCommands.IssueKey("k1", Acme, KeyRole.Member, "again", null)).Refusal?.Kind);

        // Another tenant can't revoke it; revoking twice is one event.
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new LedgerCommands.RevokeKey(TenantId.System, "k1")).Refusal?.Kind);
        Assert.IsType<ApiKeyRevoked>(Assert.Single(ledger.Send(new LedgerCommands.RevokeKey(Acme, "k1")).Events));
        Assert.Empty(ledger.Send(new LedgerCommands.RevokeKey(Acme, "k1")).Events);
        Assert.True(ledger.State.Keys["k1"].IsRevoked);
        Assert.Equal("hash1", ledger.State.Keys["k1"].SecretHash);
    }
}

/// <summary>Tenant CPU pools: a tenant's VMs on a host share what its pool gets there.</summary>
public class TenantPoolTests
{
    [Fact]
    public void Pool_shares_weigh_tenants_against_each_other_whatever_their_vm_count()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 1);
        var solo = Running(ledger, "solo", "one");
        var crowd = new[] { "c1", "c2", "c3" }.Select(n => Running(ledger, n, "many")).ToList();
        var host = new HostId("h1");

        // By default each tenant's pool weighs as much as its VMs: 1 VM against 3.
        ledger.Send(new LedgerCommands.RecomputeShares(host, [], 0));
        Assert.Equal(250, ledger.State.Vms[solo.Id].EntitledCpuMillicores);

        // Equal pool shares: half the CPU each, the crowd dividing its half.
        Assert.Null(ledger.Send(new LedgerCommands.UpdateTenant(new TenantId("one"), null, null, new TenantCpuPool(Shares: 1000))).Refusal);
        Assert.Null(ledger.Send(new LedgerCommands.UpdateTenant(new TenantId("many"), null, null, new TenantCpuPool(Shares: 1000))).Refusal);
        ledger.Send(new LedgerCommands.RecomputeShares(host, [], 0));
        Assert.Equal(500, ledger.State.Vms[solo.Id].EntitledCpuMillicores);
        Assert.Equal(500, crowd.Sum(v => ledger.State.Vms[v.Id].EntitledCpuMillicores));

        // A pool limit caps the tenant's VMs together.
        ledger.Send(new LedgerCommands.UpdateTenant(new TenantId("one"), null, null, new TenantCpuPool(Shares: 1000, LimitMillicores: 200)));
        ledger.Send(new LedgerCommands.RecomputeShares(host, [], 0));
        Assert.Equal(200, ledger.State.Vms[solo.Id].EntitledCpuMillicores);

        var refused = ledger.Send(new LedgerCommands.UpdateTenant(new TenantId("one"), null, null, new TenantCpuPool(ReservationMillicores: 500, LimitMillicores: 100)));
        Assert.Contains(refused.Refusal!.Errors, e => e.Field == "pool.cpuLimitMillicores");
    }

    private static VmRecord Running(LedgerDriver ledger, string name, string tenant)
    {
        var vm = ledger.Create(name, tenant: tenant);
        ledger.Send(new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Running, null, 100, null));
        return ledger.State.Vms[vm.Id];
    }
}
