namespace Orchestrator.Node.Tests;

/// <summary>Node tests boot real guests under TCG: one at a time keeps two cores from thrashing.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NodeCollection
{
    public const string Name = "real nodes";
}
