using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// The scheduler's child that watches hosts go: their agents' deaths, their members' removal and reachability, and
/// (with PostgreSQL) their leases. It carries out what <see cref="HostLossWatch"/> decides and tells the scheduler one
/// <see cref="HostLossProtocol.Lost"/> when a host's VMs may be re-placed.
/// </summary>
public sealed class HostLossDetector : ReceiveActor, IWithTimers
{
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HostLeaseStore? _leases;
    private readonly Cluster? _cluster;
    private readonly Dictionary<HostId, IActorRef> _agents = [];
    private HostLossWatch _watch;

    public HostLossDetector(HostLossTimings timings, HostLeaseStore? leases)
    {
        _leases = leases;
        _watch = HostLossWatch.Create(timings.AfterDown, timings.AfterLeave, leases is not null);
        _cluster = ((ExtendedActorSystem)Context.System).Provider is ClusterActorRefProvider ? Cluster.Get(Context.System) : null;

        Receive<HostLossProtocol.AgentRegistered>(registered =>
        {
            _agents[registered.Host] = registered.Agent;
            Context.Watch(registered.Agent);
            Decide(new HostLossInput.AgentRegistered(registered.Host, registered.Agent.Path.Address.ToString()));
        });
        Receive<HostLossProtocol.CheckMembers>(check =>
        {
            var members = _cluster?.State.Members.Where(m => m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining)
                .Select(m => m.Address.ToString()).ToHashSet() ?? [];
            Decide(new HostLossInput.MembersChecked(check.UpInLedger, members));
        });
        Receive<Terminated>(t => Decide(new HostLossInput.MemberGone(t.ActorRef.Path.Address.ToString(), HostDeparture.AgentDied)));
        Receive<ClusterEvent.MemberRemoved>(removed => Decide(new HostLossInput.MemberGone(removed.Member.Address.ToString(),
            removed.PreviousStatus == MemberStatus.Down ? HostDeparture.Downed : HostDeparture.Left)));
        Receive<ClusterEvent.UnreachableMember>(m => Decide(new HostLossInput.Unreachable(m.Member.Address.ToString())));
        Receive<ClusterEvent.ReachableMember>(m => Decide(new HostLossInput.Reachable(m.Member.Address.ToString())));
        Receive<ClusterEvent.IMemberEvent>(_ => { });
        Receive<HostLossInput.Due>(Decide);
        Receive<HostLossInput.LeaseChecked>(Decide);
        Receive<LeaseCheckFailed>(failed =>
        {
            _log.Warning(failed.Cause, "cannot check host {0}'s lease; asking again before moving its VMs", failed.Host);
            Decide(new HostLossInput.LeaseCheckFailed(failed.Host));
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(HostLossTimings timings, HostLeaseStore? leases) =>
        Akka.Actor.Props.Create(() => new HostLossDetector(timings, leases));

    protected override void PreStart() => _cluster?.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
        typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));

    protected override void PostStop() => _cluster?.Unsubscribe(Self);

    private void Decide(HostLossInput input)
    {
        (_watch, var effects) = _watch.Decide(input);
        foreach (var effect in effects)
        {
            Carry(effect);
        }
    }

    private void Carry(HostLossEffect effect)
    {
        switch (effect)
        {
            case HostLossEffect.StartCountdown countdown:
                _log.Warning("host {0} {1}; re-placing its VMs in {2} unless it comes back", countdown.Host, countdown.Why, countdown.Delay);
                Timers.StartSingleTimer($"lose-{countdown.Host}", new HostLossInput.Due(countdown.Host), countdown.Delay);
                break;
            case HostLossEffect.CheckLease check:
                CheckLease(check.Host);
                break;
            case HostLossEffect.LoseHost lose:
                Context.Parent.Tell(new HostLossProtocol.Lost(lose.Host));
                break;
            case HostLossEffect.KeepHost keep:
                _log.Info("host {0} re-registered in time; its VMs stay", keep.Host);
                break;
            case HostLossEffect.AgentGone gone when _agents.Remove(gone.Host, out var agent):
                Context.Parent.Tell(new HostLossProtocol.AgentGone(gone.Host, agent));
                break;
            case HostLossEffect.ReachabilityChanged changed:
                Context.Parent.Tell(new HostLossProtocol.Reachability(changed.Host, changed.Reachable));
                break;
        }
    }

    /// <summary>Revokes an expired lease so a thawing host can't renew it and keep its VMs; no answer: ask again.</summary>
    private void CheckLease(HostId host)
    {
        var leases = _leases!;
        Task.Run(async () =>
        {
            var remaining = await leases.RemainingAsync(host, CancellationToken.None);
            if (remaining <= TimeSpan.Zero)
            {
                await leases.RevokeAsync(host, CancellationToken.None);
            }

            return remaining;
        }).PipeTo(Self, success: remaining => new HostLossInput.LeaseChecked(host, remaining), failure: ex => new LeaseCheckFailed(host, ex));
    }

    private sealed record LeaseCheckFailed(HostId Host, Exception Cause);
}
