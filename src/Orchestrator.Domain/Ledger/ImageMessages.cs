using Orchestrator.Domain.Storage;

namespace Orchestrator.Domain.Ledger;

/// <summary>Requests about imported images. Each says which states allow it.</summary>
public static class ImageCommands
{
    /// <summary>
    /// Records an image whose file is already in the image store, checked. Allowed for an existing, enabled tenant with fewer
    /// than <see cref="ImageRecord.MaxPerTenant"/> images, a valid name that is neither a catalog image's nor one the tenant
    /// already sees (its own or a public one; a public image's name must be free in every tenant), a known format, a
    /// catalog image to boot it with, and for a public image the system tenant (an admin).
    /// </summary>
    public sealed record RegisterImage(string Id, TenantId Tenant, string Name, bool Public, string Format, string Sha256, long Bytes,
        long VirtualBytes, string Boot) : ILedgerCommand;

    /// <summary>Allowed for the tenant's own image (an admin's for a public one) while no VM's disk or snapshot is based on it.</summary>
    public sealed record DeleteImage(TenantId Tenant, string Name) : ILedgerCommand;
}

public static class ImageEvents
{
    public sealed record ImageRegistered(string Id, TenantId Tenant, string Name, bool Public, string Format, string Sha256, long Bytes,
        long VirtualBytes, string Boot, DateTimeOffset At) : ILedgerEvent;

    /// <summary>The image is gone: whoever holds the store deletes its file.</summary>
    public sealed record ImageDeleted(string Id, TenantId Tenant) : ILedgerEvent;
}
