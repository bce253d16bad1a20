using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>Idempotency-Keys journaled with the VM they made: a retry gets that VM, another body is refused, a day later the key is free.</summary>
public class IdempotencyLedgerTests
{
    private static readonly IdempotencyToken Token = new("key-digest", "body-digest");

    private static LedgerCommands.CreateVm Create(string name, IdempotencyToken? token) =>
        new(TenantId.System, new VmSpec(name, 1, 256, "demo"), VmId.New(), token);

    private static LedgerDriver Ledger()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        return ledger;
    }

    [Fact]
    public void A_retried_create_decides_nothing_and_names_the_vm_its_key_made()
    {
        var ledger = Ledger();
        var first = Create("web", Token);
        Assert.Null(ledger.Send(first).Refusal);
        Assert.Equal(Token, Assert.IsType<LedgerEvents.VmRequested>(ledger.Journal.First(e => e is LedgerEvents.VmRequested)).Idempotency);

        var retry = Create("web", Token); // a new id, as a retried request gets
        var decision = ledger.Send(retry);

        Assert.Null(decision.Refusal);
        Assert.Empty(decision.Events);
        Assert.Equal(first.NewId, ledger.State.VmCreatedBy(Token, LedgerDriver.Now));
        Assert.Single(ledger.State.Vms);
    }

    [Fact]
    public void The_same_key_with_another_body_is_refused_as_reused_and_so_is_a_key_whose_vm_was_deleted()
    {
        var ledger = Ledger();
        Assert.Null(ledger.Send(Create("web", Token)).Refusal);

        var other = ledger.Send(Create("db", Token with { BodyHash = "another" }));
        Assert.Equal(RefusalKind.KeyReused, other.Refusal?.Kind);

        Assert.Null(ledger.Send(new LedgerCommands.DeleteVm(TenantId.System, "web")).Refusal);
        ledger.Send(new LedgerCommands.ConfirmDeleted(ledger.State.Vms.Values.Single().Id));
        Assert.Empty(ledger.State.Vms);
        var afterDelete = ledger.Send(Create("web", Token));
        Assert.Equal(RefusalKind.Conflict, afterDelete.Refusal?.Kind);
        Assert.Contains("deleted since", afterDelete.Refusal!.Message);
    }

    [Fact]
    public void A_key_is_kept_a_day_then_forgotten_by_the_next_keyed_create()
    {
        var ledger = Ledger();
        Assert.Null(ledger.Send(Create("web", Token)).Refusal);

        var later = LedgerDriver.Now + LedgerState.IdempotencyKeptFor + TimeSpan.FromMinutes(1);
        Assert.Null(ledger.State.VmCreatedBy(Token, later));
        var fresh = ledger.State.Decide(Create("db", new IdempotencyToken("other-key", "b")), ledger.Rules, later);
        Assert.Null(fresh.Refusal);
        var state = fresh.Events.Aggregate(ledger.State, (s, e) => s.Apply(e));

        Assert.Equal(["other-key"], state.IdempotencyKeys.Keys);
        // A snapshot's keys come back the same, oldest first for expiry.
        var restored = LedgerState.Empty.WithIdempotencyKeys(state.IdempotencyKeys.Values);
        Assert.Equal(state.IdempotencyKeys, restored.IdempotencyKeys);
    }

    [Fact]
    public void A_create_without_a_key_keeps_nothing()
    {
        var ledger = Ledger();
        Assert.Null(ledger.Send(Create("web", null)).Refusal);
        Assert.Empty(ledger.State.IdempotencyKeys);
    }
}
