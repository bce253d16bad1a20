namespace Orchestrator.Actors.Persistence;

/// <summary>
/// A snapshot that holds only what changed since an earlier snapshot of the same persistence id. The snapshot store loads
/// the chain back to a whole snapshot and merges it (<see cref="SqliteSnapshotStore"/>), so that the actor is offered a
/// whole snapshot, as from any store.
/// </summary>
public interface IIncrementalSnapshot
{
    /// <summary>The sequence number of the snapshot this one builds on; null: this one is whole.</summary>
    long? PreviousSequenceNr { get; }

    /// <summary>
    /// The whole snapshot this one makes of <paramref name="whole"/> with <paramref name="chain"/>: the incremental
    /// snapshots from the one that builds on <paramref name="whole"/> to this one, oldest first (this one last).
    /// </summary>
    object OnTo(object whole, IReadOnlyList<IIncrementalSnapshot> chain);
}
