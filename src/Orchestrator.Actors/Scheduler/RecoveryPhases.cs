using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Scheduler;

/// <summary>Where a scheduler's recovery went: reading the snapshot, rebuilding the state, replaying, indexing.</summary>
public sealed partial class RecoveryPhases
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

    /// <summary>The scheduler's recovery line in <paramref name="log"/>: its seconds, and its phases. Null when there is none.</summary>
    public static (double Seconds, string Phases)? Find(string log) =>
        RecoveredLine().Match(log) is { Success: true } match
            ? (double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), match.Groups[2].Value)
            : null;

    [GeneratedRegex(@"scheduler recovered in (\d+\.\d+) s: [^;\r\n]*; ([^\r\n]*)")]
    private static partial Regex RecoveredLine();
}
