// Imported images (issue 18, part 5): disks a tenant or an operator uploaded, each booted with the kernel, initrd and
// kernel command line of a catalog image. The file is named by its id, never by the tenant's name.
using System.Text.RegularExpressions;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Storage;

/// <summary>
/// An imported image as the ledger keeps it. <see cref="Id"/> ("img-" and 16 hex digits) names its file in the image
/// store; <see cref="Name"/> is what the tenant calls it. A <see cref="Public"/> image belongs to the system tenant (an
/// admin made it) and every tenant sees and boots it; a private one only its <see cref="Tenant"/>. <see cref="Boot"/> is
/// the catalog image whose kernel, initrd and kernel command line boot a VM on it.
/// </summary>
public sealed partial record ImageRecord(string Id, TenantId Tenant, string Name, bool Public, string Format, string Sha256, long Bytes,
    long VirtualBytes, string Boot, DateTimeOffset CreatedAt)
{
    public const int MaxPerTenant = 64;

    /// <summary>The formats an image may have: a qcow2 that stands alone, or raw.</summary>
    public static readonly IReadOnlyList<string> Formats = ["qcow2", "raw"];

    [GeneratedRegex(@"^img-[0-9a-f]{16}\z", RegexOptions.CultureInvariant)]
    private static partial Regex IdPattern();

    [GeneratedRegex(@"^[0-9a-f]{64}\z", RegexOptions.CultureInvariant)]
    private static partial Regex Sha256Pattern();

    /// <summary>Whether <paramref name="id"/> is an image id: safe in a path and a QEMU argument.</summary>
    public static bool IsValidId(string? id) => id is not null && IdPattern().IsMatch(id);

    public static bool IsValidSha256(string? hash) => hash is not null && Sha256Pattern().IsMatch(hash);

    /// <summary>Whether <paramref name="tenant"/> may see and boot it: its own, or public.</summary>
    public bool VisibleTo(TenantId tenant) => Public || Tenant == tenant;

    /// <summary>What a host needs to open it, and to check a copy it fetched from another node.</summary>
    public ImageDisk Disk => new(Id, Format, Boot, Sha256, Bytes);

    /// <summary>Whole GiB that <paramref name="bytes"/> take, rounded up: how images are charged to a storage quota counted in GiB.</summary>
    public static long GiBHolding(long bytes) => bytes <= 0 ? 0 : ((bytes - 1) >> 30) + 1;
}

/// <summary>
/// What a host needs to boot a VM on an imported image: the image's id and format (its file in the image store is
/// <see cref="FileName"/>), the catalog image whose kernel and initrd boot it, and the SHA-256 and size the ledger recorded
/// at import, which a copy fetched from another node must have before it is used.
/// </summary>
public sealed record ImageDisk(string Id, string Format, string Boot, string Sha256 = "", long Bytes = 0)
{
    /// <summary>The file's name in the image store; throws for an id or format that could not have come from the ledger.</summary>
    public string FileName => ImageRecord.IsValidId(Id) && ImageRecord.Formats.Contains(Format, StringComparer.Ordinal)
        ? $"{Id}.{Format}"
        : throw new ArgumentException($"not an image id and format: '{FieldError.Echo(Id)}', '{FieldError.Echo(Format)}'");
}
