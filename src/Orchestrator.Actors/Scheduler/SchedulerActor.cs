using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Orchestrator.Actors.Hosts;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// The single writer of allocations. Thin by design: the Domain's <see cref="LedgerState"/> decides, this actor
/// persists what it decided before anyone is told (I1), applies it, replies, tells the affected hosts, snapshots.
/// </summary>
public sealed class SchedulerActor : ReceivePersistentActor
{
    public const string Name = "scheduler";

    private readonly LedgerRules _rules;
    private readonly int _snapshotEvery;
    private readonly Dictionary<HostId, IActorRef> _agents = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private LedgerState _state = LedgerState.Empty;
    private int _eventsSinceSnapshot;

    public SchedulerActor(LedgerRules rules, int snapshotEvery)
    {
        _rules = rules;
        _snapshotEvery = snapshotEvery;

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is LedgerSnapshot snapshot)
            {
                _state = LedgerState.FromRecords(snapshot.Hosts, snapshot.Vms);
            }
        });
        Recover<ILedgerEvent>(evt => _state = _state.Apply(evt));
        Recover<RecoveryCompleted>(_ =>
            _log.Info("scheduler recovered: {0} hosts, {1} VMs (last sequence {2})", _state.Hosts.Count, _state.Vms.Count, LastSequenceNr));

        Command<RegisterHostAgent>(OnRegisterHostAgent);
        Command<LedgerCommands.CreateVm>(c => Handle(c, c.NewId));
        Command<LedgerCommands.StopVm>(c => Handle(c, _state.FindVm(c.Tenant, c.Name)?.Id));
        Command<LedgerCommands.StartVm>(c => Handle(c, _state.FindVm(c.Tenant, c.Name)?.Id));
        Command<LedgerCommands.DeleteVm>(c => Handle(c, _state.FindVm(c.Tenant, c.Name)?.Id));
        Command<LedgerCommands.ReportVm>(c => Handle(c, null));
        Command<LedgerCommands.ConfirmDeleted>(c => Handle(c, null));

        Command<SchedulerQueries.ListVms>(q => Sender.Tell(new SchedulerReplies.VmList(
            (q.Tenant is { } tenant ? _state.VmsOf(tenant) : _state.Vms.Values)
            .OrderBy(v => v.Spec.Name, StringComparer.Ordinal).ThenBy(v => v.Tenant.Value, StringComparer.Ordinal).ToList())));
        Command<SchedulerQueries.GetVm>(q => Sender.Tell(new SchedulerReplies.VmFound(_state.FindVm(q.Tenant, q.Name))));
        Command<SchedulerQueries.ListHosts>(_ => Sender.Tell(new SchedulerReplies.HostList(
            _state.Hosts.Values.OrderBy(h => h.Id.Value, StringComparer.Ordinal).ToList())));
        Command<SchedulerQueries.GetVmRuntime>(OnGetVmRuntime);

        Command<Terminated>(t =>
        {
            foreach (var host in _agents.Where(kv => kv.Value.Equals(t.ActorRef)).Select(kv => kv.Key).ToList())
            {
                _agents.Remove(host);
            }
        });
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning(f.Cause, "snapshot failed; the journal still has everything"));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning(f.Cause, "could not delete old snapshots"));
    }

    public override string PersistenceId => Name;

    public static Props Props(LedgerRules rules, int snapshotEvery) =>
        Akka.Actor.Props.Create(() => new SchedulerActor(rules, snapshotEvery));

    private void OnRegisterHostAgent(RegisterHostAgent register)
    {
        var host = register.Host.HostId;
        if (!_agents.TryGetValue(host, out var known) || !known.Equals(Sender))
        {
            _agents[host] = Sender;
            Context.Watch(Sender);
        }

        var agent = Sender;
        Persist(register.Host, _state.Decide(register.Host, _rules, DateTimeOffset.UtcNow), () =>
            agent.Tell(new SchedulerReplies.HostAssignments(
                _state.VmsOn(host).Select(VmAssignment.From).ToList())));
    }

    private void Handle(ILedgerCommand command, VmId? subject)
    {
        var before = subject is { } id ? _state.Vms.GetValueOrDefault(id) : null;
        var sender = Sender;
        var decision = _state.Decide(command, _rules, DateTimeOffset.UtcNow);
        if (decision.Refusal is { } refusal)
        {
            sender.Tell(new SchedulerReplies.Refused(refusal));
            return;
        }

        Persist(command, decision, () =>
        {
            var after = subject is { } vmId ? _state.Vms.GetValueOrDefault(vmId) : null;
            // A VM released by this very command (delete of one never placed) is answered as it was last seen.
            sender.Tell(new SchedulerReplies.Accepted(after ?? before));
        });
    }

    /// <summary>Persists the decision's events (all or none), applies each, then replies and tells the hosts.</summary>
    private void Persist(ILedgerCommand command, Decision decision, Action reply)
    {
        if (decision.Events.Count == 0)
        {
            reply();
            return;
        }

        var changed = new HashSet<VmId>();
        PersistAll(decision.Events.Select(Tag), tagged =>
        {
            var evt = (ILedgerEvent)tagged.Payload;
            _state = _state.Apply(evt);
            if (evt is VmPlaced or VmDesiredStateChanged or VmDeleteRequested)
            {
                changed.Add(((IVmLedgerEvent)evt).VmId);
            }

            if (++_eventsSinceSnapshot >= _snapshotEvery)
            {
                _eventsSinceSnapshot = 0;
                SaveSnapshot(new LedgerSnapshot(_state.Hosts.Values.ToList(), _state.Vms.Values.ToList()));
            }
        });
        DeferAsync(command, _ =>
        {
            reply();
            foreach (var vmId in changed)
            {
                TellHost(vmId);
            }
        });
    }

    private void TellHost(VmId vmId)
    {
        if (_state.Vms.TryGetValue(vmId, out var vm) && vm.Host is { } host && _agents.TryGetValue(host, out var agent))
        {
            agent.Tell(new HostAgentCommands.Assign(VmAssignment.From(vm)));
        }
    }

    private void OnGetVmRuntime(SchedulerQueries.GetVmRuntime query)
    {
        var vm = _state.FindVm(query.Tenant, query.Name);
        if (vm?.Host is { } host && _agents.TryGetValue(host, out var agent))
        {
            agent.Forward(new HostAgentCommands.GetVmRuntime(vm.Id));
        }
        else
        {
            Sender.Tell(vm is null ? new SchedulerReplies.VmFound(null) : VmRuntime.None(vm.Id));
        }
    }

    /// <summary>Tags for read models: every VM event by tenant and host, so a tenant's stream never needs a scan.</summary>
    private Tagged Tag(ILedgerEvent evt)
    {
        var tags = new List<string>(2);
        if (evt is IVmLedgerEvent vmEvent && _state.Vms.TryGetValue(vmEvent.VmId, out var vm))
        {
            tags.Add("tenant:" + vm.Tenant.Value);
        }
        else if (evt is VmRequested requested)
        {
            tags.Add("tenant:" + requested.Tenant.Value);
        }

        switch (evt)
        {
            case VmPlaced placed:
                tags.Add("host:" + placed.HostId.Value);
                break;
            case HostRegistered registered:
                tags.Add("host:" + registered.HostId.Value);
                break;
        }

        return new Tagged(evt, tags);
    }
}
