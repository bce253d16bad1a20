using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

/// <summary>
/// Every identifier a tenant types is checked to its last character: in .NET a pattern ending in '$' also matches
/// before a final '\n', so "web\n" passed for a VM name, a label, a tenant id or a rule name.
/// </summary>
public class IdentifierTests
{
    public static TheoryData<string> Trailing => new() { "\n", "\r\n", "\r", "\t", " ", "\0", "\u001b[31m" };

    [Theory]
    [MemberData(nameof(Trailing))]
    public void A_vm_name_with_a_trailing_control_character_is_invalid(string tail)
    {
        Assert.False(VmSpecValidator.IsValidName("web" + tail));
        var errors = VmSpecValidator.Validate(new VmSpec("web" + tail, 1, 256, "demo"), VmSpecLimits.Default, new HashSet<string> { "demo" });
        Assert.Equal("name", Assert.Single(errors).Field);
    }

    [Theory]
    [MemberData(nameof(Trailing))]
    public void A_label_key_or_value_with_a_trailing_control_character_is_invalid(string tail)
    {
        Assert.Equal("labels", Assert.Single(VmLabels.Validate(new Dictionary<string, string> { ["env" + tail] = "dev" })).Field);
        Assert.Equal("labels.env", Assert.Single(VmLabels.Validate(new Dictionary<string, string> { ["env"] = "dev" + tail })).Field);
        Assert.Equal("labels.env", Assert.Single(VmLabels.Validate(new Dictionary<string, string> { ["env"] = tail })).Field);
    }

    [Fact]
    public void An_empty_label_value_stays_valid() =>
        Assert.Empty(VmLabels.Validate(new Dictionary<string, string> { ["env"] = "" }));

    [Theory]
    [MemberData(nameof(Trailing))]
    public void A_tenant_id_with_a_trailing_control_character_is_refused(string tail)
    {
        var refused = new LedgerDriver().Send(new LedgerCommands.CreateTenant(new TenantId("acme" + tail), TenantQuota.Unlimited));
        Assert.Equal(RefusalKind.Invalid, refused.Refusal?.Kind);
        Assert.Equal("id", refused.Refusal!.Errors.Single().Field);
    }

    [Theory]
    [MemberData(nameof(Trailing))]
    public void A_rule_name_or_selector_with_a_trailing_control_character_is_refused(string tail)
    {
        var events = new HashSet<string> { "VmRestarting" };
        var byName = RuleRecord.Validate("nightly" + tail, "VmRestarting", 1, TimeSpan.FromMinutes(1), null, null, events).ToList();
        Assert.Equal("name", Assert.Single(byName).Field);
        var bySelector = RuleRecord.Validate("nightly", "VmRestarting", 1, TimeSpan.FromMinutes(1), null,
            new Dictionary<string, string> { ["env"] = "prod" + tail }, events).ToList();
        Assert.Equal("selector.env", Assert.Single(bySelector).Field);
    }

    [Theory]
    [MemberData(nameof(Trailing))]
    public void A_key_name_a_webhook_url_or_a_cpuset_with_a_trailing_control_character_is_refused(string tail)
    {
        var key = new LedgerDriver().Send(new LedgerCommands.IssueKey("k1", TenantId.System, KeyRole.Member, "hash", "ci" + tail));
        // A key's name is free text (spaces allowed), but never a control character.
        Assert.Equal(tail.Any(char.IsControl) ? "name" : null, key.Refusal?.Errors.Single().Field);
        Assert.Equal("url", Assert.Single(WebhookRecord.Validate("https://example.com/hook" + tail, [], new HashSet<string>())).Field);
        Assert.Equal("cpuset", Assert.Single(new VmResources(Cpuset: "0-1" + tail).Validate(2, 256)).Field);
    }

    [Theory]
    [MemberData(nameof(Trailing))]
    public void A_cron_schedule_with_a_trailing_control_character_or_space_is_refused(string tail)
    {
        var errors = RuleRecord.Validate("nightly", null, 1, TimeSpan.FromMinutes(1), "0 3 * * *" + tail, null, new HashSet<string>()).ToList();
        Assert.Equal("schedule", Assert.Single(errors).Field);
    }
}
