using Akka.Actor;
using Akka.Event;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Tenants;
using Orchestrator.Actors.Webhooks;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;

namespace Orchestrator.Actors.Rules;

public static class RuleProtocol
{
    /// <summary>From the scheduler whenever the set of rules changes (and after recovery).</summary>
    public sealed record RulesChanged(IReadOnlyList<RuleRecord> Rules);
}

/// <summary>
/// Runs tenants' automation rules: counts each VM's events against event rules (N of a type within a window) and
/// keeps a timer per scheduled rule (cron, UTC). When one fires it asks the scheduler to <c>FireRule</c>; the ledger
/// decides what that does and journals it as RuleFired naming the rule. A child of the scheduler, fed the same
/// written events as the webhooks, so counts start afresh when the scheduler moves.
/// </summary>
public sealed class RuleEngine : ReceiveActor, IWithTimers
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, RuleRecord> _rules = [];
    private readonly Dictionary<(string Rule, VmId Vm), Queue<DateTimeOffset>> _windows = [];
    private readonly Func<DateTimeOffset> _now;
    private readonly TenantBudget _budget;

    /// <param name="budget">the tenants' request budget each firing takes a token from (default: this node's).</param>
    public RuleEngine(Func<DateTimeOffset>? now = null, TenantBudget? budget = null)
    {
        _now = now ?? (() => DateTimeOffset.UtcNow);
        _budget = budget ?? TenantBudget.Get(Context.System);
        Receive<RuleProtocol.RulesChanged>(changed =>
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

            foreach (var stale in _windows.Keys.Where(k => !_rules.ContainsKey(k.Rule)).ToList())
            {
                _windows.Remove(stale);
            }
        });
        Receive<WebhookProtocol.Publish>(OnEvent);
        Receive<Due>(due =>
        {
            if (_rules.TryGetValue(due.RuleId, out var rule))
            {
                Fire(rule, null, $"schedule '{rule.Schedule}' at {due.At:u}");
                ScheduleNext(rule);
            }
        });
        Receive<SchedulerReplies.Done>(_ => { });
        Receive<SchedulerReplies.Refused>(refused => _log.Warning("a rule's action was refused: {0}", refused.Refusal.Message));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props() => Akka.Actor.Props.Create(() => new RuleEngine(null));

    private void OnEvent(WebhookProtocol.Publish published)
    {
        if (published.Event is not IVmLedgerEvent vmEvent || published.Event is LedgerEvents.RuleFired)
        {
            return; // a rule's own doing never counts towards a rule
        }

        var type = published.Event.GetType().Name;
        var now = _now();
        foreach (var rule in _rules.Values.Where(r => r.OnEvent == type && r.Tenant.Value == published.Tenant))
        {
            var key = (rule.Id, vmEvent.VmId);
            if (!_windows.TryGetValue(key, out var seen))
            {
                _windows[key] = seen = new Queue<DateTimeOffset>();
            }

            seen.Enqueue(now);
            while (seen.Count > 0 && now - seen.Peek() > rule.Within)
            {
                seen.Dequeue();
            }

            if (seen.Count >= rule.Count)
            {
                _windows.Remove(key);
                Fire(rule, vmEvent.VmId, $"{type} {rule.Count} time(s) within {rule.Within}");
            }
        }
    }

    /// <summary>
    /// A firing is a request made for the tenant: it takes a token from the tenant's budget like an API call, and is
    /// skipped (logged) when there is none, so no schedule or event storm does more than its tenant could ask for.
    /// </summary>
    private void Fire(RuleRecord rule, VmId? vmId, string reason)
    {
        if (!_budget.TryTake(rule.Tenant, out _))
        {
            _log.Warning("rule {0} of tenant {1} fired ({2}) with its tenant over its request budget: skipped", rule.Id, rule.Tenant, reason);
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
