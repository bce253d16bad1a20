using Orchestrator.Actors.Serialization;

namespace Orchestrator.Actors.Events;

/// <summary>
/// A projection's saved state: everything it still owes is of events after <see cref="After"/>, and none of those
/// written before <see cref="Since"/> (when it first started).
/// </summary>
public interface IProjectionSnapshot : IOrchestratorMessage
{
    long After { get; }

    DateTimeOffset Since { get; }
}

public static class ProjectionProtocol
{
    /// <summary>To the projection's parent: it knows, durably, where it starts; events written from now on are owed.</summary>
    public sealed record Started(string Name);
}
