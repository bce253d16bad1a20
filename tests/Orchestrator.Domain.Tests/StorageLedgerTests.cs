using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>Disks in placement: pool capacity with overcommit, a local pool pinning its VM, a shared pool letting it move.</summary>
public class StorageLedgerTests
{
    private static StoragePoolInfo Local(long capacityGiB = 10, double overcommit = 1.0) =>
        new("local", StoragePoolKinds.Dir, capacityGiB, overcommit, Shared: false);

    private static StoragePoolInfo Shared(long capacityGiB = 100) => new("nfs", StoragePoolKinds.Dir, capacityGiB, 1.0, Shared: true);

    private static void Host(LedgerDriver ledger, string id, params StoragePoolInfo[] pools) =>
        ledger.Send(new LedgerCommands.RegisterHost(new HostId(id), 8, 16384, "qemu", Pools: pools));

    private static VmRecord Create(LedgerDriver ledger, string name, int diskGiB)
    {
        var id = VmId.New();
        var decision = ledger.Send(new LedgerCommands.CreateVm(TenantId.System, new VmSpec(name, 1, 256, "demo", DiskGiB: diskGiB), id));
        Assert.Null(decision.Refusal);
        return ledger.State.Vms[id];
    }

    [Fact]
    public void A_vm_gets_its_disk_in_a_pool_of_its_host_and_the_pool_is_charged_its_size()
    {
        var ledger = new LedgerDriver();
        Host(ledger, "h1", Local());

        var vm = Create(ledger, "web1", 3);

        Assert.Equal(new VmDisk("local", new HostId("h1")), vm.Disk);
        Assert.Equal(3, ledger.State.AllocatedGiB(new HostId("h1"), Local()));
        Assert.Equal("local", Assert.IsType<LedgerEvents.VmPlaced>(ledger.Journal.Last()).DiskPool);
    }

    [Fact]
    public void A_disk_that_fits_no_pool_on_any_host_waits_pending_saying_so_and_overcommit_stretches_the_pool()
    {
        var ledger = new LedgerDriver();
        Host(ledger, "h1", Local(capacityGiB: 10));
        Create(ledger, "first", 8);

        var waiting = Create(ledger, "second", 4);

        Assert.Equal(VmStatus.Pending, waiting.Status);
        Assert.Null(waiting.Host);
        Assert.Contains("4 GiB free", waiting.Reason);
        Assert.Contains("h1/local 2 GiB free", waiting.Reason);

        Host(ledger, "h1", Local(capacityGiB: 10, overcommit: 2.0)); // the operator allows thin provisioning
        Assert.Equal(new HostId("h1"), ledger.State.Vms[waiting.Id].Host);
        Assert.Equal(12, ledger.State.AllocatedGiB(new HostId("h1"), Local()));
    }

    [Fact]
    public void A_vm_goes_to_the_host_whose_pool_has_room_for_its_disk_even_when_another_has_more_cpu()
    {
        var ledger = new LedgerDriver();
        Host(ledger, "full", Local(capacityGiB: 1));
        ledger.Send(new LedgerCommands.RegisterHost(new HostId("roomy"), 2, 2048, "qemu", Pools: [Local(capacityGiB: 50)]));

        var vm = Create(ledger, "web1", 5);

        Assert.Equal(new HostId("roomy"), vm.Host);
    }

    [Fact]
    public void Deleting_a_vm_frees_what_its_disk_held_in_the_pool()
    {
        var ledger = new LedgerDriver();
        Host(ledger, "h1", Local());
        var vm = Create(ledger, "web1", 6);

        ledger.Send(new LedgerCommands.DeleteVm(TenantId.System, "web1"));
        ledger.Send(new LedgerCommands.ConfirmDeleted(vm.Id));

        Assert.Equal(0, ledger.State.AllocatedGiB(new HostId("h1"), Local()));
        Assert.Empty(ledger.State.DiskAllocations);
    }

