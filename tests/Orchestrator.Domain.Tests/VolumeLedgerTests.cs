using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>Volumes in the ledger: per-tenant, one VM at a time, charged to their pool and the storage quota, pinning a VM to a local pool.</summary>
public class VolumeLedgerTests
{
    private static readonly TenantId Acme = new("acme");
    private static readonly TenantId Other = new("other");

    private static StoragePoolInfo Local(long capacityGiB = 100) => new("local", StoragePoolKinds.Dir, capacityGiB, 1.0, Shared: false);

    private static StoragePoolInfo Shared(long capacityGiB = 100) => new("nfs", StoragePoolKinds.Dir, capacityGiB, 1.0, Shared: true);

    private static LedgerDriver Ledger(long? maxStorageGiB = null, params (string Host, StoragePoolInfo[] Pools)[] hosts)
    {
        var ledger = new LedgerDriver();
        foreach (var (host, pools) in hosts.Length > 0 ? hosts : [("h1", new[] { Local() })])
        {
            ledger.Send(new LedgerCommands.RegisterHost(new HostId(host), 8, 16384, "qemu", Pools: pools));
        }

        Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(Acme, new TenantQuota(MaxStorageGiB: maxStorageGiB))).Refusal);
        Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(Other, TenantQuota.Unlimited)).Refusal);
        return ledger;
    }

    private static Decision CreateVolume(LedgerDriver ledger, string name, int sizeGiB, TenantId? tenant = null, string? pool = null) =>
        ledger.Send(new VolumeCommands.CreateVolume(Guid.NewGuid().ToString("N"), tenant ?? Acme, name, sizeGiB, pool));

    private static VolumeRecord Volume(LedgerDriver ledger, string name, int sizeGiB = 2, string? pool = null)
    {
        Assert.Null(CreateVolume(ledger, name, sizeGiB, pool: pool).Refusal);
        return ledger.State.FindVolume(Acme, name)!;
    }

    private static Decision CreateVm(LedgerDriver ledger, string name, int diskGiB = 1, params string[] volumes) =>
        ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec(name, 1, 256, "demo", DiskGiB: diskGiB,
            Volumes: volumes.Length > 0 ? volumes : null), VmId.New()));

    private static VmRecord Vm(LedgerDriver ledger, string name, params string[] volumes)
    {
        Assert.Null(CreateVm(ledger, name, 1, volumes).Refusal);
        return ledger.State.FindVm(Acme, name)!;
    }

    [Fact]
    public void The_volume_quota_refuses_the_one_too_many_and_a_delete_frees_room()
    {
        var ledger = Ledger();
        Assert.Null(ledger.Send(new LedgerCommands.UpdateTenant(Acme, new TenantQuota(MaxVolumes: 1), null)).Refusal);
        Volume(ledger, "data1");
        var refusal = CreateVolume(ledger, "data2", 1).Refusal!;
        Assert.Equal(RefusalKind.Forbidden, refusal.Kind);
        Assert.Equal(new FieldError("name", "quota exceeded: 1 of 1 volumes in use"), refusal.Errors.Single());
        Assert.Null(CreateVolume(ledger, "data2", 1, Other).Refusal);

        Assert.Null(ledger.Send(new VolumeCommands.DeleteVolume(Acme, "data1")).Refusal);
        Assert.Null(CreateVolume(ledger, "data2", 1).Refusal);
    }

    [Fact]
    public void A_volume_is_charged_to_its_pool_and_its_tenant_and_deleting_it_frees_both()
    {
        var ledger = Ledger();
        var volume = Volume(ledger, "data1", 5);

        Assert.Equal(new PoolKey(new HostId("h1"), "local"), volume.Key);
        Assert.Equal(5, ledger.State.AllocatedGiB(new HostId("h1"), Local()));
        Assert.Equal(5, ledger.State.StorageUsedGiB(Acme));

        Assert.Null(ledger.Send(new VolumeCommands.DeleteVolume(Acme, "data1")).Refusal);

        Assert.Empty(ledger.State.Volumes);
        Assert.Equal(0, ledger.State.AllocatedGiB(new HostId("h1"), Local()));
        Assert.Equal(0, ledger.State.StorageUsedGiB(Acme));
    }

    [Fact]
    public void Bad_sizes_and_names_are_refused_naming_the_field()
    {
        var ledger = Ledger();

        Assert.Equal("sizeGiB", Assert.Single(CreateVolume(ledger, "data1", 0).Refusal!.Errors).Field);
        Assert.Equal("sizeGiB", Assert.Single(CreateVolume(ledger, "data1", 1_000_000).Refusal!.Errors).Field);
        Assert.Equal("name", Assert.Single(CreateVolume(ledger, "Data 1", 1).Refusal!.Errors).Field);
        Assert.Equal("pool", Assert.Single(CreateVolume(ledger, "data1", 1, pool: "nowhere").Refusal!.Errors).Field);
        Assert.Equal(RefusalKind.Conflict, CreateVolume(ledger, "data1", 101).Refusal!.Kind); // more than any pool holds
        Assert.Empty(ledger.State.Volumes);
    }

    [Fact]
    public void The_storage_quota_counts_vm_disks_and_volumes_together()
    {
        var ledger = Ledger(maxStorageGiB: 10);
        Assert.Null(CreateVm(ledger, "web1", diskGiB: 4).Refusal);
        Volume(ledger, "data1", 5);

        var refused = CreateVolume(ledger, "data2", 2).Refusal!;
        Assert.Equal(RefusalKind.Forbidden, refused.Kind);
        Assert.Contains("9 of 10 GiB", refused.Message);
        Assert.Equal("diskGiB", CreateVm(ledger, "web2", diskGiB: 2).Refusal!.Errors[0].Field);
        Assert.Equal(RefusalKind.Forbidden, ledger.Send(new VolumeCommands.ResizeVolume(Acme, "data1", 7)).Refusal!.Kind);

        Assert.Null(CreateVolume(ledger, "data2", 1).Refusal); // exactly the quota
        Assert.Equal(10, ledger.State.StorageUsedGiB(Acme));
    }

    [Fact]
    public void A_volume_grows_but_never_shrinks()
    {
        var ledger = Ledger();
        Volume(ledger, "data1", 4);

        var shrink = ledger.Send(new VolumeCommands.ResizeVolume(Acme, "data1", 3)).Refusal!;
        Assert.Equal(RefusalKind.Invalid, shrink.Kind);
        Assert.Equal("sizeGiB", shrink.Errors[0].Field);

        Assert.Null(ledger.Send(new VolumeCommands.ResizeVolume(Acme, "data1", 9)).Refusal);
        Assert.Equal(9, ledger.State.FindVolume(Acme, "data1")!.SizeGiB);
        Assert.Equal(9, ledger.State.AllocatedGiB(new HostId("h1"), Local()));
        Assert.Equal(9, ledger.State.StorageUsedGiB(Acme));
    }

    [Fact]
    public void Another_tenant_neither_sees_nor_changes_a_volume()
    {
        var ledger = Ledger();
        Volume(ledger, "data1");
        ledger.Send(new LedgerCommands.CreateVm(Other, new VmSpec("theirs", 1, 256, "demo"), VmId.New()));

        Assert.Empty(ledger.State.VolumesOf(Other));
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new VolumeCommands.DeleteVolume(Other, "data1")).Refusal!.Kind);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new VolumeCommands.ResizeVolume(Other, "data1", 9)).Refusal!.Kind);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new VolumeCommands.AttachVolume(Other, "theirs", "data1")).Refusal!.Kind);
        var create = ledger.Send(new LedgerCommands.CreateVm(Other, new VmSpec("theirs2", 1, 256, "demo", Volumes: ["data1"]), VmId.New()));
        Assert.Equal("volumes[0]", create.Refusal!.Errors[0].Field);
        Assert.Null(ledger.State.FindVolume(Acme, "data1")!.AttachedTo);
        // The same name is the other tenant's own.
        Assert.Null(CreateVolume(ledger, "data1", 1, Other).Refusal);
    }

    [Fact]
    public void A_volume_is_attached_to_one_vm_at_a_time_and_cannot_be_deleted_while_attached()
    {
        var ledger = Ledger();
        Volume(ledger, "data1");
        var web1 = Vm(ledger, "web1", "data1");
        Vm(ledger, "web2");

        Assert.Equal(web1.Id, ledger.State.FindVolume(Acme, "data1")!.AttachedTo);
        Assert.Null(ledger.State.FindVm(Acme, "web1")!.Spec.Volumes); // attachments live on the volume
        Assert.Equal(RefusalKind.Conflict, ledger.Send(new VolumeCommands.AttachVolume(Acme, "web2", "data1")).Refusal!.Kind);
        Assert.Equal(RefusalKind.Conflict, CreateVm(ledger, "web3", 1, "data1").Refusal!.Kind);
        Assert.Equal(RefusalKind.Conflict, ledger.Send(new VolumeCommands.DeleteVolume(Acme, "data1")).Refusal!.Kind);

        Assert.Null(ledger.Send(new VolumeCommands.DetachVolume(Acme, "web1", "data1")).Refusal);
        var attached = ledger.Send(new VolumeCommands.AttachVolume(Acme, "web2", "data1"));

        Assert.Null(attached.Refusal);
        Assert.IsType<VolumeEvents.VolumeAttached>(Assert.Single(attached.Events));
        var volumeId = ledger.State.FindVolume(Acme, "data1")!.Id;
        Assert.Equal(volumeId, Assert.Single(ledger.State.AssignmentOf(ledger.State.FindVm(Acme, "web2")!).Volumes!).Id);
        Assert.Null(ledger.State.AssignmentOf(ledger.State.FindVm(Acme, "web1")!).Volumes);
    }

    [Fact]
    public void A_volume_outlives_its_vm_unless_deleted_with_it()
    {
        var ledger = Ledger();
        Volume(ledger, "keep", 2);
        Volume(ledger, "drop", 3);
        var web1 = Vm(ledger, "web1", "keep");
        var web2 = Vm(ledger, "web2", "drop");

        ledger.Send(new LedgerCommands.DeleteVm(Acme, "web1"));
        ledger.Send(new LedgerCommands.ConfirmDeleted(web1.Id));
        ledger.Send(new LedgerCommands.DeleteVm(Acme, "web2", WithVolumes: true));
        ledger.Send(new LedgerCommands.ConfirmDeleted(web2.Id));

        var kept = Assert.Single(ledger.State.VolumesOf(Acme));
        Assert.Equal("keep", kept.Name);
        Assert.Null(kept.AttachedTo);
        Assert.Equal(2, ledger.State.StorageUsedGiB(Acme)); // both VMs' disks and the dropped volume are freed
        Assert.Equal(2, ledger.State.AllocatedGiB(new HostId("h1"), Local()));
    }

    [Fact]
    public void A_volume_on_a_local_pool_pins_its_vm_to_that_host_and_its_loss_leaves_the_vm_pending_saying_why()
    {
        var ledger = Ledger(null, ("h1", [Local()]), ("h2", [Local()]));
        var volume = Volume(ledger, "data1", pool: "local");
        var pinned = volume.Host!.Value;
        Vm(ledger, "busy"); // on the other host or not, placement alone would not pick the volume's host for sure
        var vm = Vm(ledger, "web1", "data1");
        Assert.Equal(pinned, vm.Host);

        ledger.Send(new LedgerCommands.LoseHost(pinned));

        var after = ledger.State.Vms[vm.Id];
        Assert.Equal(VmStatus.Pending, after.Status);
        Assert.Contains($"its volume 'data1' is on lost host {pinned}'s local pool 'local'", after.Reason);
        Assert.Null(after.Host);
    }

    [Fact]
    public void A_running_vm_cannot_take_a_volume_on_another_hosts_local_pool()
    {
        var ledger = Ledger(null, ("h1", []));
        var vm = Vm(ledger, "web1");
        ledger.Send(new LedgerCommands.RegisterHost(new HostId("h2"), 8, 16384, "qemu", Pools: [Local()]));
        Assert.Equal(new HostId("h2"), Volume(ledger, "data1", pool: "local").Host);
        Assert.Equal(new HostId("h1"), vm.Host);

        var refused = ledger.Send(new VolumeCommands.AttachVolume(Acme, "web1", "data1")).Refusal!;
        Assert.Equal(RefusalKind.Conflict, refused.Kind);
        Assert.Contains("cannot reach", refused.Message);
    }

    [Fact]
    public void A_volume_on_a_shared_pool_follows_its_vm_to_another_host()
    {
        var ledger = Ledger(null, ("h1", [Shared()]), ("h2", [Shared()]));
        var volume = Volume(ledger, "data1");
        Assert.Null(volume.Host);
        var vm = Vm(ledger, "web1", "data1");

        ledger.Send(new LedgerCommands.LoseHost(vm.Host!.Value));

        var moved = ledger.State.Vms[vm.Id];
        Assert.NotNull(moved.Host);
        Assert.NotEqual(vm.Host, moved.Host);
        Assert.Equal(vm.Id, ledger.State.FindVolume(Acme, "data1")!.AttachedTo);
    }

    [Fact]
    public void A_state_rebuilt_from_its_records_charges_volumes_again()
    {
        var ledger = Ledger(maxStorageGiB: 50);
        Volume(ledger, "data1", 5);
        Vm(ledger, "web1", "data1");
        var state = ledger.State;

        var rebuilt = LedgerState.FromRecords(state.Hosts.Values, state.Vms.Values, state.Tenants.Values, volumes: state.Volumes.Values);

        Assert.Equal(state.StorageUsedGiB(Acme), rebuilt.StorageUsedGiB(Acme));
        Assert.Equal(state.DiskAllocations, rebuilt.DiskAllocations);
        Assert.Equal(state.VolumesOn(state.FindVm(Acme, "web1")!.Id), rebuilt.VolumesOn(state.FindVm(Acme, "web1")!.Id));
    }
}
