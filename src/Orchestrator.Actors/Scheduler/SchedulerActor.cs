using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Orchestrator.Actors.Events;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Settings;
using Orchestrator.Actors.Rules;
using Orchestrator.Actors.Webhooks;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// The single writer of allocations. Thin by design: the Domain's <see cref="LedgerState"/> decides, this actor
/// persists what it decided before anyone is told (I1), applies it, replies, tells the affected hosts, snapshots.
/// </summary>
public sealed class SchedulerActor : ReceivePersistentActor, IWithTimers
{
    public const string Name = "scheduler";

    private readonly LedgerRules _rules;
    private readonly int _snapshotEvery;
    private readonly Dictionary<HostId, IActorRef> _agents = [];
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HostLossTimings _hostLoss;
    private readonly HostLeaseStore? _leases;
    private readonly Cluster? _cluster;
    private readonly SharesPolicy? _shares;
    private readonly WebhookSettings? _webhookSettings;
    private readonly DeletionWaiters _deletionWaiters = new();

    /// <summary>Delivers written events to tenants' webhooks; null when webhooks are off (benchmarks).</summary>
    private IActorRef? _webhooks;

    /// <summary>Runs tenants' automation rules (created alongside the webhook dispatcher).</summary>
    private IActorRef? _rulesEngine;

    /// <summary>The CPU demand each host's agent last reported (not journaled: it is a measurement).</summary>
    private readonly Dictionary<HostId, IReadOnlyList<VmCpuDemand>> _demand = [];

    /// <summary>Hosts whose entitlements need recomputing: new demand, or their VMs changed.</summary>
    private readonly HashSet<HostId> _sharesDue = [];

    /// <summary>Hosts whose agent is gone, by the address it had, until their loss is decided.</summary>
    private readonly Dictionary<Address, HashSet<HostId>> _goneHosts = [];

    /// <summary>Cluster members the failure detector currently can't reach (their hosts show as Unreachable).</summary>
    private readonly HashSet<Address> _unreachable = [];

    private LedgerState _state = LedgerState.Empty;

    // Group commit (see Persist): the state including decided events still being written, and how many writes those are.
    private LedgerState? _ahead;
    private int _inFlight;
    private int _eventsSinceSnapshot;

