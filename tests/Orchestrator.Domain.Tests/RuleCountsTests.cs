using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class RuleCountsTests
{
    private static readonly TenantId Acme = new("acme");
    private static readonly DateTimeOffset T0 = new(2026, 12, 5, 0, 0, 0, TimeSpan.Zero);
    private static readonly VmId Vm1 = VmId.New();
    private static readonly VmId Vm2 = VmId.New();

    private static RuleRecord TwoFailures(string id = "r1", TenantId? tenant = null, DateTimeOffset? created = null) =>
        new(id, tenant ?? Acme, "two-strikes", nameof(LedgerEvents.VmFailed), 2, TimeSpan.FromMinutes(5), null, VmLabels.None,
            RuleAction.Stop, created ?? T0.AddDays(-1));

    private static LedgerEvents.VmFailed Failed(VmId vm) => new(vm, new Epoch(1), "crash");

    [Fact]
    public void A_rule_fires_at_its_count_within_its_window_and_counts_afresh()
    {
        var rules = new[] { TwoFailures() };
        var (counts, fired) = RuleCounts.Empty.Count(rules, Acme, Failed(Vm1), T0);
        Assert.Empty(fired);
        (counts, fired) = counts.Count(rules, Acme, Failed(Vm1), T0.AddMinutes(1));
        Assert.Equal("r1", Assert.Single(fired).Id);
        Assert.Empty(counts.Windows);
        (_, fired) = counts.Count(rules, Acme, Failed(Vm1), T0.AddMinutes(2));
        Assert.Empty(fired);
    }

    [Fact]
    public void Events_further_apart_than_the_window_or_of_another_vm_do_not_add_up()
    {
        var rules = new[] { TwoFailures() };
        var (counts, _) = RuleCounts.Empty.Count(rules, Acme, Failed(Vm1), T0);
        var (afterOther, firedByOther) = counts.Count(rules, Acme, Failed(Vm2), T0.AddMinutes(1));
        Assert.Empty(firedByOther);
        var (_, late) = afterOther.Count(rules, Acme, Failed(Vm1), T0.AddMinutes(6));
        Assert.Empty(late);
    }

    [Fact]
    public void A_rule_counts_only_its_tenants_events_written_since_it_was_created_and_never_its_own_firings()
    {
        var rule = TwoFailures(created: T0.AddMinutes(1));
        var (counts, _) = RuleCounts.Empty.Count([rule], Acme, Failed(Vm1), T0); // before the rule existed
        (counts, _) = counts.Count([rule], new TenantId("other"), Failed(Vm1), T0.AddMinutes(2));
        (counts, _) = counts.Count([rule], Acme, new LedgerEvents.RuleFired(Vm1, "r1", "two-strikes", RuleAction.Stop, "x"), T0.AddMinutes(2));
        var (_, fired) = counts.Count([rule], Acme, Failed(Vm1), T0.AddMinutes(3));
        Assert.Empty(fired);
    }

    [Fact]
    public void Counts_of_a_deleted_rule_are_forgotten()
    {
        var (counts, _) = RuleCounts.Empty.Count([TwoFailures()], Acme, Failed(Vm1), T0);
        Assert.Single(counts.Windows);
        Assert.Empty(counts.Keep(new HashSet<string> { "r2" }).Windows);
        Assert.Same(counts, counts.Keep(new HashSet<string> { "r1" }));
    }

    /// <summary>
    /// The property the scheduler's failover relies on: counting a history straight through, or stopping anywhere,
    /// saving the windows and counting the rest from them, fires the same rules at the same events.
    /// </summary>
    [Property(MaxTest = 300)]
    public Property Counting_resumed_from_saved_windows_fires_exactly_as_counting_straight_through() =>
        Prop.ForAll(
            Gen.ListOf(Gen.Choose(0, 1).Zip(Gen.Choose(0, 400))).Zip(Gen.Choose(0, 60)).ToArbitrary(),
            input =>
            {
                var (steps, cut) = input;
                var rules = new[] { TwoFailures("r1"), TwoFailures("r2") with { Count = 3, Within = TimeSpan.FromSeconds(90) } };
                var history = steps.Select((s, i) => (Vm: s.Item1 == 0 ? Vm1 : Vm2, At: T0.AddSeconds(i * 10 + s.Item2 % 10))).ToList();

                List<string> Run(RuleCounts counts, IEnumerable<(VmId Vm, DateTimeOffset At)> events, List<string> log, out RuleCounts end)
                {
                    foreach (var (vm, at) in events)
                    {
                        (counts, var fired) = counts.Count(rules, Acme, Failed(vm), at);
                        log.AddRange(fired.Select(r => $"{r.Id}@{at:O}/{vm}"));
                    }

                    end = counts;
                    return log;
                }

                var straight = Run(RuleCounts.Empty, history, [], out _);
                var split = Math.Min(cut, history.Count);
                var resumed = Run(RuleCounts.Empty, history.Take(split), [], out var saved);
                resumed = Run(RuleCounts.From(saved.Windows), history.Skip(split), resumed, out _);
                return straight.SequenceEqual(resumed).Label(string.Join(",", straight) + " vs " + string.Join(",", resumed));
            });
}
