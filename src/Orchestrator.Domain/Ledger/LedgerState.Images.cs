// Imported images in the ledger (issue 18, part 5): a tenant's own and the public ones, named apart from the catalog, each
// the base of the disks of the VMs created on it, so that it stays while any VM or snapshot backs on it.
using System.Collections.Immutable;
using Orchestrator.Domain.Storage;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.ImageEvents;

namespace Orchestrator.Domain.Ledger;

public sealed partial record LedgerState
{
    /// <summary>Imported images by id.</summary>
    public ImmutableDictionary<string, ImageRecord> Images { get; init; } = ImmutableDictionary<string, ImageRecord>.Empty;

    /// <summary>
    /// Bytes on disk of each tenant's private images, charged to its storage quota. Public images (the system tenant's, made
    /// by an admin) count against nobody. Derived from <see cref="Images"/>, never journaled or snapshotted of its own.
    /// </summary>
    public ImmutableDictionary<TenantId, long> ImageBytes { get; init; } = ImmutableDictionary<TenantId, long>.Empty;

    public long ImageBytesOf(TenantId tenant) => ImageBytes.GetValueOrDefault(tenant);

    /// <summary>The images the tenant sees (its own and the public ones), by name.</summary>
    public IEnumerable<ImageRecord> ImagesVisibleTo(TenantId tenant) =>
        Images.Values.Where(i => i.VisibleTo(tenant)).OrderBy(i => i.Name, StringComparer.Ordinal);

    /// <summary>The image of that name the tenant sees; null when it sees none (another tenant's private one included).</summary>
    public ImageRecord? FindImage(TenantId tenant, string name) =>
        Images.IsEmpty ? null : Images.Values.FirstOrDefault(i => i.Name == name && i.VisibleTo(tenant));

    /// <summary>The imported image the VM boots from; null for a catalog image.</summary>
    public ImageRecord? ImageOf(VmRecord vm) => FindImage(vm.Tenant, vm.Spec.Image);

    /// <summary>The image names a VM of the tenant may name: the catalog's and the imported ones it sees.</summary>
    private IReadOnlySet<string> ImageNamesFor(TenantId tenant, LedgerRules rules) =>
        Images.IsEmpty ? rules.Images : rules.Images.Union(ImagesVisibleTo(tenant).Select(i => i.Name)).ToHashSet(StringComparer.Ordinal);

    private Decision DecideRegisterImage(ImageCommands.RegisterImage c, LedgerRules rules, DateTimeOffset now)
    {
        var errors = new List<FieldError>();
        if (!VmSpecValidator.IsValidName(c.Name))
        {
            errors.Add(new FieldError("name", "must be 1-63 characters of lowercase letters, digits and '-', starting with a letter and not ending with '-'"));
        }
        else if (rules.Images.Contains(c.Name))
        {
            errors.Add(new FieldError("name", $"'{c.Name}' is a catalog image's name"));
        }

        if (!ImageRecord.Formats.Contains(c.Format, StringComparer.Ordinal))
        {
            errors.Add(new FieldError("format", $"must be one of {string.Join(", ", ImageRecord.Formats)}, was '{FieldError.Echo(c.Format)}'"));
        }

        if (!rules.Images.Contains(c.Boot))
        {
            errors.Add(new FieldError("kernel", $"unknown catalog image '{FieldError.Echo(c.Boot)}'; known: {string.Join(", ", rules.Images.Order(StringComparer.Ordinal))}"));
        }

        if (!ImageRecord.IsValidId(c.Id))
        {
            errors.Add(new FieldError("id", "must be 'img-' and 16 lowercase hex digits"));
        }

        if (!ImageRecord.IsValidSha256(c.Sha256) || c.Bytes < 0 || c.VirtualBytes < 0)
        {
            errors.Add(new FieldError("file", "the image's hash and sizes are not what an import measures"));
        }

        if (errors.Count > 0)
        {
            return Decision.Refuse(Refusal.Invalid(errors));
        }

        if (c.Public && c.Tenant != TenantId.System)
        {
            return Decision.Refuse(Refusal.Forbidden(new FieldError("public", "only an admin may make a public image")));
        }

        // A public image's name must be free in every tenant (each sees it); a private one's among what its tenant sees.
        var taken = c.Public ? Images.Values.Any(i => i.Name == c.Name) : FindImage(c.Tenant, c.Name) is not null;
        if (WhyNoNew(c.Tenant, "image", c.Name, c.Id, taken, Images.ContainsKey(c.Id), Images.Values.Count(i => i.Tenant == c.Tenant),
                ImageRecord.MaxPerTenant, out _) is { } refused)
        {
            return refused;
        }

        // Charged in the same decision that records it: two imports racing for the last GiB cannot both get it. A refused
        // import's file is deleted by the endpoint that wrote it.
        if (!c.Public && FindTenant(c.Tenant)?.Quota is { } quota
            && quota.StorageExceeded(StorageUsedGiB(c.Tenant), ImageRecord.GiBHolding(ImageBytesOf(c.Tenant) + c.Bytes) - ImageRecord.GiBHolding(ImageBytesOf(c.Tenant)),
                "file") is { } exceeded)
        {
            return Decision.Refuse(Refusal.Forbidden(exceeded));
        }

        return Decision.Accept(new ImageRegistered(c.Id, c.Tenant, c.Name, c.Public, c.Format, c.Sha256, c.Bytes, c.VirtualBytes, c.Boot, now));
    }

