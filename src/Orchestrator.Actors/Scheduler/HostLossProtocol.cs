using Akka.Actor;
using Orchestrator.Domain;

namespace Orchestrator.Actors.Scheduler;

/// <summary>Between the scheduler and its <see cref="HostLossDetector"/>.</summary>
public static class HostLossProtocol
{
    /// <summary>From the scheduler: a host's agent registered; the detector watches it.</summary>
    public sealed record AgentRegistered(HostId Host, IActorRef Agent);

    /// <summary>From the scheduler, a while after it recovered: the hosts its ledger has Up, with their addresses.</summary>
    public sealed record CheckMembers(IReadOnlyList<(HostId Host, string Address)> UpInLedger);

    /// <summary>To the scheduler: the host's VMs are to be re-placed now (its fence guard has surely killed them).</summary>
    public sealed record Lost(HostId Host);

    /// <summary>To the scheduler: this agent of the host is gone; route nothing to it.</summary>
    public sealed record AgentGone(HostId Host, IActorRef Agent);

    /// <summary>To the scheduler: whether the member the host's agent lives on can be reached (shown on the host).</summary>
    public sealed record Reachability(HostId Host, bool Reachable);
}
