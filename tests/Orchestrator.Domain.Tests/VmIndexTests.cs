using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>The ledger's VMs by host, by tenant and pending agree with a scan of its VMs after any mix of commands.</summary>
public sealed class VmIndexTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void The_kept_index_equals_a_scan_after_every_command(int seed)
    {
        var random = new Random(seed);
        var ledger = new LedgerDriver();
        var tenants = new[] { "system", "acme", "globex" };
        foreach (var tenant in tenants.Skip(1))
        {
            ledger.Send(new LedgerCommands.CreateTenant(new TenantId(tenant), Tenants.TenantQuota.Unlimited));
        }

        for (var i = 0; i < 6; i++)
        {
            ledger.Host($"h{i}", cpus: 2, memoryMiB: 4096);
        }

        _ = ledger.State.VmsOn(new HostId("h0")).ToList(); // built now: from here on it is kept event by event
        var names = new List<(TenantId Tenant, string Name)>();
        for (var step = 0; step < 400; step++)
        {
            var roll = random.Next(100);
            if (roll < 45 || names.Count == 0)
            {
                var tenant = new TenantId(tenants[random.Next(tenants.Length)]);
                var name = $"vm{step}";
                ledger.Send(new LedgerCommands.CreateVm(tenant, new VmSpec(name, 1 + random.Next(3), 256, "demo"), VmId.New()));
                names.Add((tenant, name));
            }
            else
            {
                var (tenant, name) = names[random.Next(names.Count)];
                var vm = ledger.State.FindVm(tenant, name);
                switch (roll)
                {
                    case < 60 when vm is not null:
                        ledger.Send(new LedgerCommands.StopVm(tenant, name));
                        break;
                    case < 70 when vm is not null:
                        ledger.Send(new LedgerCommands.StartVm(tenant, name));
                        break;
                    case < 85 when vm is not null:
                        ledger.Send(new LedgerCommands.DeleteVm(tenant, name));
                        if (ledger.State.FindVm(tenant, name) is { } deleting)
                        {
                            ledger.Send(new LedgerCommands.ConfirmDeleted(deleting.Id));
                        }

                        names.Remove((tenant, name));
                        break;
                    case < 92:
                        var host = $"h{random.Next(6)}";
                        ledger.Send(new LedgerCommands.LoseHost(new HostId(host)));
                        break;
                    default:
                        ledger.Host($"h{random.Next(6)}", cpus: 2, memoryMiB: 4096); // back, or bigger
                        break;
                }
            }

            AssertAgreesWithScan(ledger.State, tenants);
        }

        Assert.Contains(ledger.State.Vms.Values, v => v.Status == VmStatus.Pending);
        Assert.Contains(ledger.State.Vms.Values, v => v.Host is not null);
    }

    [Fact]
    public void A_state_rebuilt_from_records_indexes_its_vms_as_the_one_it_came_from()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h0", cpus: 1, memoryMiB: 4096);
        for (var i = 0; i < 10; i++)
        {
            ledger.Create($"vm{i}", tenant: i % 2 == 0 ? "system" : "acme");
        }

        var rebuilt = LedgerState.FromRecords(ledger.State.Hosts.Values, ledger.State.Vms.Values, ledger.State.Tenants.Values);
        AssertAgreesWithScan(rebuilt, ["system", "acme"]);
        Assert.Equal(ledger.State.PendingVms.Select(v => v.Id), rebuilt.PendingVms.Select(v => v.Id));
    }

    private static void AssertAgreesWithScan(LedgerState state, IEnumerable<string> tenants)
    {
        foreach (var host in state.Hosts.Keys)
        {
            Assert.Equal(
                state.Vms.Values.Where(v => v.Host == host).Select(v => v.Id.Value).Order(),
                state.VmsOn(host).Select(v => v.Id.Value).Order());
        }

        foreach (var tenant in tenants.Select(t => new TenantId(t)))
        {
            Assert.Equal(
                state.Vms.Values.Where(v => v.Tenant == tenant).Select(v => v.Id.Value).Order(),
                state.VmsOf(tenant).Select(v => v.Id.Value).Order());
        }

        Assert.Equal(
            state.Vms.Values.Where(v => v.Status == VmStatus.Pending).OrderBy(v => v.CreatedAt).ThenBy(v => v.Id.Value),
            state.PendingVms);
    }
}
