using Orchestrator.Actors.Serialization;
using Orchestrator.Domain.Storage;

namespace Orchestrator.Actors.Images;

/// <summary>
/// Between nodes' image stores (<see cref="ImageStoreActor"/>): a host that lacks an imported image's file finds a node
/// that holds it and reads it chunk by chunk, over cluster messaging only. There is no HTTP route for it: only cluster
/// members can send these, so a tenant's key reaches none of it. Images are named by id and format, never by a tenant's name.
/// </summary>
public static class ImageStoreProtocol
{
    /// <summary>To a peer's image store: does it hold the image's file? Answered with <see cref="Holding"/> or <see cref="NotHeld"/>.</summary>
    public sealed record Locate(string ImageId, string Format) : IOrchestratorMessage;

    public sealed record Holding(string ImageId, long Bytes) : IOrchestratorMessage;

    public sealed record NotHeld(string ImageId) : IOrchestratorMessage;

    /// <summary>
    /// To the peer that holds it: the file's bytes from <paramref name="Offset"/>, at most <see cref="ImageStoreActor.ChunkBytes"/>.
    /// Answered with a <see cref="Chunk"/> (empty at the end of the file), or <see cref="NotHeld"/>.
    /// </summary>
    public sealed record Read(string ImageId, string Format, long Offset) : IOrchestratorMessage;

    public sealed record Chunk(string ImageId, long Offset, byte[] Data) : IOrchestratorMessage;

    /// <summary>To every node's image store once the ledger recorded the image deleted: delete its copy, if it holds one.</summary>
    public sealed record Discard(string ImageId, string Format) : IOrchestratorMessage;

    /// <summary>
    /// From a VM actor about to start a VM on an imported image (never leaves the node): have its file in this node's store,
    /// fetched from a peer and checked against the ledger's SHA-256 when it is not. Answered with <see cref="Ready"/> or
    /// <see cref="Unavailable"/>.
    /// </summary>
    public sealed record Ensure(ImageDisk Image);

    public sealed record Ready(string Path);

    /// <summary>Why the image's file could not be had; nothing of a failed fetch is left in the store.</summary>
    public sealed record Unavailable(string Reason);
}
