namespace Orchestrator.Actors.Persistence;

/// <summary>One journal row as Akka.Persistence.Sql stores it (tag-table mode: the tags go to their own table).</summary>
public sealed record JournalEntry(
    string PersistenceId, long SequenceNr, long Created, byte[] Message, string Manifest, int SerializerId, string? WriterUuid,
    IReadOnlyList<string> Tags);

/// <summary>
/// Writes journal rows into Akka.Persistence.Sql's own tables with group commit: what is queued while one batch commits
/// goes into the next. A task completes once its rows are committed, or fails with the reason (and then none of its
/// batch is written). Disposing waits for what was already queued.
/// </summary>
public interface IJournalRowWriter : IDisposable
{
    /// <summary>Completes once every entry is committed; an empty batch completes at once.</summary>
    Task WriteAsync(IReadOnlyList<JournalEntry> entries);
}

/// <summary>The columns of the plugin's tables that the writers fill; each writer checks them when its connection opens.</summary>
internal static class JournalTables
{
    public static readonly string[] JournalColumns =
        ["ordering", "created", "deleted", "persistence_id", "sequence_number", "message", "manifest", "identifier", "writer_uuid"];

    public static readonly string[] TagColumns = ["ordering_id", "tag", "sequence_nr", "persistence_id"];
}
