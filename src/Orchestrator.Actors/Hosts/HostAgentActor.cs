using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Shares;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// One per host. Registers the host with the scheduler, converges the VMs the ledger assigns here (adopting live
/// processes from an earlier run, killing the ones it must not run), restarts crashed VMs per their restart policy
/// with backoff, and keeps the fence guard fed with heartbeats. Enforces CPU shares, reservations and limits through
/// one cgroup per VM, and reports what its VMs' vCPUs use to the scheduler.
/// </summary>
public sealed class HostAgentActor : ReceiveActor, IWithTimers
{
    public const string Name = "host-agent";

    private readonly HostSettings _settings;
    private readonly HostId _hostId;
    private readonly IHypervisor _driver;
    private readonly IActorRef _scheduler;
    private readonly ImageCatalog _images;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<VmId, VmSlot> _slots = [];
    private readonly Cluster? _cluster;

    /// <summary>
    /// Whether this node sees a majority of the cluster. Without one it stops feeding the fence guard, which kills
    /// the host's VMs after fence-after: by then the majority may be about to start them elsewhere (I3).
    /// </summary>
    private bool _seesMajority = true;

    /// <summary>The membership this agent has been told of, from its own subscription.</summary>
    private MembershipView _membership = MembershipView.Empty;

    /// <summary>Downed or removed by the cluster: this incarnation must never feed the guard or start a VM again.</summary>
    private bool _expelled;

    /// <summary>Live VM processes found at start, until the first assignments say what to do with them.</summary>
    private Dictionary<VmId, DiscoveredVm>? _discovered;

    /// <summary>
    /// PostgreSQL host leases, when enabled. Only a revoked lease stops this host: while the database is unreachable
    /// no one can revoke it either, so nobody can start these VMs elsewhere and they keep running.
    /// </summary>
    private readonly HostLeaseStore? _leases;

    private bool _renewing;
    private bool _leaseAcquired;

    /// <summary>The VMs' cgroups; null when not enforced (cgroups off, or none usable on this kernel).</summary>
    private readonly VmCgroups? _cgroups;

    /// <summary>The physical CPUs this host's VMs may use.</summary>
    private readonly IReadOnlyList<int> _hostCpus;

    private readonly Dictionary<VmId, VmProtocol.Usage> _usage = [];

