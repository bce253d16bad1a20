using Akka.Actor;
using Akka.Event;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// The Simulated driver (DESIGN.md): many hosts whose VMs exist only in memory, all served by this one actor, for
/// measuring the control plane at scale across real nodes (<c>orchestrator scale --nodes 3</c>). It speaks the host
/// agent's protocol to the scheduler: registers each host, "starts" a VM by reporting it Running then Ready, "stops"
/// it by reporting it Stopped, confirms deletes. Its hosts share this node's address, so when the node is lost the
/// scheduler loses them all and re-places their VMs, as with real hosts. Never for real work: nothing runs.
/// </summary>
public sealed class SimulatedHostsActor : ReceiveActor, IWithTimers
{
    public const string Name = "simulated-hosts";
    public const string Driver = "simulated";

    /// <summary>Hosts registered again per tick, so that all are, within about 30 s, after the scheduler moved.</summary>
    private static readonly TimeSpan ReRegisterTick = TimeSpan.FromSeconds(1);
    private const int ReRegisterRounds = 30;

    private readonly IActorRef _scheduler;
    private readonly IReadOnlyList<LedgerCommands.RegisterHost> _hosts;
    private readonly Dictionary<VmId, Epoch> _running = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private int _nextToReRegister;

    public SimulatedHostsActor(HostSettings settings, HostId node, IActorRef scheduler)
    {
        _scheduler = scheduler;
        var address = ((ExtendedActorSystem)Context.System).Provider.DefaultAddress.ToString();
        _hosts = Enumerable.Range(1, settings.SimulatedHosts)
            .Select(i => new LedgerCommands.RegisterHost(HostIdOf(node, i), settings.Cpus, settings.MemoryMiB, Driver, address, Labels: settings.Labels))
            .ToList();

        Receive<SchedulerReplies.HostAssignments>(assignments =>
        {
            foreach (var assignment in assignments.Assignments)
            {
                Converge(assignment);
            }
        });
        Receive<HostAgentCommands.Assign>(assign => Converge(assign.Assignment));
        Receive<HostAgentCommands.GetVmRuntime>(query => Sender.Tell(VmRuntime.None(query.VmId)));
        Receive<HostAgentCommands.SetPaused>(set => Sender.Tell(new VmPauseResult(set.VmId, false, "a simulated VM runs no guest code to pause")));
        Receive<Consoles.ConsoleCommands.AttachVm>(_ => Sender.Tell(new Consoles.ConsoleReplies.Refused(false, "a simulated VM has no serial console")));
        Receive<StartPermission>(_ => { });
        Receive<ReRegister>(_ => ReRegisterSome());
    }

    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>The id of simulated host <paramref name="index"/> (from 1) of a node: the node's host id, then -s and five digits.</summary>
    public static HostId HostIdOf(HostId node, int index) => new($"{node.Value}-s{index:D5}");

    public static Props Props(HostSettings settings, HostId node, IActorRef scheduler) =>
        Akka.Actor.Props.Create(() => new SimulatedHostsActor(settings, node, scheduler));

    protected override void PreStart()
    {
        _log.Warning("simulated driver: {0} hosts of {1} vCPUs / {2} MiB whose VMs exist only in memory (nothing runs)",
            _hosts.Count, _hosts.FirstOrDefault()?.Cpus ?? 0, _hosts.FirstOrDefault()?.MemoryMiB ?? 0);
        foreach (var host in _hosts)
        {
            _scheduler.Tell(new RegisterHostAgent(host));
        }

        Timers.StartPeriodicTimer("re-register", ReRegister.Instance, ReRegisterTick);
    }

    private void ReRegisterSome()
    {
        var slice = Math.Max(1, (_hosts.Count + ReRegisterRounds - 1) / ReRegisterRounds);
        for (var i = 0; i < slice && _hosts.Count > 0; i++)
        {
            _scheduler.Tell(new RegisterHostAgent(_hosts[_nextToReRegister]));
            _nextToReRegister = (_nextToReRegister + 1) % _hosts.Count;
        }
    }

    private void Converge(VmAssignment assignment)
    {
        if (assignment.Deleting)
        {
            _running.Remove(assignment.VmId);
            _scheduler.Tell(new LedgerCommands.ConfirmDeleted(assignment.VmId));
            return;
        }

        var runs = _running.TryGetValue(assignment.VmId, out var epoch);
        if (!assignment.ShouldRun)
        {
            if (_running.Remove(assignment.VmId) || assignment.Status is not VmStatus.Stopped)
            {
                Report(assignment, VmStatus.Stopped, "stopped on request");
            }

            return;
        }

        // Only Ready is done: a ledger still at Running lost the Ready report (the scheduler restarted), so both go again.
        if (runs && epoch == assignment.Epoch && assignment.Status is VmStatus.Ready)
        {
            return;
        }

        _running[assignment.VmId] = assignment.Epoch;
        Report(assignment, VmStatus.Running, null);
        Report(assignment, VmStatus.Ready, null);
    }

    private void Report(VmAssignment assignment, VmStatus status, string? reason) =>
        _scheduler.Tell(new LedgerCommands.ReportVm(assignment.VmId, assignment.Epoch, status, reason, null, null));

    private sealed class ReRegister
    {
        public static readonly ReRegister Instance = new();
    }
}
