using System.Globalization;

namespace Orchestrator.Tools.Chaos;

/// <summary>Something the history shows the cluster got wrong, with what proves it.</summary>
public sealed record ChaosViolation(string Kind, string Evidence);

/// <summary>Everything a chaos run recorded, for <see cref="HistoryChecker"/>.</summary>
/// <param name="Live">the events as the clients' stream delivered them live, across reconnects, in arrival order.</param>
/// <param name="Replayed">the whole journal's events read once after the run: what the live stream should have held.</param>
/// <param name="DoubleRunsAtS">when the sampler saw a VM run twice (the run's clock), each with what it saw.</param>
public sealed record ChaosRecord(
    IReadOnlyList<ChaosOperation> Operations,
    IReadOnlyList<FinalVm> Final,
    IReadOnlyList<StreamedEvent> Live,
    IReadOnlyList<StreamedEvent> Replayed,
    IReadOnlyList<InjectedFault> Faults,
    IReadOnlyList<(double AtS, string What)> DoubleRunsAtS);

/// <summary>
/// Checks a chaos run's history against the final ledger, the journal and the double-run sampler. An operation the
/// client got no answer to may take effect at any time after it was asked (a command still in flight), so a final value
/// is right when it is the last acknowledged write's or any unanswered write's. Pure: the run records, this judges.
/// </summary>
public static class HistoryChecker
{
    /// <summary>
    /// How long after a whole-host thaw its stale guests may still run beside their successors: they resume at the
    /// instant their guard does, which then kills them. Measured and reported as overlap, not a violation.
    /// </summary>
    public static readonly double ThawOverlapGraceS = 5;

    public static IReadOnlyList<ChaosViolation> Check(ChaosRecord record)
    {
        var violations = new List<ChaosViolation>();
        CheckVms(record, violations);
        CheckEvents(record, violations);
        CheckDoubleRuns(record, violations);
        return violations;
    }

    /// <summary>The double runs that fell in a thaw's overlap window: physically unavoidable without a resource fence.</summary>
    public static IReadOnlyList<(double AtS, string What)> ThawOverlaps(ChaosRecord record) =>
        record.DoubleRunsAtS.Where(d => InThawWindow(record.Faults, d.AtS)).ToList();

    private static bool InThawWindow(IReadOnlyList<InjectedFault> faults, double atS) =>
        faults.Any(f => f.Kind == FaultKind.FreezeHost && atS >= f.HealedAtS && atS <= f.HealedAtS + ThawOverlapGraceS);

    private static void CheckVms(ChaosRecord record, List<ChaosViolation> violations)
    {
        var final = record.Final.ToDictionary(v => v.Name, StringComparer.Ordinal);
        var byVm = record.Operations.GroupBy(o => o.Vm, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);

        foreach (var vm in record.Final.Where(v => !byVm.ContainsKey(v.Name)))
        {
            violations.Add(new("phantom", $"VM {vm.Name} ({vm.Id}) is in the final ledger but no client created it"));
        }

        foreach (var (name, ops) in byVm)
        {
            var creates = ops.Where(o => o.Kind == OperationKind.Create).ToList();
            var deletes = ops.Where(o => o.Kind == OperationKind.Delete).ToList();
            final.TryGetValue(name, out var vm);

            // A create retried with its idempotency key after an unanswered attempt must get the first answer, not "exists".
            foreach (var refused in creates.Where(c => c.Outcome == OperationOutcome.Refused && c.Detail.Contains("409 from", StringComparison.Ordinal)))
            {
                if (creates.Any(c => c.Index != refused.Index && c.InvokedAtS < refused.InvokedAtS && c.Outcome == OperationOutcome.Unknown))
                {
                    violations.Add(new("idempotency", $"create of {name} retried with its key after an unanswered attempt was refused: {refused.Detail}"));
                }
            }

            var acknowledgedDelete = deletes.FirstOrDefault(d => d.Outcome == OperationOutcome.Ok);
            var mayExist = creates.Any(c => c.Outcome is OperationOutcome.Ok or OperationOutcome.Unknown);
            if (vm is null)
            {
                var acknowledgedCreate = creates.FirstOrDefault(c => c.Outcome == OperationOutcome.Ok);
                if (acknowledgedCreate is not null && acknowledgedDelete is null && !deletes.Any(d => d.Outcome == OperationOutcome.Unknown))
                {
                    violations.Add(new("lost-create", $"create of {name} was acknowledged at {Seconds(acknowledgedCreate.CompletedAtS)} (id {acknowledgedCreate.VmId}) and never deleted, but it is not in the final ledger"));
                }

                continue;
            }

            if (acknowledgedDelete is not null)
            {
                violations.Add(new("resurrected", $"delete of {name} was acknowledged at {Seconds(acknowledgedDelete.CompletedAtS)}, but it is in the final ledger ({vm.State})"));
                continue;
            }

            if (!mayExist)
            {
                violations.Add(new("phantom", $"VM {name} is in the final ledger but every create of it was refused"));
                continue;
            }

            CheckLastWrite(name, ops, [OperationKind.Create, OperationKind.Stop, OperationKind.Start], DesiredAfter, vm.DesiredState, "desired-state", violations);
            CheckLastWrite(name, ops, [OperationKind.Label], o => o.Value, vm.Labels.GetValueOrDefault(ChaosWorkload.LabelKey), "label", violations);
            CheckConverged(vm, violations);
        }
    }

