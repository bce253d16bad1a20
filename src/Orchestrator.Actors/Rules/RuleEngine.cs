using Akka.Actor;
using Akka.Event;
using Orchestrator.Actors.Events;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Tenants;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;

namespace Orchestrator.Actors.Rules;

public static class RuleProtocol
{
    /// <summary>From the scheduler whenever the set of rules changes (and after recovery).</summary>
    public sealed record RulesChanged(IReadOnlyList<RuleRecord> Rules);

    /// <summary>The engine's counts, saved with the offset they are counted up to.</summary>
    public sealed record Saved(long After, DateTimeOffset Since, IReadOnlyList<RuleWindow> Windows) : IProjectionSnapshot;
}

/// <summary>
/// Runs tenants' automation rules: counts each VM's events against event rules (<see cref="RuleCounts"/>, N of a type
/// within a window) and keeps a timer per scheduled rule (cron, UTC). When one fires it asks the scheduler to
/// <c>FireRule</c>; the ledger decides what that does and journals it as RuleFired naming the rule. A child of the
/// scheduler that reads the journal from where it left off, its counts saved with it, so they survive the scheduler
/// moving. A schedule's run missed while no scheduler was up is not made up.
/// </summary>
public sealed class RuleEngine : JournalProjection
{
    private readonly Dictionary<string, RuleRecord> _rules = [];
    private readonly Func<DateTimeOffset> _now;
    private readonly TenantBudget _budget;
    private RuleCounts _counts = RuleCounts.Empty;

    /// <param name="since">when the scheduler recovered: on the first start of all, events from then on are counted.</param>
    /// <param name="budget">the tenants' request budget each firing takes a token from (default: this node's).</param>
    public RuleEngine(DateTimeOffset since, Func<DateTimeOffset>? now = null, TenantBudget? budget = null) : base("rules", since)
    {
        _now = now ?? (() => DateTimeOffset.UtcNow);
        _budget = budget ?? TenantBudget.Get(Context.System);
        Command<RuleProtocol.RulesChanged>(changed =>
        {
            foreach (var gone in _rules.Keys.Where(id => changed.Rules.All(r => r.Id != id)).ToList())
            {
                _rules.Remove(gone);
                Timers.Cancel(gone);
            }

            foreach (var rule in changed.Rules)
            {
                var isNew = !_rules.ContainsKey(rule.Id);
                _rules[rule.Id] = rule;
                if (isNew && rule.Schedule is not null)
                {
                    ScheduleNext(rule);
                }
            }

            _counts = _counts.Keep(_rules.Keys.ToHashSet());
            Configured();
        });
        Command<Due>(due =>
        {
            if (_rules.TryGetValue(due.RuleId, out var rule))
            {
                Fire(rule, null, $"schedule '{rule.Schedule}' at {due.At:u}");
                ScheduleNext(rule);
            }
        });
        Command<SchedulerReplies.Done>(_ => { });
        Command<SchedulerReplies.Refused>(refused => Log.Warning("a rule's action was refused: {0}", refused.Refusal.Message));
    }

    public static Props Props(DateTimeOffset since) => Akka.Actor.Props.Create(() => new RuleEngine(since, null, null));

    protected override void Handle(JournaledEvent journaled)
    {
        if (journaled.Tenant is not { } tenant)
        {
            return;
        }

        (_counts, var fired) = _counts.Count(_rules.Values, tenant, journaled.Event, journaled.WrittenAt);
        foreach (var rule in fired)
        {
            Fire(rule, ((IVmLedgerEvent)journaled.Event).VmId, $"{journaled.Event.GetType().Name} {rule.Count} time(s) within {rule.Within}");
        }

        if (fired.Count > 0)
        {
            Save(); // a firing is not to be redone by the next scheduler, as far as can be helped
        }
    }

    protected override IProjectionSnapshot Snapshot(long handled) => new RuleProtocol.Saved(handled, Since, _counts.Windows);

    protected override void Restore(IProjectionSnapshot snapshot) => _counts = RuleCounts.From(((RuleProtocol.Saved)snapshot).Windows);

    /// <summary>
    /// A firing is a request made for the tenant: it takes a token from the tenant's budget like an API call, and is
    /// skipped (logged) when there is none, so no schedule or event storm does more than its tenant could ask for.
    /// </summary>
    private void Fire(RuleRecord rule, VmId? vmId, string reason)
    {
        if (!_budget.TryTake(rule.Tenant, out _))
        {
            Log.Warning("rule {0} of tenant {1} fired ({2}) with its tenant over its request budget: skipped", rule.Id, rule.Tenant, reason);
            return;
        }

        Context.Parent.Tell(new LedgerCommands.FireRule(rule.Id, vmId, reason));
    }

    private void ScheduleNext(RuleRecord rule)
    {
        if (rule.NextRun(_now()) is { } next)
        {
            // Timers take a delay; a long one is fine, the next is computed again after each run.
            Timers.StartSingleTimer(rule.Id, new Due(rule.Id, next), next - _now() + TimeSpan.FromMilliseconds(5));
        }
    }

    private sealed record Due(string RuleId, DateTimeOffset At);
}
