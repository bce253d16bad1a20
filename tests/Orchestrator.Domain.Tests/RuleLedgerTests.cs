using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Domain.Tests;

/// <summary>Automation rules in the ledger: validation, and what firing one does, each action journaled naming the rule.</summary>
public class RuleLedgerTests
{
    private static readonly TenantId Acme = new("acme");
    private static readonly Dictionary<string, string> Dev = new() { ["env"] = "dev" };

    private static LedgerDriver WithVms(params (string Name, IReadOnlyDictionary<string, string>? Labels)[] vms)
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        ledger.Host("h2");
        ledger.Send(new LedgerCommands.CreateTenant(Acme, TenantQuota.Unlimited));
        foreach (var (name, labels) in vms)
        {
            Assert.Null(ledger.Send(new LedgerCommands.CreateVm(Acme, new VmSpec(name, 1, 256, "demo", Labels: labels), VmId.New())).Refusal);
        }

        return ledger;
    }

    [Fact]
    public void A_scheduled_stop_acts_on_the_selected_vms_only_and_each_action_names_the_rule()
    {
        var ledger = WithVms(("dev-1", Dev), ("dev-2", Dev), ("prod", null));
        Assert.Null(ledger.Send(new LedgerCommands.CreateRule("r1", Acme, "evening", null, 1, TimeSpan.Zero, "0 20 * * 1-5", Dev, RuleAction.Stop)).Refusal);

        var fired = ledger.Send(new LedgerCommands.FireRule("r1", null, "schedule"));
        var names = fired.Events.OfType<RuleFired>().Select(f => ledger.State.Vms[f.VmId].Spec.Name).ToList();
        Assert.Equal(["dev-1", "dev-2"], names);
        Assert.All(fired.Events.OfType<RuleFired>(), f => Assert.Equal(("r1", "evening"), (f.RuleId, f.RuleName)));
        Assert.Equal(DesiredState.Stopped, ledger.State.FindVm(Acme, "dev-1")!.Desired);
        Assert.Equal(DesiredState.Running, ledger.State.FindVm(Acme, "prod")!.Desired);

        Assert.Empty(ledger.Send(new LedgerCommands.FireRule("r1", null, "schedule")).Events); // already stopped: nothing to do
    }

    [Fact]
    public void Replace_moves_the_vm_to_another_host_under_a_new_epoch()
    {
        var ledger = WithVms(("crashy", null));
        var before = ledger.State.FindVm(Acme, "crashy")!;
        ledger.Send(new LedgerCommands.CreateRule("r1", Acme, "crashy", "VmRestarting", 3, TimeSpan.FromMinutes(10), null, VmLabels.None,
            RuleAction.Replace));
        var fired = ledger.Send(new LedgerCommands.FireRule("r1", before.Id, "3 restarts"));
        var placed = Assert.Single(fired.Events.OfType<VmPlaced>());
        Assert.NotEqual(before.Host, placed.HostId);
        Assert.Equal(before.Epoch.Next(), placed.Epoch);
        Assert.IsType<RuleFired>(fired.Events[0]);
    }

    [Fact]
    public void Replace_with_nowhere_else_to_go_is_journaled_with_the_reason_and_leaves_the_vm()
    {
        var ledger = new LedgerDriver();
        ledger.Host("only");
        ledger.Send(new LedgerCommands.CreateTenant(Acme, TenantQuota.Unlimited));
        var vm = ledger.Create("lonely", tenant: "acme");
        ledger.Send(new LedgerCommands.CreateRule("r1", Acme, "move", "VmRestarting", 1, TimeSpan.FromMinutes(1), null, VmLabels.None, RuleAction.Replace));
        var fired = Assert.IsType<RuleFired>(Assert.Single(ledger.Send(new LedgerCommands.FireRule("r1", vm.Id, "restarted")).Events));
        Assert.Contains("no other host", fired.Reason);
        Assert.Equal(vm.Host, ledger.State.Vms[vm.Id].Host);
    }

    [Fact]
    public void A_rule_acts_only_on_its_own_tenants_vms()
    {
        var ledger = WithVms(("mine", null));
        ledger.Send(new LedgerCommands.CreateTenant(new TenantId("other"), TenantQuota.Unlimited));
        ledger.Send(new LedgerCommands.CreateRule("r1", new TenantId("other"), "grab", "VmRestarting", 1, TimeSpan.FromMinutes(1), null,
            VmLabels.None, RuleAction.Stop));
        Assert.Empty(ledger.Send(new LedgerCommands.FireRule("r1", ledger.State.FindVm(Acme, "mine")!.Id, "x")).Events);
    }

    [Theory]
    [InlineData(null, null, "on")]
    [InlineData("VmRestarting", "0 20 * * *", "on")]
    [InlineData("NoSuchEvent", null, "on.event")]
    [InlineData(null, "not a cron", "schedule")]
    public void Invalid_rules_are_refused_naming_the_field(string? onEvent, string? schedule, string field)
    {
        var ledger = WithVms();
        var refused = ledger.Send(new LedgerCommands.CreateRule("r1", Acme, "bad", onEvent, 1, TimeSpan.FromMinutes(1), schedule, VmLabels.None,
            RuleAction.Stop));
        Assert.Contains(refused.Refusal!.Errors, e => e.Field == field);
    }

    [Theory]
    [InlineData("*/99999999999 * * * *")]
    [InlineData("0 0 99999999999 * *")]
    [InlineData("0-4294967296 * * * *")]
    [InlineData("* * * * * * *")]
    [InlineData("60 * * * *")]
    [InlineData("0 0 31 2 *")] // parses, but never comes
    [InlineData("0 3 * * *\n")]
    public void Out_of_range_cron_expressions_are_refused_or_never_run_and_nothing_throws(string schedule)
    {
        var errors = RuleRecord.Validate("nightly", null, 1, TimeSpan.FromMinutes(1), schedule, null, new HashSet<string>()).ToList();
        if (errors.Count == 0)
        {
            var rule = new RuleRecord("r1", Acme, "nightly", null, 1, TimeSpan.FromMinutes(1), schedule, VmLabels.None, RuleAction.Stop,
                LedgerDriver.Now);
            Assert.Null(rule.NextRun(LedgerDriver.Now));
        }
        else
        {
            Assert.Equal("schedule", Assert.Single(errors).Field);
        }
    }

    [Theory]
    [InlineData("* * * * * *", 1)]
    [InlineData("*/2 * * * * *", 2)]
    [InlineData("0,30 * * * * *", 30)]
    [InlineData("0,59 0 3 * * *", 59)] // twice in one minute a day
    [InlineData("0,59 * * * * *", 1)] // 1 s from :59 to the next minute's :00
    [InlineData("0-5 0 0 1 1 *", 1)] // six seconds once a year: still a burst
    public void A_tenants_schedule_that_runs_more_often_than_once_a_minute_is_refused_naming_the_field(string schedule, int everySeconds)
    {
        var ledger = WithVms(("dev-1", Dev));
        var refused = ledger.Send(new LedgerCommands.CreateRule("r1", Acme, "flood", null, 1, TimeSpan.Zero, schedule, Dev, RuleAction.Stop));
        var error = Assert.Single(refused.Refusal!.Errors);
        Assert.Equal("schedule", error.Field);
        Assert.Contains($"every {everySeconds} s", error.Message);
        Assert.Empty(ledger.State.Rules);

        // The operator may: its rules still count against the tenant's request budget where they fire.
        Assert.Null(ledger.Send(new LedgerCommands.CreateRule("r2", Acme, "drill", null, 1, TimeSpan.Zero, schedule, Dev, RuleAction.Stop,
            ByAdmin: true)).Refusal);
    }

    [Theory]
    [InlineData("* * * * *")]
    [InlineData("30 * * * * *")]
    [InlineData("0 20 * * 1-5")]
    [InlineData("0 0 1 1 *")]
    public void Schedules_that_run_at_most_once_a_minute_are_accepted(string schedule)
    {
        Assert.Empty(RuleRecord.Validate("nightly", null, 1, TimeSpan.Zero, schedule, null, new HashSet<string>(), LedgerDriver.Now));
        Assert.True(RuleRecord.ShortestInterval(RuleRecord.ParseCron(schedule)!, LedgerDriver.Now) is not { } shortest
                    || shortest >= RuleRecord.MinScheduleInterval);
    }

    [Fact]
    public void A_cron_rule_knows_its_next_run_in_utc_and_six_fields_mean_seconds()
    {
        var rule = new RuleRecord("r", Acme, "n", null, 1, TimeSpan.Zero, "0 20 * * 1-5", VmLabels.None, RuleAction.Stop, DateTimeOffset.UnixEpoch);
        var friday = new DateTimeOffset(2026, 11, 27, 21, 0, 0, TimeSpan.Zero);
        Assert.Equal(new DateTimeOffset(2026, 11, 30, 20, 0, 0, TimeSpan.Zero), rule.NextRun(friday)); // Monday
        var everyTwo = rule with { Schedule = "*/2 * * * * *" };
        Assert.Equal(friday.AddSeconds(2), everyTwo.NextRun(friday));
    }
}