    private static string? DesiredAfter(ChaosOperation operation) => operation.Kind == OperationKind.Stop ? "Stopped" : "Running";

    /// <summary>
    /// The final value must be the last acknowledged write's, or an unanswered write's (it may land late), or — with no
    /// write acknowledged — what it was before any (a create's default, no label).
    /// </summary>
    private static void CheckLastWrite(string name, IReadOnlyList<ChaosOperation> ops, OperationKind[] kinds, Func<ChaosOperation, string?> valueOf,
        string? actual, string kind, List<ChaosViolation> violations)
    {
        var writes = ops.Where(o => kinds.Contains(o.Kind)).ToList();
        if (writes.Count == 0)
        {
            return;
        }

        var lastAcknowledged = writes.LastOrDefault(o => o.Outcome == OperationOutcome.Ok);
        var allowed = new HashSet<string?>(writes.Where(o => o.Outcome == OperationOutcome.Unknown).Select(valueOf));
        if (lastAcknowledged is not null)
        {
            allowed.Add(valueOf(lastAcknowledged));
        }
        else if (kind == "label")
        {
            allowed.Add(null);
        }
        else
        {
            allowed.Add("Running");
        }

        if (!allowed.Contains(actual))
        {
            var last = lastAcknowledged is null ? "none acknowledged" : $"last acknowledged {lastAcknowledged.Kind} at {Seconds(lastAcknowledged.CompletedAtS)} → {valueOf(lastAcknowledged) ?? "none"}";
            violations.Add(new(kind, $"{name}: final {actual ?? "none"}, allowed {string.Join(" or ", allowed.Select(a => a ?? "none"))} ({last})"));
        }
    }

    private static void CheckConverged(FinalVm vm, List<ChaosViolation> violations)
    {
        var wanted = vm.DesiredState == "Stopped" ? "Stopped" : "Ready";
        if (vm.State != wanted)
        {
            violations.Add(new("not-converged", $"{vm.Name} wants {vm.DesiredState} but is {vm.State}{(vm.Reason is null ? "" : $" ({vm.Reason})")} after the convergence bound"));
        }
    }

    private static void CheckEvents(ChaosRecord record, List<ChaosViolation> violations)
    {
        var seen = new HashSet<long>();
        long previous = -1;
        foreach (var e in record.Live)
        {
            if (!seen.Add(e.Offset))
            {
                violations.Add(new("event-duplicate", $"event {e.Offset} ({e.Type}) was delivered twice"));
            }
            else if (e.Offset < previous)
            {
                violations.Add(new("event-order", $"event {e.Offset} ({e.Type}) came after {previous}"));
            }

            previous = Math.Max(previous, e.Offset);
        }

        if (record.Live.Count > 0)
        {
            var first = record.Live.Min(e => e.Offset);
            var last = record.Live.Max(e => e.Offset);
            var missing = record.Replayed.Where(e => e.Offset >= first && e.Offset <= last && !seen.Contains(e.Offset)).ToList();
            if (missing.Count > 0)
            {
                violations.Add(new("event-gap", $"{missing.Count} events the journal holds between {first} and {last} never reached the live stream, e.g. " +
                                                string.Join(", ", missing.Take(5).Select(e => $"{e.Offset} {e.Type}"))));
            }
        }

        var requested = record.Replayed.Where(e => e.Type == "VmRequested" && e.VmId is not null).Select(e => e.VmId!).ToHashSet(StringComparer.Ordinal);
        foreach (var create in record.Operations.Where(o => o.Kind == OperationKind.Create && o.Outcome == OperationOutcome.Ok && o.VmId is not null))
        {
            if (!requested.Contains(create.VmId!))
            {
                violations.Add(new("event-missing", $"create of {create.Vm} (id {create.VmId}) was acknowledged but the journal has no VmRequested for it"));
            }
        }
    }

    private static void CheckDoubleRuns(ChaosRecord record, List<ChaosViolation> violations)
    {
        foreach (var (atS, what) in record.DoubleRunsAtS.Where(d => !InThawWindow(record.Faults, d.AtS)))
        {
            violations.Add(new("double-run", $"at {Seconds(atS)}: {what}"));
        }
    }

    private static string Seconds(double s) => s.ToString("F2", CultureInfo.InvariantCulture) + " s";
}
