using Orchestrator.Actors.Consoles;
using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Orchestrator.Actors.Events;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Persistence;
using Orchestrator.Actors.Settings;
using Orchestrator.Actors.Telemetry;
using Orchestrator.Actors.Webhooks;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Shares;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Actors.Scheduler;

/// <summary>
/// The single writer of allocations. Thin by design: the Domain's <see cref="LedgerState"/> decides, this actor
/// persists what it decided before anyone is told (I1), applies it, replies, tells the affected hosts, snapshots.
/// </summary>
public sealed class SchedulerActor : ReceivePersistentActor, IWithTimers
{
    public const string Name = "scheduler";

    // Not readonly: it carries the hosts the failure detector cannot reach now, which take no new VMs.
    private LedgerRules _rules;
    private readonly int _snapshotEvery;
    private readonly HostRoutes _hosts = new();
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HostLossTimings _hostLoss;
    private readonly SharesPolicy? _shares;
    private readonly WebhookSettings? _webhookSettings;
    private readonly DeletionWaiters _deletionWaiters = new();
    private readonly VxlanPublisher _vxlan = new();

    /// <summary>Webhook deliveries and automation rules, reading the journal; null when webhooks are off (benchmarks).</summary>
    private ProjectionChildren? _projections;

    /// <summary>Keeps the hosts' CPU demand and asks for entitlements to be recomputed (a child; null: never).</summary>
    private IActorRef? _sharesKeeper;

    /// <summary>Watches hosts go and says when one is lost (a child).</summary>
    private readonly IActorRef _hostLossDetector;

    private LedgerState _state = LedgerState.Empty;

