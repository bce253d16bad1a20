using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Storage;

namespace Orchestrator.Actors.Scheduler;

public static class ImageQueries
{
    /// <summary>The imported images the tenant sees (its own and the public ones), by name.</summary>
    public sealed record ListImages(TenantId Tenant) : ILedgerQuery;
}

public static class ImageReplies
{
    /// <summary>To a register: the image as recorded; to a delete: the image as it was (whoever holds the store removes its file).</summary>
    public sealed record ImageAccepted(ImageRecord Image) : IOrchestratorMessage;

    public sealed record ImageList(IReadOnlyList<ImageRecord> Images) : IOrchestratorMessage;

    public static ImageList List(LedgerState state, TenantId tenant) => new(state.ImagesVisibleTo(tenant).ToList());
}
