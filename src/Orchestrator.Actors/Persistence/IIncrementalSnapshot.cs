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

    /// <summary>This snapshot's changes made to <paramref name="previous"/>, the whole snapshot at <see cref="PreviousSequenceNr"/>: a whole snapshot.</summary>
    object OnTo(object previous);
}
