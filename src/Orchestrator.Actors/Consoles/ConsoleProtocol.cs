using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;

namespace Orchestrator.Actors.Consoles;

/// <summary>
/// A console session (beside the API, on any node) and the console actor of a VM (on its host). The attach travels the
/// way <c>vm show</c> does (scheduler → host agent → VM actor) with the session as its sender; after that the two
/// actors talk directly, each watching the other. The sender of each message says which session or console it is.
/// </summary>
public static class ConsoleCommands
{
    /// <summary>From a session to the scheduler: attach to the tenant's VM. Answered by <see cref="ConsoleReplies.Attached"/> or <see cref="ConsoleReplies.Refused"/>.</summary>
    /// <param name="CanWrite">the caller's key may type (read-only keys may not).</param>
    /// <param name="Force">take the keyboard from the session that holds it.</param>
    public sealed record Attach(TenantId Tenant, string Name, bool CanWrite, bool Force) : IOrchestratorMessage;

    /// <summary>From the scheduler to the VM's host agent, and on to its VM actor and console actor; the session is the sender.</summary>
    public sealed record AttachVm(VmId VmId, bool CanWrite, bool Force) : IOrchestratorMessage;

    /// <summary>From a session to the console actor: keystrokes. Dropped unless the session holds the keyboard.</summary>
    public sealed record Input(byte[] Data) : IOrchestratorMessage;
}

public static class ConsoleReplies
{
    /// <summary>To the session, from the VM's console actor (its sender): attached, typing or only reading, with the recent output.</summary>
    /// <param name="Why">why the session only reads; null when it writes.</param>
    public sealed record Attached(VmId VmId, bool Writing, string? Why, byte[] Scrollback) : IOrchestratorMessage;

    /// <summary>No attach: no such VM for this tenant (<paramref name="NotFound"/>), or it is not running.</summary>
    public sealed record Refused(bool NotFound, string Reason) : IOrchestratorMessage;

    /// <summary>Bytes the guest printed on its serial port.</summary>
    public sealed record Output(byte[] Data) : IOrchestratorMessage;

    /// <summary>Another session took the keyboard with force: this one reads from now on.</summary>
    public sealed record TakenOver(string Message) : IOrchestratorMessage;

    /// <summary>Typed input was dropped (the guest's serial port is not taking it as fast as it comes).</summary>
    public sealed record InputDropped(int Bytes) : IOrchestratorMessage;
}