    /// <param name="hostLoss">
    /// How long after a host is gone its VMs are re-placed: long enough that the old copies are dead (killed by their
    /// fence guard) before new ones start (invariant I3).
    /// </param>
    /// <param name="leases">PostgreSQL host leases, when enabled: a lost host's lease must expire before its VMs move.</param>
    /// <param name="shares">how often to recompute CPU entitlements, and what change is worth journaling; null: never.</param>
    public SchedulerActor(LedgerRules rules, int snapshotEvery, HostLossTimings hostLoss, HostLeaseStore? leases = null,
        SharesPolicy? shares = null, WebhookSettings? webhooks = null)
    {
        _shares = shares;
        _webhookSettings = webhooks;
        _leases = leases;
        _rules = rules;
        _snapshotEvery = snapshotEvery;
        _hostLoss = hostLoss;
        _cluster = ((ExtendedActorSystem)Context.System).Provider is Akka.Cluster.ClusterActorRefProvider ? Cluster.Get(Context.System) : null;

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is LedgerSnapshot snapshot)
            {
                _recoveryPhases.SnapshotLoaded = _sinceStart.Elapsed;
                _state = LedgerState.FromRecords(snapshot.Hosts, snapshot.Vms, snapshot.Tenants, snapshot.Keys, snapshot.Webhooks, snapshot.Rules);
                _recoveryPhases.StateRebuilt = _sinceStart.Elapsed;
            }
        });
        Recover<ILedgerEvent>(evt => _state = _state.Apply(evt));
        Recover<RecoveryCompleted>(_ =>
        {
            var replayed = _sinceStart.Elapsed;
            _state.BuildIndexes(); // part of recovering: the first requests after it should not wait for them
            // `scale --nodes` reads the duration from this line; the phases say where a slow recovery went.
            _log.Info(FormattableString.Invariant(
                $"scheduler recovered in {_sinceStart.Elapsed.TotalSeconds:0.000} s: {_state.Hosts.Count} hosts, {_state.Vms.Count} VMs (last sequence {LastSequenceNr}); ") +
                FormattableString.Invariant(
                $"snapshot read {_recoveryPhases.SnapshotLoaded.TotalSeconds:0.000} s, state rebuilt {(_recoveryPhases.StateRebuilt - _recoveryPhases.SnapshotLoaded).TotalSeconds:0.000} s, ") +
                FormattableString.Invariant(
                $"journal replayed {(replayed - _recoveryPhases.StateRebuilt).TotalSeconds:0.000} s, indexes {(_sinceStart.Elapsed - replayed).TotalSeconds:0.000} s"));
            // Hosts lost while no scheduler was watching (it was moving) are found once agents had time to re-register.
            Timers.StartSingleTimer("check-members", CheckMembers.Instance, _hostLoss.AfterLeave);
            if (_webhookSettings?.Secrets is { } secrets && _state.Webhooks.Values.Any(w => !SecretBox.IsSealed(w.Secret)))
            {
                // Journaled in clear by an earlier version: sealed in the state, so the next snapshot holds them sealed
                // (the old events stay as they were written until the journal is compacted).
                _state = _state with
                {
                    Webhooks = _state.Webhooks.SetItems(_state.Webhooks.Values.Where(w => !SecretBox.IsSealed(w.Secret))
                        .Select(w => KeyValuePair.Create(w.Id, w with { Secret = secrets.Seal(w.Secret) }))),
                };
            }

            if (_webhookSettings is not null)
            {
                _webhooks = Context.ActorOf(WebhookDispatcher.Props(_webhookSettings), "webhooks");
                _webhooks.Tell(new WebhookProtocol.Hooks(_state.Webhooks.Values.ToList()));
                _rulesEngine = Context.ActorOf(RuleEngine.Props(), "rules");
                _rulesEngine.Tell(new RuleProtocol.RulesChanged(_state.Rules.Values.ToList()));
            }

            if (_shares is not null)
            {
                // Entitlements recovered from the journal stand until the hosts' next usage reports.
                Timers.StartPeriodicTimer("shares", RecomputeSharesDue.Instance, _shares.Interval);
            }
        });

        Command<RegisterHostAgent>(OnRegisterHostAgent);
        Command<LedgerCommands.CreateVm>(Handle);
        Command<LedgerCommands.StopVm>(Handle);
        Command<LedgerCommands.StartVm>(Handle);
        Command<LedgerCommands.DeleteVm>(Handle);
        Command<LedgerCommands.ReportVm>(Handle);
        Command<LedgerCommands.ConfirmDeleted>(Handle);

        Command<SchedulerQueries.ListVms>(q => Sender.Tell(new SchedulerReplies.VmList(
            (q.Tenant is { } tenant ? _state.VmsOf(tenant) : _state.Vms.Values)
            .OrderBy(v => v.Spec.Name, StringComparer.Ordinal).ThenBy(v => v.Tenant.Value, StringComparer.Ordinal).ToList())));
        Command<SchedulerQueries.GetVm>(q => Sender.Tell(new SchedulerReplies.VmFound(_state.FindVm(q.Tenant, q.Name))));
        Command<SchedulerQueries.ListHosts>(_ => Sender.Tell(new SchedulerReplies.HostList(
            _state.Hosts.Values.OrderBy(h => h.Id.Value, StringComparer.Ordinal).Select(WithReachability).ToList())));
        Command<SchedulerQueries.ShowVm>(OnShowVm);
        Command<SchedulerQueries.AwaitDeletion>(q => _deletionWaiters.Add(_state, q, Sender));
        Command<SetVmPaused>(OnSetVmPaused);

        Command<MayStartVm>(OnMayStart);
        Command<LedgerCommands.SetVmResources>(Handle);
        Command<LedgerCommands.PatchVmResources>(Handle);
        Command<LedgerCommands.SetVmLabels>(Handle);
        Command<LedgerCommands.CreateTenant>(Handle);
        // Sealed before it is decided on, so the event journaled, the snapshot and the state hold only the sealed form.
        Command<LedgerCommands.CreateWebhook>(c => Handle(_webhookSettings?.Secrets is { } box ? c with { Secret = box.Seal(c.Secret) } : c));
        Command<LedgerCommands.CreateRule>(Handle);
        Command<LedgerCommands.DeleteRule>(Handle);
        Command<LedgerCommands.FireRule>(Handle);
        Command<SchedulerQueries.ListRules>(q => Sender.Tell(new SchedulerReplies.RuleList(
            _state.Rules.Values.Where(r => r.Tenant == q.Tenant).OrderBy(r => r.Name, StringComparer.Ordinal).ToList())));
        Command<LedgerCommands.DeleteWebhook>(Handle);
        Command<SchedulerQueries.ListWebhooks>(q => Sender.Tell(new SchedulerReplies.WebhookList(
            _state.Webhooks.Values.Where(w => w.Tenant == q.Tenant).OrderBy(w => w.CreatedAt).ToList())));
        Command<WebhookProtocol.GetDeliveries>(q =>
        {
            if (_webhooks is null)
            {
                Sender.Tell(new WebhookProtocol.Deliveries([]));
            }
            else
            {
                _webhooks.Forward(q);
            }
        });
        Command<LedgerCommands.UpdateTenant>(Handle);
        Command<LedgerCommands.IssueKey>(Handle);
        Command<LedgerCommands.RevokeKey>(Handle);
        Command<SchedulerQueries.FindKey>(q =>
        {
            var key = _state.Keys.GetValueOrDefault(q.KeyId);
            Sender.Tell(new SchedulerReplies.KeyFound(key, key is null ? null : _state.FindTenant(key.Tenant)));
        });
        Command<SchedulerQueries.GetTenant>(q => Sender.Tell(TenantView(q.Tenant)));
        Command<SchedulerQueries.ListTenants>(_ => Sender.Tell(new SchedulerReplies.TenantList(
            _state.Tenants.Keys.Append(TenantId.System).OrderBy(t => t.Value, StringComparer.Ordinal).Select(TenantView).ToList())));
        Command<HostUsageReport>(report =>
        {
            if (_state.Hosts.ContainsKey(report.HostId))
            {
                _demand[report.HostId] = report.Demand;
                _sharesDue.Add(report.HostId);
            }
        });
        Command<RecomputeSharesDue>(_ => RecomputeShares());
        // A downed member's guard has been counting since it lost the majority (or since its process died): the wait is
        // shorter than after a graceful leave, where the guard only starts counting at the leave.
        Command<ClusterEvent.MemberRemoved>(removed =>
        {
            if (removed.PreviousStatus == MemberStatus.Down)
            {
                OnMemberGone(removed.Member.Address, "was downed and removed", _hostLoss.AfterDown, shorten: true);
            }
            else
            {
                OnMemberGone(removed.Member.Address, "left the cluster", _hostLoss.AfterLeave, shorten: false);
            }
        });
        Command<ClusterEvent.UnreachableMember>(m => _unreachable.Add(m.Member.Address));
        Command<ClusterEvent.ReachableMember>(m => _unreachable.Remove(m.Member.Address));
        Command<ClusterEvent.IMemberEvent>(_ => { });
        Command<CheckMembers>(_ => OnCheckMembers());
        Command<HostLossDue>(due =>
        {
            foreach (var gone in _goneHosts.Values)
            {
                gone.Remove(due.HostId);
            }

            if (_agents.ContainsKey(due.HostId))
            {
                _log.Info("host {0} re-registered in time; its VMs stay", due.HostId);
                return;
            }

            if (_leases is null)
            {
                LoseHost(due.HostId);
                return;
            }

            // The lease is the host's own word that it still runs: wait it out, then revoke it so a thawing host can't
            // renew and keep its VMs. No answer from the database: keep waiting (never move VMs on a guess).
            var leases = _leases;
            var host = due.HostId;
            Task.Run(async () =>
            {
                var remaining = await leases.RemainingAsync(host, CancellationToken.None);
                if (remaining <= TimeSpan.Zero)
                {
                    await leases.RevokeAsync(host, CancellationToken.None);
                }

                return remaining;
            }).PipeTo(Self, success: remaining => new LeaseChecked(host, remaining), failure: ex => new LeaseCheckFailed(host, ex));
        });
        Command<LeaseChecked>(checkedLease =>
        {
            if (_agents.ContainsKey(checkedLease.HostId))
            {
                return; // came back meanwhile
            }

            if (checkedLease.Remaining > TimeSpan.Zero)
            {
                _log.Info("host {0} still holds its lease for {1}; waiting", checkedLease.HostId, checkedLease.Remaining);
                Timers.StartSingleTimer($"lose-{checkedLease.HostId}", new HostLossDue(checkedLease.HostId),
                    checkedLease.Remaining + TimeSpan.FromMilliseconds(200));
                return;
            }

            LoseHost(checkedLease.HostId);
        });
        Command<LeaseCheckFailed>(failed =>
        {
            _log.Warning(failed.Cause, "cannot check host {0}'s lease; retrying before moving its VMs", failed.HostId);
            Timers.StartSingleTimer($"lose-{failed.HostId}", new HostLossDue(failed.HostId), TimeSpan.FromSeconds(1));
        });
        Command<SchedulerReplies.Done>(_ => { }); // our own LoseHost's reply

        // Whichever comes first, the agent's death or its member's removal, starts the countdown once.
        Command<Terminated>(t =>
        {
            OnMemberGone(t.ActorRef.Path.Address, "lost its host agent", _hostLoss.AfterLeave, shorten: false);
        });
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning(f.Cause, "snapshot failed; the journal still has everything"));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning(f.Cause, "could not delete old snapshots"));
    }

    public override string PersistenceId => Name;

    /// <summary>From this incarnation's start: how long its recovery (snapshot + journal + indexes) took.</summary>
    private readonly System.Diagnostics.Stopwatch _sinceStart = System.Diagnostics.Stopwatch.StartNew();

    /// <summary>When recovery got the snapshot and had rebuilt the state from it (zero without a snapshot).</summary>
    private (TimeSpan SnapshotLoaded, TimeSpan StateRebuilt) _recoveryPhases;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(LedgerRules rules, int snapshotEvery, HostLossTimings hostLoss, HostLeaseStore? leases = null,
        SharesPolicy? shares = null, WebhookSettings? webhooks = null) =>
        Akka.Actor.Props.Create(() => new SchedulerActor(rules, snapshotEvery, hostLoss, leases, shares, webhooks));

    /// <summary>
    /// Recomputes the entitlements of the hosts that need it, with the demand their agents reported; the ledger
    /// journals a SharesChanged for each VM whose entitlement moved beyond the tolerance.
    /// </summary>
    private void RecomputeShares()
    {
        foreach (var host in _sharesDue)
        {
            var command = new LedgerCommands.RecomputeShares(host, _demand.GetValueOrDefault(host) ?? [], _shares!.ToleranceMillicores);
            Persist(command, Decided.Decide(command, _rules, DateTimeOffset.UtcNow), () => { });
        }

        _sharesDue.Clear();
    }

    private SchedulerReplies.TenantFound TenantView(TenantId tenant) => SchedulerReplies.TenantView(_state, tenant);

    /// <summary>A VM event changes its host's division of CPU (placed, started, stopped, resized, gone).</summary>
    private void NoteSharesDue(LedgerState before, ILedgerEvent evt)
    {
        if (_shares is null || evt is SharesChanged || evt is not IVmLedgerEvent vmEvent)
        {
            return;
        }

        if (before.Vms.GetValueOrDefault(vmEvent.VmId)?.Host is { } host)
        {
            _sharesDue.Add(host);
        }

        if (evt is VmPlaced placed)
        {
            _sharesDue.Add(placed.HostId);
        }
    }

    private void LoseHost(HostId host)
    {
        _log.Warning("host {0} is lost; re-placing its VMs", host);
        Handle(new LedgerCommands.LoseHost(host));
    }

    protected override void PreStart()
    {
        _cluster?.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsEvents,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
    }

    protected override void PostStop()
    {
        _cluster?.Unsubscribe(Self);
    }

    /// <summary>A host's agent or member is gone: its VMs are re-placed once its fence guard has surely killed them.</summary>
    private void OnMemberGone(Address address, string why, TimeSpan delay, bool shorten)
    {
        _unreachable.Remove(address);
        if (!_goneHosts.TryGetValue(address, out var hosts))
        {
            hosts = [];
            _goneHosts[address] = hosts;
        }

        foreach (var (host, _) in _agents.Where(kv => kv.Value.Path.Address.Equals(address)).ToList())
        {
            _agents.Remove(host);
            hosts.Add(host);
        }

        foreach (var host in hosts)
        {
            var key = $"lose-{host}";
            if (!Timers.IsTimerActive(key) || shorten)
            {
                _log.Warning("host {0} ({1}) {2}; re-placing its VMs in {3} unless it comes back", host, address, why, delay);
                Timers.StartSingleTimer(key, new HostLossDue(host), delay);
            }
        }
    }

    /// <summary>After a recovery: hosts the ledger has Up that no agent re-registered for, and that aren't members.</summary>
    private void OnCheckMembers()
    {
        var members = _cluster?.State.Members.Where(m => m.Status is MemberStatus.Up or MemberStatus.WeaklyUp or MemberStatus.Joining)
            .Select(m => m.Address.ToString()).ToHashSet() ?? [];
        foreach (var host in _state.Hosts.Values.Where(h => h.State == HostState.Up && !_agents.ContainsKey(h.Id) && !members.Contains(h.Address)))
        {
            _log.Warning("host {0} ({1}) is not a cluster member; re-placing its VMs in {2} unless it registers", host.Id,
                host.Address, _hostLoss.AfterLeave);
            Timers.StartSingleTimer($"lose-{host.Id}", new HostLossDue(host.Id), _hostLoss.AfterLeave);
        }
    }

    private void OnMayStart(MayStartVm ask)
    {
        var vm = _state.Vms.GetValueOrDefault(ask.VmId);
        var reason = vm switch
        {
            null => "the VM no longer exists",
            _ when vm.Host != ask.HostId => $"the VM is placed on {vm.Host?.Value ?? "no host"} now",
            _ when vm.Epoch != ask.Epoch => $"the VM runs under epoch {vm.Epoch} now, not {ask.Epoch}",
            _ when !VmAssignment.From(vm).ShouldRun => $"the VM is {vm.Status} and should not run",
            _ => null,
        };
        Sender.Tell(new StartPermission(ask.VmId, ask.Epoch, reason is null, reason));
    }

    private void OnRegisterHostAgent(RegisterHostAgent register)
    {
        var host = register.Host.HostId;
        if (!_agents.TryGetValue(host, out var known) || !known.Equals(Sender))
        {
            _agents[host] = Sender;
            Context.Watch(Sender);
        }

        var agent = Sender;
        var before = Decided;
        Persist(register.Host, before.Decide(register.Host, _rules, DateTimeOffset.UtcNow), () =>
            agent.Tell(SchedulerReplies.To(register.Host, before, _state)));
    }

    private void Handle(ILedgerCommand command)
    {
        var before = Decided;
        var sender = Sender;
        var decision = before.Decide(command, _rules, DateTimeOffset.UtcNow);
        if (decision.Refusal is { } refusal)
        {
            sender.Tell(new SchedulerReplies.Refused(refusal));
            return;
        }

        var releases = decision.Events.Any(e => e is VmReleased);
        // Answered once its events are persisted (I1), from the persisted state (then the state it was decided into); so
        // is whoever waits for a VM it released.
        Persist(command, decision, () =>
        {
            sender.Tell(SchedulerReplies.To(command, before, _state));
            if (releases)
            {
                _deletionWaiters.AnswerGone(_state);
            }
        });
    }

    /// <summary>What decisions are made against: the persisted state plus the events still being written.</summary>
    private LedgerState Decided => _ahead ?? _state;

    /// <summary>
    /// Persists the decision's events (all or none) with group commit, then applies each, replies and tells the hosts.
    /// PersistAllAsync does not stash: the next requests are decided at once, against <see cref="Decided"/> (the
    /// state with every event not yet written), while Akka.Persistence keeps one journal write in flight and batches
    /// all that arrives meanwhile into the next one. Each reply still waits for its own events (I1): DeferAsync runs
    /// after them, in order. Queries, snapshots and hosts only ever see <c>_state</c>, the persisted state.
    /// </summary>
    private void Persist(ILedgerCommand command, Decision decision, Action reply)
    {
        if (decision.Events.Count == 0)
        {
            if (_inFlight == 0)
            {
                reply();
            }
            else
            {
                DeferAsync(command, _ => reply()); // it was decided on unwritten events: answer after them
            }

            return;
        }

        var ahead = Decided;
        var tagged = new List<Tagged>(decision.Events.Count);
        foreach (var evt in decision.Events)
        {
            tagged.Add(Tag(ahead, evt));
            NoteSharesDue(ahead, evt);
            ahead = ahead.Apply(evt);
        }

        _ahead = ahead;
        _inFlight++;
        var changed = new HashSet<VmId>();
        var remaining = tagged.Count;
        PersistAllAsync(tagged, t =>
        {
            var evt = (ILedgerEvent)t.Payload;
            if (_webhooks is not null && t.Tags.FirstOrDefault(tag => tag.StartsWith("tenant:", StringComparison.Ordinal)) is { } tenantTag)
            {
                var published = new WebhookProtocol.Publish(LastSequenceNr, tenantTag["tenant:".Length..], evt);
                _webhooks.Tell(published);
                _rulesEngine?.Tell(published);
            }

            if (evt is VmPlaced or VmDesiredStateChanged or VmDeleteRequested or VmResourcesChanged or VmLabelsChanged)
            {
                changed.Add(((IVmLedgerEvent)evt).VmId);
            }
            else if (evt is TenantUpdated updated)
            {
                // A changed pool changes its VMs' weights on every host: tell the hosts.
                changed.UnionWith(ahead.VmsOf(updated.Tenant).Select(v => v.Id));
                _sharesDue.UnionWith(ahead.VmsOf(updated.Tenant).Where(v => v.Host is not null).Select(v => v.Host!.Value));
            }

            _eventsSinceSnapshot++;
            if (--remaining > 0)
            {
                return;
            }

            // The command's last event is written: the persisted state is the one it was decided into (no second Apply).
            var webhooksChanged = !ReferenceEquals(_state.Webhooks, ahead.Webhooks);
            var rulesChanged = !ReferenceEquals(_state.Rules, ahead.Rules);
            _state = ahead;
            if (webhooksChanged)
            {
                _webhooks?.Tell(new WebhookProtocol.Hooks(_state.Webhooks.Values.ToList()));
            }

            if (rulesChanged)
            {
                _rulesEngine?.Tell(new RuleProtocol.RulesChanged(_state.Rules.Values.ToList()));
            }

            if (_eventsSinceSnapshot >= _snapshotEvery)
            {
                _eventsSinceSnapshot = 0;
                SaveSnapshot(new LedgerSnapshot(_state.Hosts.Values.ToList(), _state.Vms.Values.ToList(), _state.Tenants.Values.ToList(),
                    _state.Keys.Values.ToList(), _state.Webhooks.Values.ToList(), _state.Rules.Values.ToList()));
            }
        });
        DeferAsync(command, _ =>
        {
            if (--_inFlight == 0)
            {
                _ahead = null; // _state has caught up
            }

            reply();
            foreach (var vmId in changed)
            {
                TellHost(vmId);
            }
        });
    }

    /// <summary>
    /// A rejected write (the journal refused an event, e.g. it would not serialize) leaves <see cref="Decided"/> ahead
    /// of the journal for good, and its DeferAsync would still answer: restart, so recovery rebuilds from what is written.
    /// </summary>
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        base.OnPersistRejected(cause, @event, sequenceNr);
        throw new InvalidOperationException($"journal rejected event {sequenceNr}; restarting the scheduler from its journal", cause);
    }

    /// <summary>The ledger says Up or Down; the failure detector adds Unreachable, which is not worth a journal entry.</summary>
    private HostRecord WithReachability(HostRecord host) =>
        host.State == HostState.Up && _agents.TryGetValue(host.Id, out var agent) && _unreachable.Contains(agent.Path.Address)
            ? host with { State = HostState.Unreachable }
            : host;

    private VmAssignment AssignmentOf(VmRecord vm) => _state.AssignmentOf(vm);

    private void TellHost(VmId vmId)
    {
        if (_state.Vms.TryGetValue(vmId, out var vm) && vm.Host is { } host && _agents.TryGetValue(host, out var agent))
        {
            agent.Tell(new HostAgentCommands.Assign(AssignmentOf(vm)));
        }
    }

    /// <summary>The record as the ledger has it now, with its host's live details when the host answers in time.</summary>
    private void OnShowVm(SchedulerQueries.ShowVm query)
    {
        var vm = _state.FindVm(query.Tenant, query.Name);
        if (vm?.Host is { } host && _agents.TryGetValue(host, out var agent))
        {
            agent.Ask<VmRuntime>(new HostAgentCommands.GetVmRuntime(vm.Id), SchedulerQueries.ShowVm.RuntimeTimeout)
                .ContinueWith(asked => new SchedulerReplies.VmShown(vm, asked.IsCompletedSuccessfully ? asked.Result : null), TaskScheduler.Default)
                .PipeTo(Sender);
        }
        else
        {
            Sender.Tell(new SchedulerReplies.VmShown(vm, vm is null ? null : VmRuntime.None(vm.Id)));
        }
    }

    private void OnSetVmPaused(SetVmPaused set)
    {
        var vm = _state.FindVm(set.Tenant, set.Name);
        if (vm is null)
        {
            Sender.Tell(new SchedulerReplies.VmFound(null));
        }
        else if (vm.Status is not (Domain.Vms.VmStatus.Running or Domain.Vms.VmStatus.Ready) || vm.Host is not { } host || !_agents.TryGetValue(host, out var agent))
        {
            Sender.Tell(new VmPauseResult(vm.Id, false, $"the VM is {vm.Status}, not running"));
        }
        else
        {
            agent.Forward(new HostAgentCommands.SetPaused(vm.Id, set.Paused));
        }
    }

    /// <summary>
    /// Tags for read models: every VM event by tenant and host, so a tenant's stream never needs a scan. Tagged against
    /// the state the event is decided on (the VM a VmPlaced follows in the same decision is there only, not yet in
    /// <c>_state</c>).
    /// </summary>
    private static Tagged Tag(LedgerState decided, ILedgerEvent evt)
    {
        var tags = new List<string>(2);
        if (evt is IVmLedgerEvent vmEvent && decided.Vms.TryGetValue(vmEvent.VmId, out var vm))
        {
            tags.Add(EventTags.Tenant(vm.Tenant));
        }
        else if (evt is VmRequested requested)
        {
            tags.Add(EventTags.Tenant(requested.Tenant));
        }

        switch (evt)
        {
            case VmPlaced placed:
                tags.Add(EventTags.Host(placed.HostId));
                break;
            case HostRegistered registered:
                tags.Add(EventTags.Host(registered.HostId));
                break;
            case SharesChanged shares:
                tags.Add(EventTags.Host(shares.HostId));
                break;
            case TenantCreated created:
                tags.Add("tenant:" + created.Tenant.Value);
                break;
            case TenantUpdated updated:
                tags.Add("tenant:" + updated.Tenant.Value);
                break;
        }

        return new Tagged(evt, tags);
    }

    private sealed record HostLossDue(HostId HostId);

    private sealed record LeaseChecked(HostId HostId, TimeSpan Remaining);

    private sealed record LeaseCheckFailed(HostId HostId, Exception Cause);

    private sealed class RecomputeSharesDue
    {
        public static readonly RecomputeSharesDue Instance = new();
    }

    private sealed class CheckMembers
    {
        public static readonly CheckMembers Instance = new();
    }
}
