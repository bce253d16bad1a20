using System.Diagnostics;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Scheduler;

/// <summary>Where a scheduler's recovery went: reading the snapshot, rebuilding the state, replaying, indexing.</summary>
internal sealed class RecoveryPhases
{
    private readonly Stopwatch _sinceStart = Stopwatch.StartNew();
    private TimeSpan _snapshotLoaded;
    private TimeSpan _stateRebuilt;
    private TimeSpan _replayed;

    public void SnapshotLoaded() => _snapshotLoaded = _sinceStart.Elapsed;

    public void StateRebuilt() => _stateRebuilt = _sinceStart.Elapsed;

    public void Replayed() => _replayed = _sinceStart.Elapsed;

    /// <summary>The line <c>scale --nodes</c> reads the duration from; the phases say where a slow recovery went.</summary>
    public string Describe(LedgerState state, long lastSequenceNr) =>
        FormattableString.Invariant(
            $"scheduler recovered in {_sinceStart.Elapsed.TotalSeconds:0.000} s: {state.Hosts.Count} hosts, {state.Vms.Count} VMs (last sequence {lastSequenceNr}); ") +
        FormattableString.Invariant(
            $"snapshot read {_snapshotLoaded.TotalSeconds:0.000} s, state rebuilt {(_stateRebuilt - _snapshotLoaded).TotalSeconds:0.000} s, ") +
        FormattableString.Invariant(
            $"journal replayed {(_replayed - _stateRebuilt).TotalSeconds:0.000} s, indexes {(_sinceStart.Elapsed - _replayed).TotalSeconds:0.000} s");
}
