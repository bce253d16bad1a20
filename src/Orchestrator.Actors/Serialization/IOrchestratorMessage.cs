namespace Orchestrator.Actors.Serialization;

/// <summary>
/// Marks a message that may cross nodes or be persisted. Bound to <see cref="OrchestratorSerializer"/> in HOCON;
/// a test round-trips every such type.
/// </summary>
public interface IOrchestratorMessage
{
}
