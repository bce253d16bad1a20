using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>Imported images in the ledger: private or public, named apart from the catalog, kept while a VM backs on them.</summary>
public class ImageLedgerTests
{
    private static readonly TenantId Acme = new("acme");
    private static readonly TenantId Other = new("other");
    private static readonly string Hash = new('a', 64);

    private static LedgerDriver Ledger()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(Acme, TenantQuota.Unlimited)).Refusal);
        Assert.Null(ledger.Send(new LedgerCommands.CreateTenant(Other, TenantQuota.Unlimited)).Refusal);
        return ledger;
    }

    private static int _ids;

    private static Decision Register(LedgerDriver ledger, TenantId tenant, string name, bool isPublic = false, string format = "qcow2",
        string boot = "demo", long bytes = 4096) =>
        ledger.Send(new ImageCommands.RegisterImage($"img-{Interlocked.Increment(ref _ids):x16}", tenant, name, isPublic, format, Hash, bytes,
            1 << 20, boot));

    private const long GiB = 1L << 30;

    [Fact]
    public void Private_images_are_charged_to_their_tenants_storage_quota_by_their_bytes_rounded_up_together()
    {
        var ledger = Ledger();
        Assert.Null(ledger.Send(new LedgerCommands.UpdateTenant(Acme, new TenantQuota(MaxStorageGiB: 2), null)).Refusal);

        Assert.Null(Register(ledger, Acme, "small", bytes: GiB / 2).Refusal);
        Assert.Equal(1, ledger.State.StorageUsedGiB(Acme));
        Assert.Null(Register(ledger, Acme, "other-half", bytes: GiB / 2).Refusal); // two halves are one GiB, not two
        Assert.Equal(1, ledger.State.StorageUsedGiB(Acme));
        Assert.Null(Register(ledger, Acme, "one-more", bytes: GiB).Refusal);
        Assert.Equal(2, ledger.State.StorageUsedGiB(Acme));

        var refused = Register(ledger, Acme, "too-much", bytes: 1).Refusal!;
        Assert.Equal(RefusalKind.Forbidden, refused.Kind);
        Assert.Equal("file", refused.Errors.Single().Field);
        Assert.Equal("quota exceeded: 2 of 2 GiB of storage in use, 1 more asked", refused.Errors.Single().Message);
        Assert.Null(ledger.State.FindImage(Acme, "too-much"));

        // Another tenant's usage is its own; a deleted image frees what it held.
        Assert.Equal(0, ledger.State.StorageUsedGiB(Other));
        Assert.Null(ledger.Send(new ImageCommands.DeleteImage(Acme, "one-more")).Refusal);
        Assert.Equal(1, ledger.State.StorageUsedGiB(Acme));
        Assert.Null(Register(ledger, Acme, "fits-again", bytes: GiB).Refusal);
    }

    [Fact]
    public void Images_share_the_storage_quota_with_volumes_and_disks()
    {
        var ledger = Ledger();
        Assert.Null(ledger.Send(new LedgerCommands.UpdateTenant(Acme, new TenantQuota(MaxStorageGiB: 3), null)).Refusal);
        Assert.Null(Register(ledger, Acme, "base", bytes: GiB + 1).Refusal); // 2 GiB held

        var volume = ledger.Send(new VolumeCommands.CreateVolume(Guid.NewGuid().ToString("N"), Acme, "data", 2)).Refusal!;
        Assert.Equal(RefusalKind.Forbidden, volume.Kind);
        Assert.Contains("2 of 3 GiB of storage in use, 2 more asked", volume.Errors.Single().Message);
    }

    [Fact]
    public void A_public_image_counts_against_nobody_and_survives_a_snapshot_uncharged()
    {
        var ledger = Ledger();
        Assert.Null(ledger.Send(new LedgerCommands.UpdateTenant(Acme, new TenantQuota(MaxStorageGiB: 0), null)).Refusal);
        Assert.Null(Register(ledger, TenantId.System, "everyones", isPublic: true, bytes: 10 * GiB).Refusal);
        Assert.Equal(0, ledger.State.StorageUsedGiB(TenantId.System));
        Assert.Equal(0, ledger.State.StorageUsedGiB(Acme));
        Assert.Equal("quota exceeded: 0 of 0 GiB of storage in use, 1 more asked", Register(ledger, Acme, "mine", bytes: 1).Refusal!.Errors.Single().Message);

        Assert.Null(ledger.Send(new LedgerCommands.UpdateTenant(Acme, TenantQuota.Unlimited, null)).Refusal);
        Assert.Null(Register(ledger, Acme, "mine", bytes: 3 * GiB).Refusal);
        var restored = LedgerState.Empty.WithImages(ledger.State.Images.Values);
        Assert.Equal(3, restored.StorageUsedGiB(Acme));
        Assert.Equal(0, restored.StorageUsedGiB(TenantId.System));
    }

    private static Decision CreateVm(LedgerDriver ledger, TenantId tenant, string name, string image) =>
        ledger.Send(new LedgerCommands.CreateVm(tenant, new VmSpec(name, 1, 256, image), VmId.New()));

    [Fact]
    public void A_private_image_is_seen_and_booted_by_its_tenant_only()
    {
        var ledger = Ledger();
        Assert.Null(Register(ledger, Acme, "mine").Refusal);

        Assert.NotNull(ledger.State.FindImage(Acme, "mine"));
        Assert.Null(ledger.State.FindImage(Other, "mine"));
        Assert.Empty(ledger.State.ImagesVisibleTo(Other));

        Assert.Null(CreateVm(ledger, Acme, "web", "mine").Refusal);
        var refused = CreateVm(ledger, Other, "web", "mine").Refusal!;
        Assert.Equal(RefusalKind.Invalid, refused.Kind);
        Assert.Equal("image", refused.Errors.Single().Field);
        Assert.StartsWith("unknown image 'mine'", refused.Errors.Single().Message);
        Assert.DoesNotContain("mine", refused.Errors.Single().Message["unknown image 'mine'".Length..]);

        // Another tenant may use the name for its own.
        Assert.Null(Register(ledger, Other, "mine").Refusal);
        Assert.NotEqual(ledger.State.FindImage(Acme, "mine")!.Id, ledger.State.FindImage(Other, "mine")!.Id);
    }

    [Fact]
    public void A_vm_on_an_image_is_assigned_its_file_and_the_catalog_image_that_boots_it()
    {
        var ledger = Ledger();
        Assert.Null(Register(ledger, Acme, "mine", format: "raw", boot: "other").Refusal);
        Assert.Null(CreateVm(ledger, Acme, "web", "mine").Refusal);

        var image = ledger.State.FindImage(Acme, "mine")!;
        var assignment = ledger.State.AssignmentOf(ledger.State.FindVm(Acme, "web")!);
        Assert.Equal(new ImageDisk(image.Id, "raw", "other", Hash, 4096), assignment.ImageDisk);
        Assert.Equal("other", assignment.BootImage);
        Assert.Equal($"{image.Id}.raw", assignment.ImageDisk!.FileName);

        Assert.Null(CreateVm(ledger, Acme, "plain", "demo").Refusal);
        Assert.Null(ledger.State.AssignmentOf(ledger.State.FindVm(Acme, "plain")!).ImageDisk);
    }

    [Fact]
    public void Only_an_admin_makes_a_public_image_and_every_tenant_sees_it()
    {
        var ledger = Ledger();
        var refused = Register(ledger, Acme, "shared", isPublic: true).Refusal!;
        Assert.Equal(RefusalKind.Forbidden, refused.Kind);
        Assert.Equal("public", refused.Errors.Single().Field);

        Assert.Null(Register(ledger, TenantId.System, "shared", isPublic: true).Refusal);
        Assert.NotNull(ledger.State.FindImage(Acme, "shared"));
        Assert.NotNull(ledger.State.FindImage(Other, "shared"));
        Assert.Null(CreateVm(ledger, Other, "web", "shared").Refusal);

        // A tenant cannot shadow it, nor delete it (it is the system tenant's).
        Assert.Equal(RefusalKind.Conflict, Register(ledger, Acme, "shared").Refusal!.Kind);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new ImageCommands.DeleteImage(Acme, "shared")).Refusal!.Kind);
    }

    [Fact]
    public void A_public_name_must_be_free_in_every_tenant()
    {
        var ledger = Ledger();
        Assert.Null(Register(ledger, Acme, "base").Refusal);
        var refused = Register(ledger, TenantId.System, "base", isPublic: true).Refusal!;
        Assert.Equal(RefusalKind.Conflict, refused.Kind);
        Assert.Equal("name", refused.Errors.Single().Field);
    }

    [Fact]
    public void An_image_is_named_apart_from_the_catalog_and_boots_with_a_catalog_kernel()
    {
        var ledger = Ledger();
        Assert.Equal("name", Register(ledger, Acme, "demo").Refusal!.Errors.Single().Field);
        Assert.Equal("name", Register(ledger, Acme, "Bad Name").Refusal!.Errors.Single().Field);
        Assert.Equal("kernel", Register(ledger, Acme, "mine", boot: "nope").Refusal!.Errors.Single().Field);
        Assert.Equal("format", Register(ledger, Acme, "mine", format: "vmdk").Refusal!.Errors.Single().Field);
        Assert.Null(Register(ledger, Acme, "mine").Refusal);
        Assert.Equal(RefusalKind.Conflict, Register(ledger, Acme, "mine").Refusal!.Kind);
        Assert.Equal(RefusalKind.NotFound, Register(ledger, new TenantId("nobody"), "mine").Refusal!.Kind);
    }

    [Fact]
    public void An_image_a_vm_backs_on_is_not_deleted_and_the_refusal_names_the_vm()
    {
        var ledger = Ledger();
        Assert.Null(Register(ledger, Acme, "mine").Refusal);
        Assert.Null(CreateVm(ledger, Acme, "web", "mine").Refusal);

        var refused = ledger.Send(new ImageCommands.DeleteImage(Acme, "mine")).Refusal!;
        Assert.Equal(RefusalKind.Conflict, refused.Kind);
        Assert.Contains("VM 'web'", refused.Message);

        Assert.Equal(RefusalKind.NotFound, ledger.Send(new ImageCommands.DeleteImage(Other, "mine")).Refusal!.Kind);

        var vm = ledger.State.FindVm(Acme, "web")!;
        ledger.Send(new LedgerCommands.DeleteVm(Acme, "web"));
        ledger.Send(new LedgerCommands.ConfirmDeleted(vm.Id));
        Assert.False(ledger.State.Vms.ContainsKey(vm.Id));
        Assert.Null(ledger.Send(new ImageCommands.DeleteImage(Acme, "mine")).Refusal);
        Assert.Empty(ledger.State.Images);
    }
}
