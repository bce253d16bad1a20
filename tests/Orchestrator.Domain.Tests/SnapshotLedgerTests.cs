using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.SnapshotEvents;

namespace Orchestrator.Domain.Tests;

/// <summary>
/// Snapshots in the ledger: layers of a VM's disk chain, the tenant's, counted by its quota and charged to the pool; restore
/// only while stopped; clones on a snapshot's layer; nothing deleted that a layer backs on.
/// </summary>
public class SnapshotLedgerTests
{
    private static readonly TenantId Acme = new("acme");
    private static readonly TenantId Other = new("other");
    private static readonly HostId H1 = new("h1");

    private static StoragePoolInfo Local(long capacityGiB = 100) => new("local", StoragePoolKinds.Dir, capacityGiB, 1.0, Shared: false);

    private static LedgerDriver Ledger(int? maxSnapshots = null, long? maxStorageGiB = null, long poolGiB = 100)
    {
        var ledger = new LedgerDriver();
        ledger.Send(new LedgerCommands.RegisterHost(H1, 8, 16384, "qemu", Pools: [Local(poolGiB)]));
        Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(Acme, new TenantQuota(MaxStorageGiB: maxStorageGiB, MaxSnapshots: maxSnapshots))).Refusal);
        Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(Other, TenantQuota.Unlimited)).Refusal);
        return ledger;
    }

    private static string NewId() => Guid.NewGuid().ToString("N");

    private static VmRecord Vm(LedgerDriver ledger, string name, int diskGiB = 2, string? from = null, string image = "demo")
    {
        Assert.Null(ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec(name, 1, 256, image, DiskGiB: diskGiB, FromSnapshot: from), VmId.New())).Refusal);
        return ledger.State.FindVm(Acme, name)!;
    }

    private static Decision Take(LedgerDriver ledger, string vm, string name, TenantId? tenant = null) =>
        ledger.Send(new SnapshotCommands.TakeSnapshot(tenant ?? Acme, vm, name, NewId(), NewId()));

    private static void Stop(LedgerDriver ledger, string name)
    {
        Assert.Null(ledger.Send(new LedgerCommands.StopVm(Acme, name)).Refusal);
        var vm = ledger.State.FindVm(Acme, name)!;
        ledger.Send(new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Stopped, "stopped", null, null));
        Assert.Equal(VmStatus.Stopped, ledger.State.FindVm(Acme, name)!.Status);
    }

    private static void Running(LedgerDriver ledger, string name)
    {
        var vm = ledger.State.FindVm(Acme, name)!;
        ledger.Send(new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Running, null, 4242, null));
    }

    [Fact]
    public void A_snapshot_freezes_the_vms_top_layer_gives_it_a_new_one_and_is_charged_like_its_disk()
    {
        var ledger = Ledger();
        var vm = Vm(ledger, "web", diskGiB: 3);
        Running(ledger, "web");

        Assert.Null(Take(ledger, "web", "s1").Refusal);

        var snapshot = ledger.State.FindSnapshot(Acme, "web", "s1")!;
        var after = ledger.State.FindVm(Acme, "web")!;
        Assert.Equal(vm.Id.Compact, snapshot.Layer); // its first layer: the VM's own file
        Assert.Null(snapshot.Backing);
        Assert.NotEqual(snapshot.Layer, after.Disk!.Layer);
        Assert.Equal(snapshot.Layer, after.Disk.Backing);
        Assert.False(snapshot.Ready); // a running VM: whole once its host switched QEMU to the new layer
        Assert.Equal(6, ledger.State.StorageUsedGiB(Acme));
        Assert.Equal(6, ledger.State.AllocatedGiB(H1, Local()));
        Assert.Equal(after.Disk.Layer, ledger.State.AssignmentOf(after).DiskLayer);

        Assert.Empty(ledger.Send(new SnapshotCommands.ConfirmDiskLayer(vm.Id, snapshot.Layer)).Events); // an old layer: nothing
        Assert.Null(ledger.Send(new SnapshotCommands.ConfirmDiskLayer(vm.Id, after.Disk.Layer!)).Refusal);
        Assert.True(ledger.State.FindSnapshot(Acme, "web", "s1")!.Ready);
    }

    [Fact]
    public void The_snapshot_quota_and_the_pools_room_are_checked_in_the_same_decision()
    {
        var ledger = Ledger(maxSnapshots: 2, poolGiB: 10);
        Vm(ledger, "web", diskGiB: 3);
        Assert.Null(Take(ledger, "web", "s1").Refusal);
        Assert.Null(Take(ledger, "web", "s2").Refusal);

        var quota = Take(ledger, "web", "s3").Refusal!;
        Assert.Equal(RefusalKind.Forbidden, quota.Kind);
        Assert.Contains("2 of 2 snapshots", quota.Message);

        var roomy = Ledger(poolGiB: 8);
        Vm(roomy, "web", diskGiB: 3);
        Assert.Null(Take(roomy, "web", "s1").Refusal);
        var full = Take(roomy, "web", "s2").Refusal!;
        Assert.Equal(RefusalKind.Conflict, full.Kind);
        Assert.Contains("2 GiB free", full.Message);

        Assert.Equal("name", Take(ledger, "web", "s1").Refusal!.Errors[0].Field); // its name is taken
        Assert.Equal("name", Take(ledger, "web", "Bad Name").Refusal!.Errors[0].Field);
    }

    [Fact]
    public void Another_tenant_neither_sees_nor_touches_a_vms_snapshots()
    {
        var ledger = Ledger();
        Vm(ledger, "web");
        Assert.Null(Take(ledger, "web", "s1").Refusal);

        Assert.Equal(RefusalKind.NotFound, Take(ledger, "web", "s2", Other).Refusal!.Kind);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new SnapshotCommands.DeleteSnapshot(Other, "web", "s1")).Refusal!.Kind);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new SnapshotCommands.RestoreSnapshot(Other, "web", "s1", NewId())).Refusal!.Kind);
        Assert.Empty(ledger.State.SnapshotsOf(Other));
        var clone = ledger.Send(new LedgerCommands.CreateVm(Other, new VmSpec("copy", 1, 256, "demo", DiskGiB: 2, FromSnapshot: "web/s1"), VmId.New()));
        Assert.Equal("fromSnapshot", clone.Refusal!.Errors[0].Field);
    }

    [Fact]
    public void Restore_is_refused_while_the_vm_runs_and_makes_a_new_layer_on_the_snapshot_once_stopped()
    {
        var ledger = Ledger();
        Vm(ledger, "web");
        Running(ledger, "web");
        Assert.Null(Take(ledger, "web", "s1").Refusal);
        var s1 = ledger.State.FindSnapshot(Acme, "web", "s1")!;
        var topAfterSnapshot = ledger.State.FindVm(Acme, "web")!.Disk!.Layer!;

        var running = ledger.Send(new SnapshotCommands.RestoreSnapshot(Acme, "web", "s1", NewId())).Refusal!;
        Assert.Equal(RefusalKind.Conflict, running.Kind);
        Assert.Contains("only while stopped", running.Message);

        Stop(ledger, "web");
        Assert.True(ledger.State.FindSnapshot(Acme, "web", "s1")!.Ready); // its process is gone: nothing writes the layer
        var before = ledger.State;
        var restore = ledger.Send(new SnapshotCommands.RestoreSnapshot(Acme, "web", "s1", NewId()));
        Assert.Null(restore.Refusal);

        var disk = ledger.State.FindVm(Acme, "web")!.Disk!;
        Assert.Equal(s1.Layer, disk.Backing);
        Assert.NotEqual(topAfterSnapshot, disk.Layer);
        Assert.Equal(new LayerGone(topAfterSnapshot, "local", H1), Assert.Single(before.LayersGoneBy(restore.Events.Single())));
    }

    [Fact]
    public void A_snapshot_something_backs_on_cannot_be_deleted_and_the_refusal_names_it()
    {
        var ledger = Ledger();
        Vm(ledger, "web");
        Assert.Null(Take(ledger, "web", "s1").Refusal);
        Assert.Null(Take(ledger, "web", "s2").Refusal);

        var chain = ledger.Send(new SnapshotCommands.DeleteSnapshot(Acme, "web", "s1")).Refusal!;
        Assert.Equal(RefusalKind.Conflict, chain.Kind);
        Assert.Contains("snapshot 's2' of VM 'web'", chain.Message);
        var own = ledger.Send(new SnapshotCommands.DeleteSnapshot(Acme, "web", "s2")).Refusal!;
        Assert.Contains("the disk of VM 'web'", own.Message);

        Stop(ledger, "web"); // its snapshots are whole: nothing writes their layers
        Vm(ledger, "copy", from: "web/s2");
        Assert.Null(ledger.Send(new SnapshotCommands.RestoreSnapshot(Acme, "web", "s1", NewId())).Refusal);
        var clone = ledger.Send(new SnapshotCommands.DeleteSnapshot(Acme, "web", "s2")).Refusal!;
        Assert.Contains("VM 'copy' (a clone)", clone.Message);
        var deleteVm = ledger.Send(new LedgerCommands.DeleteVm(Acme, "web")).Refusal!;
        Assert.Contains("VM 'copy' is a clone", deleteVm.Message);

        // Gone the clone, s2 backs nothing: it goes, freeing what it was charged, and its layer's file with it.
        Assert.Null(ledger.Send(new LedgerCommands.DeleteVm(Acme, "copy")).Refusal);
        var copy = ledger.State.Vms.Values.Single(v => v.Spec.Name == "copy");
        ledger.Send(new LedgerCommands.ConfirmDeleted(copy.Id));
        var used = ledger.State.StorageUsedGiB(Acme);
        var s2 = ledger.State.FindSnapshot(Acme, "web", "s2")!;
        var before = ledger.State;
        var deleted = ledger.Send(new SnapshotCommands.DeleteSnapshot(Acme, "web", "s2"));
        Assert.Null(deleted.Refusal);
        Assert.Equal(used - s2.SizeGiB, ledger.State.StorageUsedGiB(Acme));
        Assert.Equal(new LayerGone(s2.Layer, "local", H1), Assert.Single(before.LayersGoneBy(deleted.Events.Single())));
    }

    [Fact]
    public void A_clone_is_an_overlay_on_the_snapshot_in_its_pool_and_must_boot_its_image()
    {
        var ledger = Ledger();
        Vm(ledger, "web", diskGiB: 2);
        Running(ledger, "web");
        Assert.Null(Take(ledger, "web", "s1").Refusal);
        var s1 = ledger.State.FindSnapshot(Acme, "web", "s1")!;
        var early = ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec("copy", 1, 256, "demo", DiskGiB: 2, FromSnapshot: "web/s1"), VmId.New()));
        Assert.Contains("still being taken", early.Refusal!.Message);
        var web = ledger.State.FindVm(Acme, "web")!;
        ledger.Send(new SnapshotCommands.ConfirmDiskLayer(web.Id, web.Disk!.Layer!));

        var image = ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec("copy", 1, 256, "other", DiskGiB: 2, FromSnapshot: "web/s1"), VmId.New()));
        Assert.Equal("image", image.Refusal!.Errors[0].Field);
        var small = ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec("copy", 1, 256, "demo", DiskGiB: 1, FromSnapshot: "web/s1"), VmId.New()));
        Assert.Equal("diskGiB", small.Refusal!.Errors[0].Field);
        var missing = ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec("copy", 1, 256, "demo", DiskGiB: 2, FromSnapshot: "web/nope"), VmId.New()));
        Assert.Equal("fromSnapshot", missing.Refusal!.Errors[0].Field);

        var clone = Vm(ledger, "copy", from: "web/s1");
        Assert.Equal(new VmDisk("local", H1, null, s1.Layer), clone.Disk);
        Assert.Equal(H1, clone.Host);
        var assignment = ledger.State.AssignmentOf(clone);
        Assert.Equal(s1.Layer, assignment.DiskBacking);
        Assert.Equal("local", assignment.DiskPool);
    }

    [Fact]
    public void Deleting_a_vm_deletes_its_snapshots_and_a_rebuilt_state_charges_them_again()
    {
        var ledger = Ledger(maxStorageGiB: 50);
        Vm(ledger, "web", diskGiB: 2);
        Assert.Null(Take(ledger, "web", "s1").Refusal);
        var state = ledger.State;

        var rebuilt = LedgerState.FromRecords(state.Hosts.Values, state.Vms.Values, state.Tenants.Values, snapshots: state.Snapshots.Values);
        Assert.Equal(state.StorageUsedGiB(Acme), rebuilt.StorageUsedGiB(Acme));
        Assert.Equal(state.DiskAllocations, rebuilt.DiskAllocations);

        var delete = ledger.Send(new LedgerCommands.DeleteVm(Acme, "web"));
        Assert.Null(delete.Refusal);
        var id = ledger.State.FindVm(Acme, "web")!.Id;
        ledger.Send(new LedgerCommands.ConfirmDeleted(id));
        Assert.Empty(ledger.State.Snapshots);
        Assert.Equal(0, ledger.State.StorageUsedGiB(Acme));
    }

    [Fact]
    public void A_deleted_vms_snapshots_go_only_once_its_host_has_stopped_it_or_is_lost()
    {
        var ledger = Ledger();
        Vm(ledger, "web", diskGiB: 2);
        Running(ledger, "web");
        Assert.Null(Take(ledger, "web", "s1").Refusal);
        var s1 = ledger.State.FindSnapshot(Acme, "web", "s1")!;
        var id = ledger.State.FindVm(Acme, "web")!.Id;

        // Its QEMU still runs on the layers under its disk: the delete leaves them, and they take no new overlay.
        var delete = ledger.Send(new LedgerCommands.DeleteVm(Acme, "web"));
        Assert.Null(delete.Refusal);
        Assert.DoesNotContain(delete.Events, e => e is SnapshotDeleted);
        Assert.Empty(delete.Events.SelectMany(ledger.State.LayersGoneBy));
        Assert.NotNull(ledger.State.FindSnapshot(Acme, "web", "s1"));
        var clone = ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec("copy", 1, 256, "demo", DiskGiB: 2, FromSnapshot: "web/s1"), VmId.New()));
        Assert.Equal(RefusalKind.Conflict, clone.Refusal!.Kind);
        Assert.Contains("VM 'web' is being deleted", clone.Refusal.Message);

        // The host stopped it: its snapshots are deleted before its release, each layer's file let go then.
        var before = ledger.State;
        var confirmed = ledger.Send(new LedgerCommands.ConfirmDeleted(id));
        Assert.Equal([typeof(SnapshotDeleted), typeof(LedgerEvents.VmReleased)], confirmed.Events.Select(e => e.GetType()));
        Assert.Equal(new LayerGone(s1.Layer, "local", H1), Assert.Single(before.LayersGoneBy(confirmed.Events[0])));
        Assert.Empty(ledger.State.Snapshots);
        Assert.Equal(0, ledger.State.StorageUsedGiB(Acme));
        Assert.Equal(0, ledger.State.AllocatedGiB(H1, Local()));

        // A VM being deleted on a host that is lost goes with it, its snapshots first.
        Vm(ledger, "db", diskGiB: 2);
        Running(ledger, "db");
        Assert.Null(Take(ledger, "db", "s1").Refusal);
        Assert.Null(ledger.Send(new LedgerCommands.DeleteVm(Acme, "db")).Refusal);
        var lost = ledger.Send(new LedgerCommands.LoseHost(H1));
        Assert.Equal([typeof(LedgerEvents.HostLost), typeof(SnapshotDeleted), typeof(LedgerEvents.VmReleased)], lost.Events.Select(e => e.GetType()));
        Assert.Empty(ledger.State.Snapshots);
        Assert.Empty(ledger.State.Vms);
        Assert.Equal(0, ledger.State.StorageUsedGiB(Acme));
    }
}
