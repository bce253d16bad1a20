using Orchestrator.Tools.Chaos;

namespace Orchestrator.Tools.Tests;

public sealed class HistoryCheckerTests
{
    private static long _index;

    private static ChaosOperation Op(OperationKind kind, string vm, OperationOutcome outcome, double at, string? value = null, string detail = "", string? id = null) =>
        new(++_index, kind, vm, value, at, at + 0.1, outcome, detail, id);

    private static FinalVm Vm(string name, string desired = "Running", string state = "Ready", string? label = null) =>
        new($"id-{name}", name, desired, state, null, label is null ? new Dictionary<string, string>() : new() { [ChaosWorkload.LabelKey] = label });

    private static ChaosRecord Record(IReadOnlyList<ChaosOperation> ops, IReadOnlyList<FinalVm> final,
        IReadOnlyList<StreamedEvent>? live = null, IReadOnlyList<StreamedEvent>? replayed = null,
        IReadOnlyList<InjectedFault>? faults = null, IReadOnlyList<(double, string)>? doubleRuns = null) =>
        new(ops, final, live ?? [], replayed ?? live ?? [], faults ?? [], doubleRuns ?? []);

    private static IReadOnlyList<string> Kinds(ChaosRecord record) => HistoryChecker.Check(record).Select(v => v.Kind).ToList();

    [Fact]
    public void A_clean_history_has_no_violation()
    {
        var ops = new[]
        {
            Op(OperationKind.Create, "a", OperationOutcome.Ok, 1, id: "id-a"),
            Op(OperationKind.Stop, "a", OperationOutcome.Ok, 2),
            Op(OperationKind.Label, "a", OperationOutcome.Ok, 3, "v1"),
            Op(OperationKind.Create, "b", OperationOutcome.Ok, 4, id: "id-b"),
            Op(OperationKind.Delete, "b", OperationOutcome.Ok, 5),
        };
        var events = new[] { new StreamedEvent(1, "VmRequested", "id-a"), new StreamedEvent(2, "VmRequested", "id-b") };

        Assert.Empty(Kinds(Record(ops, [Vm("a", "Stopped", "Stopped", "v1")], events)));
    }

    [Fact]
    public void An_acknowledged_create_missing_from_the_ledger_is_a_lost_write()
    {
        var record = Record([Op(OperationKind.Create, "a", OperationOutcome.Ok, 1, id: "id-a")], [], replayed: [new StreamedEvent(1, "VmRequested", "id-a")]);

        Assert.Equal(["lost-create"], Kinds(record));
    }

    [Fact]
    public void An_unanswered_create_may_or_may_not_have_happened()
    {
        var ops = new[] { Op(OperationKind.Create, "a", OperationOutcome.Unknown, 1) };

        Assert.Empty(Kinds(Record(ops, [])));
        Assert.Empty(Kinds(Record(ops, [Vm("a")])));
    }

    [Fact]
    public void A_vm_nobody_created_or_whose_creates_were_all_refused_is_a_phantom()
    {
        Assert.Equal(["phantom"], Kinds(Record([], [Vm("x")])));
        Assert.Equal(["phantom"], Kinds(Record([Op(OperationKind.Create, "a", OperationOutcome.Refused, 1, detail: "400 from h1")], [Vm("a")])));
    }

    [Fact]
    public void An_acknowledged_delete_of_a_vm_still_in_the_ledger_is_a_resurrection()
    {
        var ops = new[] { Op(OperationKind.Create, "a", OperationOutcome.Ok, 1), Op(OperationKind.Delete, "a", OperationOutcome.Ok, 2) };

        Assert.Equal(["resurrected"], Kinds(Record(ops, [Vm("a")])));
    }

