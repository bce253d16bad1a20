using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Hypervisor;
using Orchestrator.Actors.Telemetry;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// The host agent's fencing (invariant I3), apart from its VMs: feeds the fence guard with heartbeats while this node sees
/// a majority and was not expelled, renews the host's PostgreSQL lease, and tells its parent when the majority is lost
/// or seen again (<see cref="MajorityChanged"/>), when the cluster removed this node (<see cref="Expelled"/>), and when the
/// lease was revoked (<see cref="LeaseRevoked"/>): then the parent's VMs must die.
/// </summary>
public sealed class FenceKeeperActor : ReceiveActor, IWithTimers
{
    public const string Name = "fence-keeper";

    /// <summary>To the parent: whether this node sees a majority of the cluster now.</summary>
    public sealed record MajorityChanged(bool Sees);

    /// <summary>To the parent: downed or removed by the cluster; this incarnation must never start a VM again.</summary>
    public sealed class Expelled
    {
        public static readonly Expelled Instance = new();

        private Expelled() { }
    }

    /// <summary>To the parent: the scheduler declared this host lost and moved its VMs; the copies here must die now.</summary>
    public sealed class LeaseRevoked
    {
        public static readonly LeaseRevoked Instance = new();

        private LeaseRevoked() { }
    }

    private readonly HostSettings _settings;
    private readonly HostId _hostId;
    private readonly IHypervisor _driver;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Cluster? _cluster;

    /// <summary>
    /// PostgreSQL host leases, when enabled. Only a revoked lease stops this host: while the database is unreachable
    /// no one can revoke it either, so nobody can start these VMs elsewhere and they keep running.
    /// </summary>
    private readonly HostLeaseStore? _leases;

    private bool _renewing;
    private bool _leaseAcquired;

    /// <summary>
    /// Whether this node sees a majority of the cluster. Without one it stops feeding the fence guard, which kills
    /// the host's VMs after fence-after: by then the majority may be about to start them elsewhere (I3).
    /// </summary>
    private bool _seesMajority = true;

    /// <summary>Downed, removed, or its lease revoked: this incarnation never feeds the guard again.</summary>
    private bool _expelled;

    /// <summary>The membership this keeper has been told of, from its own subscription.</summary>
    private MembershipView _membership = MembershipView.Empty;

    public FenceKeeperActor(HostSettings settings, HostId hostId, IHypervisor driver, HostLeaseStore? leases)
    {
        _settings = settings;
        _hostId = hostId;
        _driver = driver;
        _leases = leases;
        _cluster = ((ExtendedActorSystem)Context.System).Provider is ClusterActorRefProvider ? Cluster.Get(Context.System) : null;

        Receive<Heartbeat>(_ =>
        {
            if (_seesMajority && !_expelled)
            {
                _driver.Heartbeat();
            }

            RenewLease();
        });
        Receive<LeaseRenewed>(renewed =>
        {
            _renewing = false;
            if (!renewed.Held && !_expelled)
            {
                _expelled = true;
                _log.Warning("this host's lease was revoked (declared lost): killing its VMs now");
                OrchestratorMetrics.FenceKills.Add(1);
                Context.Parent.Tell(LeaseRevoked.Instance);
            }
        });
        Receive<LeaseRenewFailed>(failed =>
        {
            _renewing = false;
            _leaseAcquired &= !failed.WasAcquire; // acquire again next time
            _log.Warning("cannot renew this host's lease ({0}); VMs keep running: nobody can revoke it either", failed.Cause.Message);
        });
        Receive<ClusterEvent.IClusterDomainEvent>(e =>
        {
            _membership = _membership.Apply(e);
            UpdateMajority();
        });
        Receive<ClusterEvent.CurrentClusterState>(state =>
        {
            _membership = MembershipView.From(state);
            UpdateMajority();
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(HostSettings settings, HostId hostId, IHypervisor driver, HostLeaseStore? leases) =>
        Akka.Actor.Props.Create(() => new FenceKeeperActor(settings, hostId, driver, leases));

    protected override void PreStart()
    {
        _cluster?.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        _driver.Heartbeat();
        Timers.StartPeriodicTimer("heartbeat", Heartbeat.Instance, _settings.HeartbeatInterval);
    }

    protected override void PostStop() => _cluster?.Unsubscribe(Self);

    private void UpdateMajority()
    {
        var selfStatus = _membership.StatusOf(_cluster!.SelfUniqueAddress);
        if (!_expelled && (selfStatus is MemberStatus.Down or MemberStatus.Removed || (selfStatus is null && _cluster.IsTerminated)))
        {
            _expelled = true;
            _log.Warning("this node was removed from the cluster: no more heartbeats to the fence guard, no more VM starts");
            Context.Parent.Tell(Expelled.Instance);
        }

        var seesMajority = _membership.SeesMajority;
        if (seesMajority == _seesMajority)
        {
            return;
        }

        _seesMajority = seesMajority;
        Context.Parent.Tell(new MajorityChanged(seesMajority));
        if (seesMajority)
        {
            _log.Info("majority visible again ({0} of {1} members reachable)", _membership.ReachableVoting, _membership.Voting);
        }
        else
        {
            _log.Warning("cannot see a majority ({0} of {1} members reachable): the fence guard kills this host's VMs after fence-after unless it heals",
                _membership.ReachableVoting, _membership.Voting);
        }
    }

    private void RenewLease()
    {
        if (_leases is null || _renewing || _expelled)
        {
            return;
        }

        _renewing = true;
        var leases = _leases;
        var host = _hostId;
        var ttl = _settings.FenceAfter;
        var first = _leaseAcquired is false;
        _leaseAcquired = true;
        Task.Run(async () =>
            {
                if (first)
                {
                    await leases.AcquireAsync(host, ttl, CancellationToken.None);
                    return true;
                }

                return await leases.RenewAsync(host, ttl, CancellationToken.None);
            })
            .PipeTo(Self, success: held => new LeaseRenewed(held), failure: ex => new LeaseRenewFailed(ex, first));
    }

    private sealed record LeaseRenewed(bool Held);

    private sealed record LeaseRenewFailed(Exception Cause, bool WasAcquire);

    private sealed class Heartbeat
    {
        public static readonly Heartbeat Instance = new();
    }
}
