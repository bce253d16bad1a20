using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>An error answer's size never grows with the request: lists are capped, echoed text is cut and escaped.</summary>
public class FieldErrorTests
{
    [Fact]
    public void A_long_list_of_errors_is_cut_to_the_cap_and_says_how_many_more_there_were()
    {
        var errors = Enumerable.Range(0, 100_000).Select(i => new FieldError("events", $"unknown event type 'x{i}'")).ToList();
        var bounded = FieldError.Bounded(errors);
        Assert.Equal(FieldError.MaxListed + 1, bounded.Count);
        Assert.Equal($"{100_000 - FieldError.MaxListed} more errors not listed", bounded[^1].Message);
        Assert.Same(errors.Take(3).ToList()[0], bounded[0]);
    }

    [Fact]
    public void Echoed_text_is_cut_and_its_control_characters_escaped()
    {
        Assert.Equal("web\\n", FieldError.Echo("web\n"));
        Assert.Equal("a\\u001b[31mb\\r\\t", FieldError.Echo("a\u001b[31mb\r\t"));
        var echoed = FieldError.Echo(new string('x', 100_000));
        Assert.Equal(FieldError.MaxEcho + 1, echoed.Length);
        Assert.EndsWith("…", echoed);
        // A surrogate pair is never cut in half.
        var emoji = new string('x', FieldError.MaxEcho - 1) + "😀😀";
        Assert.Equal(new string('x', FieldError.MaxEcho - 1) + "…", FieldError.Echo(emoji));
    }

    [Fact]
    public void A_webhook_with_a_hundred_thousand_bad_event_names_gets_one_error()
    {
        var names = Enumerable.Range(0, 100_000).Select(i => $"NoSuchEvent{i}").ToList();
        var errors = WebhookRecord.Validate("https://example.com/hook", names, LedgerState.EventTypeNames).ToList();
        Assert.Equal("events", Assert.Single(errors).Field);
    }

    [Fact]
    public void A_missing_vm_or_tenant_is_named_escaped_and_cut_in_the_refusal()
    {
        var ledger = new LedgerDriver();
        var refused = ledger.Send(new LedgerCommands.StopVm(TenantId.System, "web\n" + new string('x', 10_000)));
        Assert.Equal(RefusalKind.NotFound, refused.Refusal!.Kind);
        Assert.DoesNotContain("\n", refused.Refusal.Message);
        Assert.True(refused.Refusal.Message.Length < 200, refused.Refusal.Message);
        var tenant = ledger.Send(new LedgerCommands.UpdateTenant(new TenantId("x\n" + new string('y', 10_000)), null, true));
        Assert.DoesNotContain("\n", tenant.Refusal!.Message);
        Assert.True(tenant.Refusal.Message.Length < 200, tenant.Refusal.Message);
    }
}