    [Fact]
    public void The_final_desired_state_is_the_last_acknowledged_write_or_any_unanswered_one()
    {
        var ops = new[]
        {
            Op(OperationKind.Create, "a", OperationOutcome.Ok, 1),
            Op(OperationKind.Stop, "a", OperationOutcome.Unknown, 2),
            Op(OperationKind.Start, "a", OperationOutcome.Ok, 3),
        };

        // The unanswered stop may have landed after the start (a command still in flight): Stopped is allowed too.
        Assert.Empty(Kinds(Record(ops, [Vm("a", "Running")])));
        Assert.Empty(Kinds(Record(ops, [Vm("a", "Stopped", "Stopped")])));

        var acknowledged = new[] { Op(OperationKind.Create, "b", OperationOutcome.Ok, 1), Op(OperationKind.Stop, "b", OperationOutcome.Ok, 2) };
        Assert.Equal(["desired-state"], Kinds(Record(acknowledged, [Vm("b", "Running")])));
    }

    [Fact]
    public void A_lost_label_write_is_found()
    {
        var ops = new[]
        {
            Op(OperationKind.Create, "a", OperationOutcome.Ok, 1),
            Op(OperationKind.Label, "a", OperationOutcome.Ok, 2, "v1"),
            Op(OperationKind.Label, "a", OperationOutcome.Ok, 3, "v2"),
        };

        Assert.Equal(["label"], Kinds(Record(ops, [Vm("a", label: "v1")])));
        Assert.Empty(Kinds(Record(ops, [Vm("a", label: "v2")])));
    }

    [Fact]
    public void A_vm_not_in_its_desired_state_after_the_bound_has_not_converged()
    {
        Assert.Equal(["not-converged"], Kinds(Record([Op(OperationKind.Create, "a", OperationOutcome.Ok, 1)], [Vm("a", "Running", "Pending")])));
    }

    [Fact]
    public void A_create_retried_with_its_key_that_gets_name_exists_broke_idempotency()
    {
        var ops = new[]
        {
            Op(OperationKind.Create, "a", OperationOutcome.Unknown, 1, detail: "no answer from h1"),
            Op(OperationKind.Create, "a", OperationOutcome.Refused, 2, detail: "attempt 2: 409 from h2: exists"),
        };

        Assert.Equal(["idempotency"], Kinds(Record(ops, [Vm("a")])));
    }

    [Fact]
    public void The_live_stream_must_hold_every_journal_event_in_its_range_once_and_in_order()
    {
        var journal = new[] { new StreamedEvent(1, "VmRequested", "x"), new StreamedEvent(2, "VmPlaced", "x"), new StreamedEvent(3, "VmReady", "x") };

        Assert.Equal(["event-gap"], Kinds(Record([], [], live: [journal[0], journal[2]], replayed: journal)));
        Assert.Equal(["event-duplicate"], Kinds(Record([], [], live: [journal[0], journal[1], journal[1], journal[2]], replayed: journal)));
        Assert.Equal(["event-order"], Kinds(Record([], [], live: [journal[0], journal[2], journal[1]], replayed: journal)));
    }

    [Fact]
    public void An_acknowledged_create_without_its_event_in_the_journal_is_missing()
    {
        var record = Record([Op(OperationKind.Create, "a", OperationOutcome.Ok, 1, id: "id-a")], [Vm("a")]);

        Assert.Equal(["event-missing"], Kinds(record));
    }

    [Fact]
    public void A_double_run_is_a_violation_except_in_the_moment_after_a_whole_host_thaws()
    {
        var freeze = new InjectedFault(FaultKind.FreezeHost, 2, 10, 30, 55, "");
        var inOverlap = Record([], [], faults: [freeze], doubleRuns: [(30.2, "vm a twice")]);
        var later = Record([], [], faults: [freeze], doubleRuns: [(30 + HistoryChecker.ThawOverlapGraceS + 1, "vm a twice")]);

        Assert.Empty(Kinds(inOverlap));
        Assert.Single(HistoryChecker.ThawOverlaps(inOverlap));
        Assert.Equal(["double-run"], Kinds(later));
    }
}
