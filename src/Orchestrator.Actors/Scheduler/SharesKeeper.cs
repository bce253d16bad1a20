using Akka.Actor;
using Orchestrator.Actors.Hosts;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Shares;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// The scheduler's child that keeps the CPU demand each host's agent last reported (a measurement, not journaled) and,
/// every <see cref="SharesPolicy.Interval"/>, asks the scheduler to recompute the entitlements of the hosts whose
/// demand or VMs changed; the ledger journals a SharesChanged for each VM whose entitlement moved beyond the tolerance.
/// </summary>
public sealed class SharesKeeper : ReceiveActor, IWithTimers
{
    private readonly Dictionary<HostId, IReadOnlyList<VmCpuDemand>> _demand = [];
    private readonly HashSet<HostId> _due = [];
    private readonly SharesPolicy _policy;

    public SharesKeeper(SharesPolicy policy)
    {
        _policy = policy;
        Receive<HostUsageReport>(report =>
        {
            _demand[report.HostId] = report.Demand;
            _due.Add(report.HostId);
        });
        Receive<Due>(due => _due.UnionWith(due.Hosts));
        Receive<Recompute>(_ =>
        {
            foreach (var host in _due)
            {
                Context.Parent.Tell(new LedgerCommands.RecomputeShares(host, _demand.GetValueOrDefault(host) ?? [], policy.ToleranceMillicores));
            }

            _due.Clear();
        });
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(SharesPolicy policy) => Akka.Actor.Props.Create(() => new SharesKeeper(policy));

    /// <summary>Entitlements recovered from the journal stand until the hosts' next usage reports.</summary>
    protected override void PreStart() => Timers.StartPeriodicTimer("recompute", Recompute.Instance, _policy.Interval);

    /// <summary>From the scheduler: hosts whose VMs changed (<see cref="SharesDue"/>).</summary>
    public sealed record Due(IReadOnlyCollection<HostId> Hosts);

    private sealed class Recompute
    {
        public static readonly Recompute Instance = new();
    }
}
