using Akka.Actor;
using Orchestrator.Actors.Rules;
using Orchestrator.Actors.Settings;
using Orchestrator.Actors.Tenants;
using Orchestrator.Actors.Events;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Tests;

/// <summary>The rule engine alone, its parent a probe standing for the scheduler.</summary>
public sealed class RuleEngineTests : PersistentTestKit
{
    private static readonly TenantId Acme = new("acme");

    [Fact]
    public void Rule_firings_take_from_the_tenants_request_budget_and_stop_when_it_is_spent()
    {
        // A budget of 3 (refilled at 1/s, on a clock that stands still, so no token comes back however slowly the
        // machine runs the test): the firings past it are skipped, not queued.
        var budget = new TenantBudget(new ApiLimits(RequestsPerSecond: 1, Burst: 3), new StoppedClock());
        Assert.True(budget.TryTake(new TenantId("other"), out _)); // another tenant's spending is its own
        IgnoreMessages<ProjectionProtocol.Started>();
        var engine = ChildActorOf(Props.Create(() => new RuleEngine(DateTimeOffset.UnixEpoch, null, budget)));
        var rule = new RuleRecord("r1", Acme, "each-failure", nameof(LedgerEvents.VmFailed), 1, TimeSpan.FromMinutes(10), null,
            VmLabels.None, RuleAction.Start, DateTimeOffset.UnixEpoch);
        engine.Tell(new RuleProtocol.RulesChanged([rule]));

        for (var i = 0; i < 10; i++)
        {
            engine.Tell(new JournaledEvent(i + 1, Acme, new LedgerEvents.VmFailed(VmId.New(), new Epoch(1), "crash"), DateTimeOffset.UtcNow));
        }

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("r1", ExpectMsg<LedgerCommands.FireRule>().RuleId);
        }

        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        Assert.False(budget.TryTake(Acme, out var wait));
        Assert.True(wait > TimeSpan.Zero);
    }

    /// <summary>A clock whose time never moves.</summary>
    private sealed class StoppedClock : TimeProvider
    {
        public override long GetTimestamp() => 0;
    }
}