    [Fact]
    public void A_vm_whose_disk_is_on_a_lost_hosts_local_pool_stays_down_with_the_reason_and_returns_with_its_host()
    {
        var ledger = new LedgerDriver();
        Host(ledger, "h1", Local());
        Host(ledger, "h2", Local(capacityGiB: 500));
        var vm = Create(ledger, "db", 2);
        var home = vm.Host!.Value;
        var other = home == new HostId("h1") ? "h2" : "h1";

        ledger.Send(new LedgerCommands.LoseHost(home));

        var down = ledger.State.Vms[vm.Id];
        Assert.Equal(VmStatus.Pending, down.Status);
        Assert.Null(down.Host);
        Assert.Equal($"its disk is on lost host {home}'s local pool 'local'", down.Reason);
        Assert.Equal(0, ledger.State.Hosts[new HostId(other)].VmCount);

        Host(ledger, home.Value, Local(capacityGiB: home.Value == "h1" ? 10 : 500)); // the host comes back with its disk
        Assert.Equal(home, ledger.State.Vms[vm.Id].Host);
    }

    [Fact]
    public void A_vm_whose_disk_is_on_a_shared_pool_is_replaced_on_a_survivor_with_the_same_disk()
    {
        var ledger = new LedgerDriver();
        Host(ledger, "h1", Shared(), Local());
        Host(ledger, "h2", Shared(), Local());
        var vm = Create(ledger, "web1", 2);
        Assert.Equal(new VmDisk("nfs", null), vm.Disk); // shared first: the disk can follow the VM
        var home = vm.Host!.Value;

        ledger.Send(new LedgerCommands.LoseHost(home));

        var moved = ledger.State.Vms[vm.Id];
        Assert.NotNull(moved.Host);
        Assert.NotEqual(home, moved.Host);
        Assert.Equal(new VmDisk("nfs", null), moved.Disk);
        Assert.Equal(2, ledger.State.DiskAllocations[new PoolKey(null, "nfs")]); // charged once, not per host
    }

    [Fact]
    public void A_rule_replace_does_not_move_a_vm_off_the_host_that_holds_its_disk()
    {
        var ledger = new LedgerDriver();
        Host(ledger, "h1", Local());
        var vm = Create(ledger, "db", 1);
        Host(ledger, "h2", Local());

        var decision = ledger.Send(new LedgerCommands.CreateRule("r1", TenantId.System, "move", "VmReady", 1, TimeSpan.FromMinutes(1), null,
            new Dictionary<string, string>(), RuleAction.Replace, ByAdmin: true));
        Assert.Null(decision.Refusal);
        ledger.Send(new LedgerCommands.FireRule("r1", vm.Id, "test"));

        Assert.Equal(new HostId("h1"), ledger.State.Vms[vm.Id].Host);
        var fired = Assert.IsType<LedgerEvents.RuleFired>(ledger.Journal.Last());
        Assert.Contains("its disk is on host h1's local pool 'local'", fired.Reason);
    }

    [Fact]
    public void A_host_without_pools_keeps_no_disks_and_takes_any_vm()
    {
        var ledger = new LedgerDriver();
        ledger.Host("sim");

        var vm = Create(ledger, "web1", 100);

        Assert.Equal(new HostId("sim"), vm.Host);
        Assert.Null(vm.Disk);
        Assert.Empty(ledger.State.DiskAllocations);
    }

    [Fact]
    public void A_disk_size_out_of_range_is_refused_naming_the_field()
    {
        var ledger = new LedgerDriver();
        Host(ledger, "h1", Local());

        var decision = ledger.Send(new LedgerCommands.CreateVm(TenantId.System, new VmSpec("web1", 1, 256, "demo", DiskGiB: 0), VmId.New()));

        Assert.Equal(RefusalKind.Invalid, decision.Refusal?.Kind);
        Assert.Equal("diskGiB", Assert.Single(decision.Refusal!.Errors).Field);
    }
}
