namespace Orchestrator.Node.Tests;

/// <summary>
/// One plain node shared by the tests of a class whose tests each name their own VMs and look only at those (a node per
/// test cost a node's start and stop every time).
/// </summary>
public sealed class SharedNode : IAsyncLifetime
{
    public NodeProcess Node { get; private set; } = null!;

    public async Task InitializeAsync() => Node = await NodeProcess.StartAsync();

    public async Task DisposeAsync() => await Node.DisposeAsync();
}