    // Group commit (see Persist): the state including decided events still being written, and how many writes those are.
    private LedgerState? _ahead;
    private int _inFlight;
    private int _eventsSinceSnapshot;
    private readonly IncrementalSnapshots _snapshots = new();

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
        _rules = rules;
        _snapshotEvery = snapshotEvery;
        _hostLoss = hostLoss;
        _hostLossDetector = Context.ActorOf(HostLossDetector.Props(hostLoss, leases), "host-loss");

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is LedgerSnapshot snapshot)
            {
                _recovery.SnapshotLoaded();
                _state = LedgerState.FromRecords(snapshot.Hosts, snapshot.Vms, snapshot.Tenants, snapshot.Keys, snapshot.Webhooks, snapshot.Rules,
                        snapshot.Networks, snapshot.Volumes, snapshot.Snapshots)
                    .WithGroups(snapshot.Groups ?? [])
                    .WithIdempotencyKeys(snapshot.IdempotencyKeys ?? [])
                    .WithSecurityGroups(snapshot.SecurityGroups ?? [])
                    .WithForwards(snapshot.Forwards ?? [])
                    .WithImages(snapshot.Images ?? []);
                _recovery.StateRebuilt();
            }
        });
        Recover<ILedgerEvent>(evt => _state = _state.Apply(evt));
        Recover<RecoveryCompleted>(_ =>
        {
            _recovery.Replayed();
            _state.BuildIndexes(); // part of recovering: the first requests after it should not wait for them
            _log.Info(_recovery.Describe(_state, LastSequenceNr));
            LedgerMetrics.Publish(_state); // a restarted scheduler withdrew its gauges: the recovered state reports until the next write
            // Hosts lost while no scheduler was watching (it was moving) are found once agents had time to re-register.
            Timers.StartSingleTimer("check-members", CheckMembers.Instance, _hostLoss.AfterLeave);
            if (_webhookSettings?.Secrets is { } secrets)
            {
                _state = _state.SealClearSecrets(secrets);
            }

            LedgerMetrics.Publish(_state);

            if (_webhookSettings is not null)
            {
                _projections = ProjectionChildren.Start(Context, _webhookSettings, _state);
                Timers.StartSingleTimer("projections-late", ProjectionsLate.Instance, ProjectionChildren.StartWait);
            }

            if (_shares is not null)
            {
                _sharesKeeper = Context.ActorOf(SharesKeeper.Props(_shares), "shares");
            }
        });

        // Until its projections know durably where they start, the scheduler writes nothing (their first start owes the
        // events written from then on): what arrives meanwhile waits, for a moment at most.
        Command<ProjectionProtocol.Started>(_ =>
        {
            if (_projections!.OneStarted())
            {
                Timers.Cancel("projections-late");
                Stash.UnstashAll();
            }
        });
        Command<ProjectionsLate>(_ =>
        {
            _log.Warning("the webhook and rule projections did not start in {0}; going on without waiting", ProjectionChildren.StartWait);
            _projections!.StopWaiting();
            Stash.UnstashAll();
        });
        Command<object>(_ => Stash.Stash(), _ => _projections?.Starting == true);

        Command<RegisterHostAgent>(OnRegisterHostAgent);
        Command<ILedgerQuery>(q => Sender.Tell(LedgerQueries.Answer(_state, q, _hosts.WithReachability)));

        Command<SchedulerQueries.ShowVm>(q => _hosts.ShowVm(_state.FindVm(q.Tenant, q.Name), Sender));
        Command<SchedulerQueries.AwaitDeletion>(q => _deletionWaiters.Add(_state, q, Sender));
        Command<SetVmPaused>(set => _hosts.SetPaused(_state.FindVm(set.Tenant, set.Name), set.Paused, Sender));
        Command<ConsoleCommands.Attach>(attach => _hosts.AttachConsole(_state.FindVm(attach.Tenant, attach.Name), attach, Sender));

        Command<MayStartVm>(OnMayStart);
        Command<WebhookProtocol.GetDeliveries>(q => ProjectionChildren.Deliveries(_projections, q, Sender));
        Command<HostUsageReport>(report =>
        {
            if (_state.Hosts.ContainsKey(report.HostId))
            {
                _sharesKeeper?.Forward(report);
            }
        });
        Command<LedgerCommands.RecomputeShares>(c => Handle(c, sender: null));
        // Sealed before it is decided on, so the event journaled, the snapshot and the state hold only the sealed form.
        Command<LedgerCommands.CreateWebhook>(c => Handle(_webhookSettings?.Secrets is { } box ? c with { Secret = box.Seal(c.Secret) } : c));
        // Every other command from a client or a host; a host registers with its agent, and only the scheduler loses one.
        Command<ILedgerCommand>(Handle, c => c is not (LedgerCommands.RegisterHost or LedgerCommands.LoseHost));
        Command<CheckMembers>(_ => _hostLossDetector.Tell(new HostLossProtocol.CheckMembers(
            _state.Hosts.Values.Where(h => h.State == HostState.Up).Select(h => (h.Id, h.Address)).ToList())));
        Command<HostLossProtocol.Lost>(lost => LoseHost(lost.Host));
        Command<HostLossProtocol.AgentGone>(gone =>
        {
            _hosts.Gone(gone.Host, gone.Agent);
            _rules = _rules with { Unreachable = _hosts.Unreachable };
        });
        Command<HostLossProtocol.Reachability>(OnReachability);
        Command<SaveSnapshotSuccess>(s =>
        {
            if (_snapshots.Saved(s.Metadata.SequenceNr))
            {
                DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)); // a whole one: nothing builds on those
            }
        });
        Command<SaveSnapshotFailure>(f =>
        {
            _snapshots.Failed(f.Metadata.SequenceNr);
            _log.Warning(f.Cause, "snapshot failed; the journal still has everything");
        });
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning(f.Cause, "could not delete old snapshots"));
    }

    public override string PersistenceId => Name;

    private readonly RecoveryPhases _recovery = new();

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(LedgerRules rules, int snapshotEvery, HostLossTimings hostLoss, HostLeaseStore? leases = null,
        SharesPolicy? shares = null, WebhookSettings? webhooks = null) =>
        Akka.Actor.Props.Create(() => new SchedulerActor(rules, snapshotEvery, hostLoss, leases, shares, webhooks));

    protected override void PostStop()
    {
        LedgerMetrics.Withdraw(_state); // the singleton moves on: this node has no ledger left to report
        base.PostStop();
    }

    private void LoseHost(HostId host)
    {
        _log.Warning("host {0} is lost; re-placing its VMs", host);
        Handle(new LedgerCommands.LoseHost(host), sender: null);
    }

    /// <summary>An unreachable host takes no new VMs; reachable again, it takes what waits (its running VMs never move for this).</summary>
    private void OnReachability(HostLossProtocol.Reachability r)
    {
        _hosts.Reachable(r.Host, r.Reachable);
        _rules = _rules with { Unreachable = _hosts.Unreachable };
        if (r.Reachable)
        {
            Handle(new PlacementCommands.PlacePending(), sender: null);
        }
    }

    private void OnMayStart(MayStartVm ask)
    {
        var reason = StartPermissions.WhyNot(_state, ask.VmId, ask.HostId, ask.Epoch);
        Sender.Tell(new StartPermission(ask.VmId, ask.Epoch, reason is null, reason));
    }

    private void OnRegisterHostAgent(RegisterHostAgent register)
    {
        var host = register.Host.HostId;
        var fresh = _hosts.Register(host, Sender);
        if (fresh)
        {
            _hostLossDetector.Tell(new HostLossProtocol.AgentRegistered(host, Sender));
        }

        _vxlan.Register(host, register.Underlay, fresh);
        var agent = Sender;
        var before = Decided;
        Persist(register.Host, before.Decide(register.Host, _rules, DateTimeOffset.UtcNow), traceParent: null, () =>
        {
            agent.Tell(SchedulerReplies.To(register.Host, before, _state));
            _vxlan.Publish(_state, _hosts);
        });
    }

    private void Handle(ILedgerCommand command) => Handle(command, Sender);

    /// <param name="sender">who is answered; null: nobody (the scheduler's own commands: a lost host, new shares).</param>
    private void Handle(ILedgerCommand command, IActorRef? sender)
    {
        var before = Decided;
        var traceParent = (command as LedgerCommands.CreateVm)?.TraceParent;
        var deciding = Stopwatch.GetTimestamp();
        var decideSpan = StartCreateSpan("scheduler.decide", command, traceParent);
        var decision = before.Decide(command, _rules, DateTimeOffset.UtcNow);
        OrchestratorMetrics.DecisionDuration.Record(Stopwatch.GetElapsedTime(deciding).TotalSeconds);
        if (decision.Refusal is { } refusal)
        {
            decideSpan.End(ActivityStatusCode.Error, refusal.GetType().Name);
            sender?.Tell(new SchedulerReplies.Refused(refusal));
            return;
        }

        decideSpan.End();

        var releases = decision.Events.Any(e => e is VmReleased);
        // Answered once its events are persisted (I1), from the persisted state (then the state it was decided into); so
        // is whoever waits for a VM it released.
        Persist(command, decision, traceParent, () =>
        {
            sender?.Tell(SchedulerReplies.To(command, before, _state));
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
    /// all that arrives meanwhile into the next one. Each reply still waits for its own events (I1): it is sent from the
    /// handler of the command's last event, which runs once all of them are written (handlers run in order). A
    /// DeferAsync per command did the same at the cost of one more message through the journal and back. Queries,
    /// snapshots and hosts only ever see <c>_state</c>, the persisted state.
    /// </summary>
    /// <param name="traceParent">a traced create's span: the journal write gets a span under it, and the hosts told of
    /// its VMs continue the trace.</param>
    private void Persist(ILedgerCommand command, Decision decision, string? traceParent, Action reply)
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

        // The bookkeeping below runs for every command at full rate: the collections are made only when an event needs
        // them, and the questions only a rare event can answer (security rules, layers, volumes) are asked of it alone.
        var ahead = Decided;
        var tagged = new Tagged[decision.Events.Count];
        HashSet<HostId>? sharesDue = null;
        List<Orchestrator.Domain.Storage.VolumeRecord>? volumesGone = null;
        List<LayerGone>? layersGone = null;
        HashSet<VmId>? rulesChanged = null; // whose NICs' security rules changed: their hosts rewrite them
        for (var i = 0; i < tagged.Length; i++)
        {
            var evt = decision.Events[i];
            if (evt is VolumeEvents.VolumeDeleted deleted && ahead.Volumes.GetValueOrDefault(deleted.Id) is { } volume)
            {
                (volumesGone ??= []).Add(volume);
            }

            if (evt is SnapshotEvents.SnapshotDeleted or SnapshotEvents.VmDiskRestored or VmReleased)
            {
                (layersGone ??= []).AddRange(ahead.LayersGoneBy(evt));
            }

            tagged[i] = new Tagged(evt, TagSet.Of(EventTags.For(ahead, evt)));
            if (_sharesKeeper is not null)
            {
                (sharesDue ??= []).UnionWith(SharesDue.HostsChangedBy(ahead, evt));
            }

            AddRulesTouched(ref rulesChanged, ahead, evt);
            ahead = ahead.Apply(evt);
            AddRulesTouched(ref rulesChanged, ahead, evt);
            if (evt is ForwardEvents.ForwardAdded or ForwardEvents.ForwardRemoved)
            {
                (rulesChanged ??= []).UnionWith(LedgerState.ForwardsTouchedBy(evt));
            }
        }

        if (sharesDue is { Count: > 0 })
        {
            _sharesKeeper!.Tell(new SharesKeeper.Due(sharesDue));
        }

        _ahead = ahead;
        _inFlight++;
        HashSet<VmId>? changed = null;
        var remaining = tagged.Length;
        var byHostLoss = command is LedgerCommands.LoseHost;
        var writing = Stopwatch.GetTimestamp();
        var persistSpan = StartCreateSpan("scheduler.persist", command, traceParent);
        persistSpan?.SetTag("orchestrator.journal.events", tagged.Length);
        PersistAllAsync(tagged, t =>
        {
            var evt = (ILedgerEvent)t.Payload;
            LedgerMetrics.Persisted(evt, evt is VmReady ready ? _state.Vms.GetValueOrDefault(ready.VmId) : null, byHostLoss);
            if (evt is VmPlaced or VmDesiredStateChanged or VmDeleteRequested or VmResourcesChanged or VmLabelsChanged
                or VolumeEvents.VolumeAttached or VolumeEvents.VolumeDetached or SnapshotEvents.SnapshotTaken or SnapshotEvents.VmDiskRestored)
            {
                (changed ??= []).Add(((IVmLedgerEvent)evt).VmId);
            }
            else if (evt is TenantUpdated updated)
            {
                // A changed pool changes its VMs' weights on every host: tell the hosts.
                (changed ??= []).UnionWith(ahead.VmsOf(updated.Tenant).Select(v => v.Id));
            }

            _eventsSinceSnapshot++;
            if (--remaining > 0)
            {
                return;
            }

            // The command's last event is written: the persisted state is the one it was decided into (no second Apply).
            _projections?.Changed(_state, ahead);
            _snapshots.Track(_state, ahead);
            _state = ahead;
            if (--_inFlight == 0)
            {
                _ahead = null; // _state has caught up
            }

            LedgerMetrics.Publish(_state);
            OrchestratorMetrics.JournalWriteDuration.Record(Stopwatch.GetElapsedTime(writing).TotalSeconds);
            SnapshotWhenDue();
            persistSpan.End();
            reply();
            if (changed is not null || rulesChanged is not null)
            {
                var traceParent = OrchestratorTracing.TraceParentOf(persistSpan);
                foreach (var vmId in rulesChanged is null ? changed! : changed is null ? rulesChanged : changed.Union(rulesChanged))
                {
                    TellHost(vmId, traceParent);
                }
            }

            _vxlan.Publish(_state, _hosts);

            foreach (var volume in volumesGone ?? [])
            {
                DeleteVolumeFile(volume);
            }

            foreach (var layer in layersGone ?? [])
            {
                DeleteLayerFile(layer);
            }
        });
    }

    /// <summary>
    /// Every snapshot-every events a snapshot: whole, or only what changed since the last (<see cref="IncrementalSnapshots"/>
    /// says which and why), so that recovery replays at most about that many events whatever the ledger's size. One
    /// builds on the one before, so it waits for that one's answer; and since an incremental snapshot writes the small
    /// lists (tenants, keys, networks …) whole, it waits for as many events as they have records, which keeps a
    /// snapshot's writes per event constant.
    /// </summary>
    private void SnapshotWhenDue()
    {
        if (_snapshots.Saving || _eventsSinceSnapshot < Math.Max(_snapshotEvery, IncrementalSnapshots.WholeListRecords(_state)))
        {
            return;
        }

        _eventsSinceSnapshot = 0;
        SaveSnapshot(_snapshots.Next(_state, LastSequenceNr));
    }

    /// <summary>
    /// Adds the VMs whose NICs' security rules <paramref name="evt"/> touches, as <paramref name="state"/> sees it. A ledger
    /// without security groups has no rule to touch but a NIC's own change of groups (no VM can name a group that does not
    /// exist): the question, which allocates, is then not asked of every VM event.
    /// </summary>
    private static void AddRulesTouched(ref HashSet<VmId>? touched, LedgerState state, ILedgerEvent evt)
    {
        if (state.SecurityGroups.IsEmpty && evt is not SecurityGroupEvents.NicSecurityGroupsChanged)
        {
            return;
        }

        foreach (var vm in state.SecurityRulesTouchedBy(evt))
        {
            (touched ??= []).Add(vm);
        }
    }

    /// <summary>
    /// A rejected write (the journal refused an event, e.g. it would not serialize) leaves <see cref="Decided"/> ahead
    /// of the journal for good (its last event's handler never runs to bring it back), and commands decided on it since
    /// would still be answered: restart, so recovery rebuilds from what is written.
    /// </summary>
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        base.OnPersistRejected(cause, @event, sequenceNr);
        throw new InvalidOperationException($"journal rejected event {sequenceNr}; restarting the scheduler from its journal", cause);
    }

    private void TellHost(VmId vmId, string? traceParent = null)
    {
        if (_state.Vms.TryGetValue(vmId, out var vm))
        {
            _hosts.AgentOf(vm.Host)?.Tell(new HostAgentCommands.Assign(_state.AssignmentOf(vm), traceParent));
        }
    }

    /// <summary>A span of a traced create's way through the scheduler (ids only: the tenant's and the new VM's).</summary>
    private static Activity? StartCreateSpan(string name, ILedgerCommand command, string? traceParent)
    {
        var span = OrchestratorTracing.StartChild(name, traceParent);
        if (span is not null && command is LedgerCommands.CreateVm create)
        {
            span.SetTag(OrchestratorTracing.TenantIdTag, create.Tenant.ToString());
            span.SetTag(OrchestratorTracing.VmIdTag, create.NewId.ToString());
        }

        return span;
    }

    /// <summary>
    /// Has a host that holds the deleted volume's pool remove its file: the local pool's own host, or any host up that
    /// mounts the shared pool. None up: the file stays until an operator removes it (its id is never reused, so it is never
    /// read again).
    /// </summary>
    private void DeleteVolumeFile(Orchestrator.Domain.Storage.VolumeRecord volume)
    {
        if (AgentOfPool(volume.Host, volume.Pool) is { } agent)
        {
            agent.Tell(new HostAgentCommands.DeleteVolume(volume.Id, volume.Pool));
        }
        else
        {
            _log.Warning("volume {0} was deleted but no host of its pool '{1}' is up to remove its file", volume.Id, volume.Pool);
        }
    }

    /// <summary>Has a host of its pool remove a disk layer nothing needs any more (as <see cref="DeleteVolumeFile"/> does a volume's).</summary>
    private void DeleteLayerFile(LayerGone layer)
    {
        if (AgentOfPool(layer.Host, layer.Pool) is { } agent)
        {
            agent.Tell(new HostAgentCommands.DeleteDiskLayer(layer.Layer, layer.Pool));
        }
        else
        {
            _log.Warning("disk layer {0} is no longer needed but no host of its pool '{1}' is up to remove its file", layer.Layer, layer.Pool);
        }
    }

    /// <summary>The agent of the pool's host: a local pool's own, or any host up that mounts the shared pool.</summary>
    private IActorRef? AgentOfPool(HostId? host, string pool) =>
        _hosts.AgentOf(host ?? _state.Hosts.Values
            .Where(h => h.State == HostState.Up && h.EffectivePools.Any(p => p.Shared && p.Id == pool))
            .Select(h => (HostId?)h.Id).FirstOrDefault());

    private sealed class ProjectionsLate
    {
        public static readonly ProjectionsLate Instance = new();
    }

    private sealed class CheckMembers
    {
        public static readonly CheckMembers Instance = new();
    }
}