    public HostAgentActor(HostSettings settings, HostId hostId, IHypervisor driver, IActorRef scheduler, ImageCatalog images,
        HostLeaseStore? leases = null)
    {
        _leases = leases;
        _settings = settings;
        _hostId = hostId;
        _driver = driver;
        _scheduler = scheduler;
        _images = images;
        _cluster = ((ExtendedActorSystem)Context.System).Provider is Akka.Cluster.ClusterActorRefProvider ? Cluster.Get(Context.System) : null;
        _hostCpus = settings.Cpuset is { } hostCpuset ? CpuSet.Parse(hostCpuset) : Enumerable.Range(0, Environment.ProcessorCount).ToList();
        _cgroups = OpenCgroups(settings, hostId);

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
            if (renewed.Held)
            {
                return;
            }

            if (!_expelled)
            {
                // The scheduler declared this host lost and moved its VMs: the copies here must die now.
                _expelled = true;
                _log.Warning("this host's lease was revoked (declared lost): killing its VMs now");
                foreach (var slot in _slots.Values.Where(s => s.Actor is not null))
                {
                    slot.Actor!.Tell(VmProtocol.Kill.Instance);
                }
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
        Receive<StartPermission>(OnStartPermission);
        Receive<PermissionTimedOut>(timedOut =>
        {
            if (_slots.TryGetValue(timedOut.VmId, out var slot) && slot.AwaitingPermission && slot.Assignment.Epoch == timedOut.Epoch)
            {
                AskToStart(slot); // the scheduler may be moving; ask again
            }
        });
        Receive<Discovered>(OnDiscovered);
        Receive<DiscoveryFailed>(failed =>
        {
            _log.Error(failed.Cause, "could not look for running VMs; starting with none");
            OnDiscovered(new Discovered([]));
        });
        Receive<Register>(_ => _scheduler.Tell(new RegisterHostAgent(RegisterCommand()), Self));
        Receive<SchedulerReplies.HostAssignments>(OnAssignments);
        Receive<HostAgentCommands.Assign>(assign => Converge(assign.Assignment));
        Receive<VmProtocol.Exited>(OnExited);
        Receive<VmProtocol.StartFailed>(OnStartFailed);
        Receive<RestartDue>(due =>
        {
            if (_slots.TryGetValue(due.VmId, out var slot) && slot.RestartPending && slot.Assignment.Epoch == due.Epoch)
            {
                AskToStart(slot);
            }
        });
        Receive<Terminated>(OnTerminated);
        Receive<HostAgentCommands.GetVmRuntime>(query =>
        {
            if (_slots.TryGetValue(query.VmId, out var slot) && slot.Actor is { } actor)
            {
                actor.Forward(query);
            }
            else
            {
                Sender.Tell(VmRuntime.None(query.VmId));
            }
        });
        Receive<HostAgentCommands.SetPaused>(set =>
        {
            if (_slots.TryGetValue(set.VmId, out var slot) && slot.Actor is { } actor)
            {
                actor.Forward(set);
            }
            else
            {
                Sender.Tell(new VmPauseResult(set.VmId, false, "the VM is not running on its host"));
            }
        });
        Receive<KilledStale>(killed =>
        {
            _log.Info("killed VM process {0} (pid {1}): {2}", killed.Vm.VmId, killed.Vm.Pid, killed.Why);
            RemoveCgroup(new RemoveCgroupDue(killed.Vm.VmId, 0));
        });
        Receive<RemoveCgroupDue>(RemoveCgroup);
        Receive<VmProtocol.Usage>(usage =>
        {
            if (_slots.TryGetValue(usage.VmId, out var slot) && Equals(slot.Actor, Sender) && slot.Assignment.Epoch == usage.Epoch)
            {
                _usage[usage.VmId] = usage;
            }
        });
        Receive<ReportUsage>(_ =>
        {
            if (_usage.Count > 0)
            {
                _scheduler.Tell(new HostUsageReport(_hostId, _usage.Values.Select(u => new VmCpuDemand(u.VmId, u.DemandMillicores)).ToList()));
            }
        });
        Receive<KillStaleFailed>(failed => _log.Error(failed.Cause, "could not kill VM process {0}", failed.Vm.VmId));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(HostSettings settings, HostId hostId, IHypervisor driver, IActorRef scheduler, ImageCatalog images,
        HostLeaseStore? leases = null) =>
        Akka.Actor.Props.Create(() => new HostAgentActor(settings, hostId, driver, scheduler, images, leases));

    protected override void PreStart()
    {
        _cluster?.Subscribe(Self, ClusterEvent.SubscriptionInitialStateMode.InitialStateAsSnapshot,
            typeof(ClusterEvent.IMemberEvent), typeof(ClusterEvent.IReachabilityEvent));
        _driver.Heartbeat();
        Timers.StartPeriodicTimer("heartbeat", Heartbeat.Instance, _settings.HeartbeatInterval);
        if (_settings.UsageReportInterval > TimeSpan.Zero)
        {
            Timers.StartPeriodicTimer("usage", ReportUsage.Instance, _settings.UsageReportInterval);
        }

        _driver.DiscoverAsync(CancellationToken.None)
            .PipeTo(Self, success: found => new Discovered(found), failure: ex => new DiscoveryFailed(ex));
    }

    protected override void PostStop() => _cluster?.Unsubscribe(Self);

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


    private void UpdateMajority()
    {
        var selfStatus = _membership.StatusOf(_cluster!.SelfUniqueAddress);
        if (!_expelled && (selfStatus is MemberStatus.Down or MemberStatus.Removed || (selfStatus is null && _cluster.IsTerminated)))
        {
            _expelled = true;
            _log.Warning("this node was removed from the cluster: no more heartbeats to the fence guard, no more VM starts");
        }

        var seesMajority = _membership.SeesMajority;
        if (seesMajority != _seesMajority)
        {
            _seesMajority = seesMajority;
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
    }

    /// <summary>Before restarting a VM on its own, the host asks the ledger whether it still may (same host, same epoch).</summary>
    private void AskToStart(VmSlot slot)
    {
        if (!_seesMajority || _expelled)
        {
            Timers.StartSingleTimer($"restart-{slot.Assignment.VmId}", new RestartDue(slot.Assignment.VmId, slot.Assignment.Epoch),
                TimeSpan.FromSeconds(1));
            return;
        }

        slot.AwaitingPermission = true;
        _scheduler.Tell(new MayStartVm(slot.Assignment.VmId, slot.Assignment.Epoch, _hostId));
        Timers.StartSingleTimer($"permit-{slot.Assignment.VmId}", new PermissionTimedOut(slot.Assignment.VmId, slot.Assignment.Epoch),
            TimeSpan.FromSeconds(3));
    }

    private void OnStartPermission(StartPermission permission)
    {
        if (!_slots.TryGetValue(permission.VmId, out var slot) || !slot.AwaitingPermission || slot.Assignment.Epoch != permission.Epoch)
        {
            return;
        }

        slot.AwaitingPermission = false;
        slot.RestartPending = false;
        Timers.Cancel($"permit-{permission.VmId}");
        if (!permission.Granted)
        {
            _log.Info("VM {0} ({1}) not restarted here: {2}", slot.Assignment.Name, permission.VmId, permission.Reason);
            return;
        }

        if (slot.Actor is null && slot.Assignment.ShouldRun && !_expelled)
        {
            StartVmActor(slot, null);
        }
    }

    protected override SupervisorStrategy SupervisorStrategy() =>
        // A VM actor that throws has lost track of its process: stop it; Terminated without Exited counts as a crash.
        new OneForOneStrategy(_ => Directive.Stop);

    private void OnDiscovered(Discovered found)
    {
        _discovered = found.Vms.ToDictionary(v => v.VmId);
        _log.Info("host {0}: {1} running VM process(es) found from an earlier run", _hostId, found.Vms.Count);
        Self.Tell(Register.Instance);
        Timers.StartPeriodicTimer("register", Register.Instance, _settings.RegisterInterval);
    }

    private void OnAssignments(SchedulerReplies.HostAssignments reply)
    {
        foreach (var assignment in reply.Assignments)
        {
            Converge(assignment);
        }

        if (_discovered is { Count: > 0 } leftovers)
        {
            // The ledger assigns none of these here (or no longer at that epoch): they must not run.
            foreach (var vm in leftovers.Values)
            {
                KillStale(vm, "not assigned to this host by the ledger");
            }
        }

        if (_discovered is not null && _cgroups is not null)
        {
            // First assignments after a start: cgroups of VMs that run here no more (deleted while the node was down,
            // moved, crashed) are left from the earlier run.
            foreach (var vmId in _cgroups.List().Where(id => !_slots.TryGetValue(id, out var slot) || slot.Actor is null))
            {
                RemoveCgroup(new RemoveCgroupDue(vmId, 0));
            }
        }

        _discovered = null;
    }

    /// <summary>Brings one VM on this host to what the ledger says; idempotent.</summary>
    private void Converge(VmAssignment assignment)
    {
        if (!_slots.TryGetValue(assignment.VmId, out var slot))
        {
            slot = new VmSlot(assignment);
            _slots[assignment.VmId] = slot;
        }
        else if (assignment.Epoch < slot.Assignment.Epoch)
        {
            return; // an old message overtaken by a newer placement
        }

        var epochMoved = assignment.Epoch > slot.Assignment.Epoch;
        var resourcesMoved = assignment.EffectiveResources != slot.Assignment.EffectiveResources || assignment.Pool != slot.Assignment.Pool;
        slot.Assignment = assignment;
        if (resourcesMoved)
        {
            Enforce();
        }

        if (epochMoved)
        {
            slot.Attempts = 0;
        }

        if (slot.Actor is { } actor)
        {
            if (assignment.Deleting || epochMoved)
            {
                actor.Tell(VmProtocol.Kill.Instance);
            }
            else if (!assignment.ShouldRun)
            {
                actor.Tell(VmProtocol.Stop.Instance);
            }

            return; // the rest happens when the actor is gone
        }

        if (assignment.Deleting)
        {
            FinishDelete(slot);
            return;
        }

        var discovered = TakeDiscovered(assignment.VmId);
        if (!assignment.ShouldRun)
        {
            if (discovered is not null)
            {
                KillStale(discovered, "the ledger wants it stopped");
            }

            if (assignment.Status == VmStatus.Stopping)
            {
                ReportStatus(assignment, VmStatus.Stopped, "stopped on request");
            }

            return;
        }

        if (slot.RestartPending || slot.AwaitingPermission)
        {
            return; // waits out its backoff, then asks the scheduler
        }

        if (_expelled)
        {
            return;
        }

        if (discovered is not null && discovered.Epoch != assignment.Epoch)
        {
            KillStale(discovered, $"epoch {discovered.Epoch} is older than the ledger's {assignment.Epoch}");
            discovered = null;
        }

        StartVmActor(slot, discovered);
    }

    private void StartVmActor(VmSlot slot, DiscoveredVm? adopt)
    {
        var assignment = slot.Assignment;
        var image = _images.Find(assignment.Image);
        if (image is null)
        {
            ReportStatus(assignment, VmStatus.Failed, $"image '{assignment.Image}' is not in this host's catalog");
            return;
        }

        if (assignment.EffectiveResources.Cpuset is { } cpuset && CpuSet.Parse(cpuset).Except(_hostCpus).ToList() is { Count: > 0 } missing)
        {
            ReportStatus(assignment, VmStatus.Failed,
                $"cpuset {cpuset} names CPUs this host does not offer ({CpuSet.Format(missing)}; it offers {CpuSet.Format(_hostCpus)})");
            return;
        }

        var actor = Context.ActorOf(
            VmActor.Props(assignment, image, _driver, _scheduler, adopt, _settings.StopTimeout, _settings.VcpuSampleInterval,
                _cgroups, _settings.UsageReportInterval),
            $"vm-{assignment.VmId.Compact}-{++slot.Incarnation}");
        Context.Watch(actor);
        slot.Actor = actor;
        slot.ExitHandled = false;
        slot.Enforced = null;
        Enforce();
    }

    /// <summary>
    /// What each running VM's cgroup gets: its full-contention entitlement as the CPU weight (so reservations hold
    /// while everyone burns; CFS hands idle CPU to whoever wants it), its limit as the CFS quota, its memory limit and
    /// reservation, its cpuset. Recomputed whenever the set of running VMs or their resources change.
    /// </summary>
    private void Enforce()
    {
        if (_cgroups is null)
        {
            return;
        }

        var running = _slots.Values.Where(s => s.Actor is not null).ToList();
        var members = running
            .Select(s => new HostShares.Member(s.Assignment.VmId, s.Assignment.Tenant, s.Assignment.Vcpus, s.Assignment.EffectiveResources))
            .ToList();
        var pools = running.GroupBy(s => s.Assignment.Tenant).ToDictionary(g => g.Key, g => g.First().Assignment.Pool);
        var entitled = HostShares.UnderContention(_settings.Cpus * 1000L, members, tenant => pools.GetValueOrDefault(tenant));
        foreach (var slot in running)
        {
            var resources = slot.Assignment.EffectiveResources;
            var limits = new CgroupLimits(
                HostShares.Weight(entitled[slot.Assignment.VmId]),
                resources.CpuLimitMillicores,
                resources.MemoryLimitMiB * MiB,
                resources.MemoryReservationMiB > 0 ? resources.MemoryReservationMiB * MiB : null,
                resources.Cpuset);
            if (limits != slot.Enforced)
            {
                slot.Enforced = limits;
                slot.Actor!.Tell(new VmProtocol.Enforce(limits));
            }
        }
    }

    private const long MiB = 1024 * 1024;

    /// <summary>Removes a gone VM's cgroup; retried for a while when its last threads are still leaving.</summary>
    private void RemoveCgroup(RemoveCgroupDue due)
    {
        if (_cgroups is null || (_slots.TryGetValue(due.VmId, out var slot) && slot.Actor is not null))
        {
            return; // running again: it keeps its cgroup
        }

        try
        {
            if (!_cgroups.Remove(due.VmId))
            {
                if (due.Attempt < 20)
                {
                    Timers.StartSingleTimer($"cgroup-{due.VmId}", due with { Attempt = due.Attempt + 1 }, TimeSpan.FromMilliseconds(500));
                }
                else
                {
                    _log.Warning("cgroup of VM {0} still holds processes; left in place", due.VmId);
                }
            }
        }
        catch (HypervisorException ex)
        {
            _log.Warning("could not remove the cgroup of VM {0}: {1}", due.VmId, ex.Message);
        }
    }

    private VmCgroups? OpenCgroups(HostSettings settings, HostId hostId)
    {
        if (settings.Cgroups == CgroupMode.Off)
        {
            return null;
        }

        var layout = CgroupLayout.Detect();
        if (layout.Version == CgroupVersion.None)
        {
            if (settings.Cgroups == CgroupMode.Required)
            {
                throw new HypervisorException($"orchestrator.host.cgroups = required, but {layout.Problem}");
            }

            _log.Warning("CPU shares, reservations and limits are not enforced on this host: {0}", layout.Problem ?? "no cgroups");
            return null;
        }

        try
        {
            var cgroups = new VmCgroups(layout, CgroupScope(hostId));
            cgroups.PrepareScope(settings.Cpuset, settings.EffectiveCgroupWeight);
            _log.Info("enforcing VM shares and limits with cgroup {0} under {1}", layout.Version, layout.Root);
            return cgroups;
        }
        catch (HypervisorException ex) when (settings.Cgroups == CgroupMode.Auto)
        {
            // Not root, a read-only hierarchy, a cpuset the machine lacks: run, but say what is not enforced.
            _log.Warning("CPU shares, reservations and limits are not enforced on this host: {0}", ex.Message);
            return null;
        }
    }

    /// <summary>The host's cgroup directory name: its id when that is a safe path component, else a digest of it.</summary>
    public static string CgroupScope(HostId hostId) =>
        System.Text.RegularExpressions.Regex.IsMatch(hostId.Value, @"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\z")
            ? hostId.Value
            : "host-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(hostId.Value)))[..16];

    private void OnExited(VmProtocol.Exited exited)
    {
        if (!_slots.TryGetValue(exited.VmId, out var slot) || !Equals(slot.Actor, Sender))
        {
            return;
        }

        slot.ExitHandled = true;
        AfterExit(slot, exited.Kind, exited.Reason, exited.Uptime);
    }

    private void OnStartFailed(VmProtocol.StartFailed failed)
    {
        if (!_slots.TryGetValue(failed.VmId, out var slot) || !Equals(slot.Actor, Sender))
        {
            return;
        }

        slot.ExitHandled = true;
        if (slot.Assignment.Deleting || !slot.Assignment.ShouldRun || slot.Assignment.Epoch != failed.Epoch)
        {
            AfterExit(slot, ExitKind.Requested, failed.Reason, TimeSpan.Zero);
            return;
        }

        // A start that fails (binary missing, image unreadable, disk full) would fail again: give up and say why.
        ReportStatus(slot.Assignment, VmStatus.Failed, failed.Reason);
        slot.Assignment = slot.Assignment with { Status = VmStatus.Failed };
    }

    private void OnTerminated(Terminated terminated)
    {
        var slot = _slots.Values.FirstOrDefault(s => Equals(s.Actor, terminated.ActorRef));
        if (slot is null)
        {
            return;
        }

        slot.Actor = null;
        slot.Enforced = null;
        _usage.Remove(slot.Assignment.VmId);
        RemoveCgroup(new RemoveCgroupDue(slot.Assignment.VmId, 0));
        Enforce(); // the others' weights without it
        if (!slot.ExitHandled)
        {
            AfterExit(slot, ExitKind.Crash, "the VM's supervisor failed", TimeSpan.Zero);
        }

        if (!slot.RestartPending)
        {
            Converge(slot.Assignment);
        }
    }

    /// <summary>Decides what follows a process exit: finish a delete, settle a stop, or restart per policy.</summary>
    private void AfterExit(VmSlot slot, ExitKind kind, string reason, TimeSpan uptime)
    {
        var assignment = slot.Assignment;
        if (assignment.Deleting)
        {
            return; // Terminated follows and Converge finishes the delete
        }

        if (!assignment.ShouldRun)
        {
            ReportStatus(assignment, VmStatus.Stopped, kind == ExitKind.Requested ? "stopped on request" : reason);
            slot.Assignment = assignment with { Status = VmStatus.Stopped };
            return;
        }

        if (kind == ExitKind.Requested)
        {
            return; // stopped to be started again (a start after a stop, or a new epoch): Converge starts it
        }

        slot.Attempts = _settings.Backoff.AttemptsAfterUptime(slot.Attempts, uptime);
        switch (_settings.Backoff.Decide(assignment.RestartPolicy, kind, slot.Attempts, reason))
        {
            case RestartDecision.RestartAfter restart:
                slot.Attempts = restart.Attempt;
                slot.RestartPending = true;
                _log.Info("VM {0} ({1}): {2}; restart {3} in {4} ms", assignment.Name, assignment.VmId, reason, restart.Attempt,
                    restart.Delay.TotalMilliseconds);
                _scheduler.Tell(new LedgerCommands.ReportVm(assignment.VmId, assignment.Epoch, VmStatus.Restarting, reason, null,
                    restart.Attempt));
                slot.Assignment = assignment with { Status = VmStatus.Restarting };
                Timers.StartSingleTimer($"restart-{assignment.VmId}", new RestartDue(assignment.VmId, assignment.Epoch), restart.Delay);
                break;
            case RestartDecision.StayDown down:
                ReportStatus(assignment, down.FinalStatus, down.Reason);
                slot.Assignment = assignment with { Status = down.FinalStatus };
                break;
        }
    }

    private void FinishDelete(VmSlot slot)
    {
        var vmId = slot.Assignment.VmId;
        if (TakeDiscovered(vmId) is { } discovered)
        {
            KillStale(discovered, "deleted");
        }

        // Removing the run directory is a few unlinks; the scheduler frees the allocation once we confirm.
        _driver.Cleanup(vmId);
        _slots.Remove(vmId);
        _scheduler.Tell(new LedgerCommands.ConfirmDeleted(vmId));
    }

    private DiscoveredVm? TakeDiscovered(VmId vmId)
    {
        if (_discovered is not null && _discovered.Remove(vmId, out var vm))
        {
            return vm;
        }

        return null;
    }

    private void KillStale(DiscoveredVm vm, string why) =>
        _driver.KillAsync(vm, CancellationToken.None)
            .PipeTo(Self, success: () => new KilledStale(vm, why), failure: ex => new KillStaleFailed(vm, ex));

    private void ReportStatus(VmAssignment assignment, VmStatus status, string reason) =>
        _scheduler.Tell(new LedgerCommands.ReportVm(assignment.VmId, assignment.Epoch, status, reason, null, null));

    private LedgerCommands.RegisterHost RegisterCommand() =>
        new(_hostId, _settings.Cpus, _settings.MemoryMiB, _driver.Name,
            ((ExtendedActorSystem)Context.System).Provider.DefaultAddress.ToString());

    /// <summary>What the agent tracks per VM assigned here.</summary>
    private sealed class VmSlot(VmAssignment assignment)
    {
        public VmAssignment Assignment { get; set; } = assignment;
        public IActorRef? Actor { get; set; }
        public int Incarnation { get; set; }
        public int Attempts { get; set; }
        public bool RestartPending { get; set; }
        public bool AwaitingPermission { get; set; }
        public bool ExitHandled { get; set; }

        /// <summary>The cgroup limits last sent to the VM actor.</summary>
        public CgroupLimits? Enforced { get; set; }
    }

    private sealed record RemoveCgroupDue(VmId VmId, int Attempt);

    private sealed class ReportUsage
    {
        public static readonly ReportUsage Instance = new();
    }

    private sealed record Discovered(IReadOnlyList<DiscoveredVm> Vms);

    private sealed record DiscoveryFailed(Exception Cause);

    private sealed record RestartDue(VmId VmId, Epoch Epoch);

    private sealed record PermissionTimedOut(VmId VmId, Epoch Epoch);

    private sealed record LeaseRenewed(bool Held);

    private sealed record LeaseRenewFailed(Exception Cause, bool WasAcquire);

    private sealed record KilledStale(DiscoveredVm Vm, string Why);

    private sealed record KillStaleFailed(DiscoveredVm Vm, Exception Cause);

    private sealed class Heartbeat
    {
        public static readonly Heartbeat Instance = new();
    }

    private sealed class Register
    {
        public static readonly Register Instance = new();
    }
}