    private Decision DecideDeleteImage(ImageCommands.DeleteImage c)
    {
        // Only its owner deletes it: a public image is seen by every tenant but belongs to the system tenant.
        if (FindImage(c.Tenant, c.Name) is not { } image || image.Tenant != c.Tenant)
        {
            return Decision.Refuse(Refusal.NotFound($"no image '{FieldError.Echo(c.Name)}'"));
        }

        var users = UsersOf(image).ToList();
        return users.Count > 0
            ? Decision.Refuse(Refusal.Conflict("name", $"image '{c.Name}' is the base of {string.Join(", ", users.Take(10))}" +
                $"{(users.Count > 10 ? $" and {users.Count - 10} more" : "")}; delete them first"))
            : Decision.Accept(new ImageDeleted(image.Id, image.Tenant));
    }

    /// <summary>
    /// What backs on the image, in words: the disks of VMs created on it and the snapshots taken of them (a clone's disk backs
    /// on its snapshot, which backs on the image). Another tenant's VM on a public image is named by its tenant, not its name.
    /// </summary>
    private IEnumerable<string> UsersOf(ImageRecord image)
    {
        foreach (var vm in Vms.Values.Where(v => v.Spec.Image == image.Name && ImageOf(v)?.Id == image.Id)
                     .OrderBy(v => v.Tenant.Value, StringComparer.Ordinal).ThenBy(v => v.Spec.Name, StringComparer.Ordinal))
        {
            yield return vm.Tenant == image.Tenant ? $"VM '{vm.Spec.Name}'" : $"a VM of tenant '{vm.Tenant}'";
        }

        foreach (var snapshot in Snapshots.Values.Where(s => s.Image == image.Name && FindImage(s.Tenant, s.Image)?.Id == image.Id)
                     .OrderBy(s => s.Tenant.Value, StringComparer.Ordinal).ThenBy(s => s.Name, StringComparer.Ordinal))
        {
            yield return snapshot.Tenant == image.Tenant ? $"snapshot '{snapshot.Name}'" : $"a snapshot of tenant '{snapshot.Tenant}'";
        }
    }

    private LedgerState ApplyImages(ILedgerEvent evt) => evt switch
    {
        ImageRegistered e => this with
        {
            Images = Images.SetItem(e.Id, new ImageRecord(e.Id, e.Tenant, e.Name, e.Public, e.Format, e.Sha256, e.Bytes, e.VirtualBytes, e.Boot, e.At)),
            ImageBytes = e.Public ? ImageBytes : ChargeImage(ImageBytes, e.Tenant, e.Bytes),
        },
        ImageDeleted e when Images.TryGetValue(e.Id, out var gone) => this with
        {
            Images = Images.Remove(e.Id),
            ImageBytes = gone.Public ? ImageBytes : ChargeImage(ImageBytes, gone.Tenant, -gone.Bytes),
        },
        _ => this,
    };

    private static ImmutableDictionary<TenantId, long> ChargeImage(ImmutableDictionary<TenantId, long> bytes, TenantId tenant, long more) =>
        bytes.GetValueOrDefault(tenant) + more is var now and > 0 ? bytes.SetItem(tenant, now) : bytes.Remove(tenant);

    /// <summary>The state rebuilt from a snapshot with its images.</summary>
    public LedgerState WithImages(IEnumerable<ImageRecord> images)
    {
        var byId = images.ToImmutableDictionary(i => i.Id);
        return this with
        {
            Images = byId,
            ImageBytes = byId.Values.Where(i => !i.Public).GroupBy(i => i.Tenant).ToImmutableDictionary(g => g.Key, g => g.Sum(i => i.Bytes)),
        };
    }
}
