using Akka.Actor;
using Orchestrator.Actors.Events;
using Orchestrator.Actors.Rules;
using Orchestrator.Actors.Webhooks;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// The scheduler's journal projections, the webhook dispatcher and the rule engine: started once it has recovered,
/// told whenever the webhooks or rules change. Until both have said <see cref="ProjectionProtocol.Started"/>, the
/// scheduler writes nothing (their first start owes the events written from then on).
/// </summary>
internal sealed class ProjectionChildren
{
    /// <summary>How long the scheduler waits for them before it goes on regardless (logged).</summary>
    public static readonly TimeSpan StartWait = TimeSpan.FromSeconds(10);

    private readonly IActorRef _webhooks;
    private readonly IActorRef _rules;
    private int _starting = 2;

    private ProjectionChildren(IActorRef webhooks, IActorRef rules)
    {
        _webhooks = webhooks;
        _rules = rules;
    }

    public bool Starting => _starting > 0;

    public static ProjectionChildren Start(IActorContext context, WebhookSettings settings, LedgerState state)
    {
        // On the first start of all they owe the events written from now on: none was before this recovery ended.
        var since = DateTimeOffset.UtcNow;
        var children = new ProjectionChildren(
            context.ActorOf(WebhookDispatcher.Props(settings, since), "webhooks"),
            context.ActorOf(RuleEngine.Props(since), "rules"));
        children._webhooks.Tell(new WebhookProtocol.Hooks(state.Webhooks.Values.ToList()));
        children._rules.Tell(new RuleProtocol.RulesChanged(state.Rules.Values.ToList()));
        return children;
    }

    /// <returns>whether this was the last of them to start.</returns>
    public bool OneStarted() => _starting > 0 && --_starting == 0;

    /// <summary>Waited long enough: the scheduler goes on.</summary>
    public void StopWaiting() => _starting = 0;

    /// <summary>The persisted state moved from <paramref name="before"/> to <paramref name="after"/>.</summary>
    public void Changed(LedgerState before, LedgerState after)
    {
        if (!ReferenceEquals(before.Webhooks, after.Webhooks))
        {
            _webhooks.Tell(new WebhookProtocol.Hooks(after.Webhooks.Values.ToList()));
        }

        if (!ReferenceEquals(before.Rules, after.Rules))
        {
            _rules.Tell(new RuleProtocol.RulesChanged(after.Rules.Values.ToList()));
        }
    }

    /// <summary>A webhook's recent deliveries, from the dispatcher; none when webhooks are off.</summary>
    public static void Deliveries(ProjectionChildren? children, WebhookProtocol.GetDeliveries query, IActorRef asker)
    {
        if (children is null)
        {
            asker.Tell(new WebhookProtocol.Deliveries([]));
        }
        else
        {
            children._webhooks.Tell(query, asker);
        }
    }
}
