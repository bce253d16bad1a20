using System.Collections.Concurrent;

namespace Orchestrator.Tools.Chaos;

/// <summary>What a client asked of the cluster during a chaos run.</summary>
public enum OperationKind
{
    Create,
    Stop,
    Start,
    Delete,
    Label,
}

/// <summary>
/// How an operation ended, as the client can know it. <see cref="Unknown"/> is a timeout, a dropped connection or a 5xx:
/// the write may or may not have happened, and may still happen later (a command in flight), so the checker lets it
/// take effect at any time after it was asked.
/// </summary>
public enum OperationOutcome
{
    Ok,
    Refused,
    Unknown,
}

/// <summary>
/// One operation of the history. <paramref name="Value"/> is the label value a <see cref="OperationKind.Label"/> wrote;
/// <paramref name="VmId"/> the id a create was answered with.
/// </summary>
public sealed record ChaosOperation(
    long Index,
    OperationKind Kind,
    string Vm,
    string? Value,
    double InvokedAtS,
    double CompletedAtS,
    OperationOutcome Outcome,
    string Detail,
    string? VmId = null);

/// <summary>
/// A fault the nemesis injected and healed, on the run's clock: <paramref name="HealedAtS"/> when it was undone (the
/// thaw, the link up again), <paramref name="RecoveredAtS"/> when its host was a member again.
/// </summary>
public sealed record InjectedFault(FaultKind Kind, int Host, double InjectedAtS, double HealedAtS, double RecoveredAtS, string Detail);

/// <summary>An event as the stream gave it: its journal offset, type and VM.</summary>
public sealed record StreamedEvent(long Offset, string Type, string? VmId);

/// <summary>A VM as the final ledger has it.</summary>
public sealed record FinalVm(string Id, string Name, string DesiredState, string State, string? Reason, IReadOnlyDictionary<string, string> Labels);

/// <summary>The run's history: appended from several clients at once.</summary>
public sealed class ChaosHistory
{
    private readonly ConcurrentQueue<ChaosOperation> _operations = new();
    private long _next;

    public long NextIndex() => Interlocked.Increment(ref _next);

    public void Add(ChaosOperation operation) => _operations.Enqueue(operation);

    /// <summary>The operations in the order they were asked.</summary>
    public IReadOnlyList<ChaosOperation> Operations => _operations.OrderBy(o => o.InvokedAtS).ThenBy(o => o.Index).ToList();
}
