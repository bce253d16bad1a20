using Orchestrator.Actors.Consoles;
using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Event;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Settings;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Shares;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;
using Orchestrator.Hypervisor.Networking;
using Orchestrator.Actors.Telemetry;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// One per host. Registers the host with the scheduler and carries out its <see cref="HostPlan"/>: the plan decides which
/// VMs to start, adopt, stop, kill or restart (converging to what the ledger assigns here); this actor feeds it what
/// happens and does what it says (VM actors, timers, messages to the scheduler, the driver). Its child
/// <see cref="FenceKeeperActor"/> keeps the fence guard fed and says when the host must stop. It also enforces CPU shares
/// through one cgroup per VM, and reports what its VMs' vCPUs use to the scheduler.
/// </summary>
public sealed class HostAgentActor : ReceiveActor, IWithTimers
{
    public const string Name = "host-agent";

    private readonly HostSettings _settings;
    private readonly HostId _hostId;
    private readonly IHypervisor _driver;
    private readonly IActorRef _scheduler;
    private readonly ImageCatalog _images;
    private readonly IActorRef? _imageStore;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    /// <summary>What the host decided about its VMs so far; only <see cref="Feed"/> changes it.</summary>
    private HostPlan _plan;

    /// <summary>The live VM actor of each running slot.</summary>
    private readonly Dictionary<VmId, IActorRef> _actors = [];

    /// <summary>PostgreSQL host leases, when enabled: renewed by the fence keeper.</summary>
    private readonly HostLeaseStore? _leases;

    /// <summary>Live VM processes found at start, by id, until the first assignments say what to do with them.</summary>
    private Dictionary<VmId, DiscoveredVm> _discovered = [];

    /// <summary>The VMs' cgroups; null when not enforced (cgroups off, or none usable on this kernel).</summary>
    private readonly VmCgroups? _cgroups;

    /// <summary>The cgroup limits last sent to each running VM's actor.</summary>
    private readonly Dictionary<VmId, CgroupLimits> _enforced = [];

    /// <summary>The disk throttle last sent to each running VM's actor.</summary>
    private readonly Dictionary<VmId, DiskThrottle> _throttled = [];

    /// <summary>The NICs' bandwidth last sent to the driver; null: none sent yet (the first, even empty, clears what an earlier process left).</summary>
    private IReadOnlyDictionary<VmId, NetRate>? _shaped;

    /// <summary>The NICs' bandwidth last told each running VM's actor (to show it), and the actor told.</summary>
    private readonly Dictionary<VmId, (IActorRef Actor, NetRate? Rate)> _shapeShown = [];

    private readonly Dictionary<VmId, VmProtocol.Usage> _usage = [];

    /// <summary>The span of each traced create assigned here, from its assignment until its VM actor starts.</summary>
    private readonly Dictionary<VmId, Activity> _startSpans = [];

    /// <param name="imageStore">this node's image store, which VMs on an imported image ask for its file (null: the file must be here).</param>
    public HostAgentActor(HostSettings settings, HostId hostId, IHypervisor driver, IActorRef scheduler, ImageCatalog images,
        HostLeaseStore? leases = null, IActorRef? imageStore = null)
    {
        _leases = leases;
        _imageStore = imageStore;
        _settings = settings;
        _hostId = hostId;
        _driver = driver;
        _scheduler = scheduler;
        _images = images;
        var hostCpus = settings.Cpuset is { } hostCpuset ? CpuSet.Parse(hostCpuset) : Enumerable.Range(0, Environment.ProcessorCount).ToList();
        _plan = HostPlan.Empty(new HostPlanRules(images.Names, hostCpus, settings.Backoff));
        _cgroups = HostCgroups.Open(settings, hostId, _log);

        Receive<FenceKeeperActor.MajorityChanged>(changed => Feed(new HostInput.Majority(changed.Sees)));
        Receive<FenceKeeperActor.Expelled>(_ => Feed(HostInput.Expelled.Instance));
        Receive<FenceKeeperActor.LeaseRevoked>(_ => Feed(HostInput.LeaseRevoked.Instance));
        Receive<StartPermission>(p => Feed(new HostInput.Permission(p.VmId, p.Epoch, p.Granted, p.Reason)));
        Receive<HostInput.PermissionTimedOut>(Feed);
        Receive<HostInput.RestartDue>(Feed);
        Receive<Discovered>(OnDiscovered);
        Receive<DiscoveryFailed>(failed =>
        {
            _log.Error(failed.Cause, "could not look for running VMs; starting with none");
            OnDiscovered(new Discovered([]));
        });
        Receive<Register>(_ => _scheduler.Tell(new RegisterHostAgent(RegisterCommand(), _driver.NetworkUnderlay), Self));
        Receive<SchedulerReplies.HostAssignments>(reply =>
        {
            Feed(new HostInput.Assignments(reply.Assignments));
            ReportAgainWhereBehind(reply.Assignments);
        });
        Receive<HostAgentCommands.Assign>(assign =>
        {
            TraceStart(assign);
            SyncVolumes(assign.Assignment);
            SyncDisk(assign.Assignment);
            SyncNics(assign.Assignment);
            Feed(new HostInput.Assigned(assign.Assignment));
        });
        Receive<HostAgentCommands.DeleteVolume>(DeleteVolume);
        Receive<HostAgentCommands.DeleteDiskLayer>(DeleteDiskLayer);
        Receive<HostAgentCommands.SetNetworkPeers>(SetNetworkPeers);
        Receive<VmProtocol.Exited>(exited =>
        {
            if (IsLiveActor(exited.VmId))
            {
                Feed(new HostInput.Exited(exited.VmId, exited.Kind, exited.Reason, exited.Uptime));
            }
        });
        Receive<VmProtocol.StartFailed>(failed =>
        {
            if (IsLiveActor(failed.VmId))
            {
                Feed(new HostInput.StartFailed(failed.VmId, failed.Epoch, failed.Reason));
            }
        });
        Receive<Terminated>(terminated =>
        {
            if (_actors.FirstOrDefault(a => Equals(a.Value, terminated.ActorRef)) is { Value: not null } gone)
            {
                _actors.Remove(gone.Key);
                _enforced.Remove(gone.Key);
                _usage.Remove(gone.Key);
                Feed(new HostInput.ActorStopped(gone.Key));
            }
        });
        Receive<HostAgentCommands.GetVmRuntime>(query =>
        {
            if (_actors.TryGetValue(query.VmId, out var actor))
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
            if (_actors.TryGetValue(set.VmId, out var actor))
            {
                actor.Forward(set);
            }
            else
            {
                Sender.Tell(new VmPauseResult(set.VmId, false, "the VM is not running on its host"));
            }
        });
        Receive<ConsoleCommands.AttachVm>(attach =>
        {
            if (_actors.TryGetValue(attach.VmId, out var actor))
            {
                actor.Forward(attach);
            }
            else
            {
                Sender.Tell(new ConsoleReplies.Refused(false, "the VM is not running on its host"));
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
            if (IsLiveActor(usage.VmId) && _plan.Slots.TryGetValue(usage.VmId, out var slot) && slot.Assignment.Epoch == usage.Epoch)
            {
                _usage[usage.VmId] = usage;
            }
        });
        Receive<ReportUsage>(_ =>
        {
            HostMetrics.Publish(_hostId, [.. _usage.Values]);
            if (_usage.Count > 0)
            {
                _scheduler.Tell(new HostUsageReport(_hostId, _usage.Values.Select(u => new VmCpuDemand(u.VmId, u.DemandMillicores)).ToList()));
            }
        });
        Receive<KillStaleFailed>(failed => _log.Error(failed.Cause, "could not kill VM process {0}", failed.Vm.VmId));
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(HostSettings settings, HostId hostId, IHypervisor driver, IActorRef scheduler, ImageCatalog images,
        HostLeaseStore? leases = null, IActorRef? imageStore = null) =>
        Akka.Actor.Props.Create(() => new HostAgentActor(settings, hostId, driver, scheduler, images, leases, imageStore));

    protected override void PreStart()
    {
        Context.ActorOf(FenceKeeperActor.Props(_settings, _hostId, _driver, _leases), FenceKeeperActor.Name);
        if (_settings.UsageReportInterval > TimeSpan.Zero)
        {
            Timers.StartPeriodicTimer("usage", ReportUsage.Instance, _settings.UsageReportInterval);
        }

        _driver.DiscoverAsync(CancellationToken.None)
            .PipeTo(Self, success: found => new Discovered(found), failure: ex => new DiscoveryFailed(ex));
    }

    protected override SupervisorStrategy SupervisorStrategy() =>
        // A VM actor that throws has lost track of its process: stop it; Terminated without Exited counts as a crash.
        new OneForOneStrategy(_ => Directive.Stop);

    /// <summary>The one way the plan changes: decide, then carry out what it says, in order.</summary>
    private void Feed(HostInput input)
    {
        var (plan, effects) = _plan.Decide(input);
        _plan = plan;
        foreach (var effect in effects)
        {
            Perform(effect);
        }
    }

    private void Perform(HostEffect effect)
    {
        switch (effect)
        {
            case HostEffect.StartVm start:
                StartVmActor(start);
                break;
            case HostEffect.KillVm kill:
                _actors.GetValueOrDefault(kill.VmId)?.Tell(VmProtocol.Kill.Instance);
                break;
            case HostEffect.StopVm stop:
                _actors.GetValueOrDefault(stop.VmId)?.Tell(VmProtocol.Stop.Instance);
                break;
            case HostEffect.KillFound kill:
                KillStale(_discovered.GetValueOrDefault(kill.Vm.VmId) ?? new DiscoveredVm(kill.Vm.VmId, kill.Vm.Epoch, kill.Vm.Pid), kill.Why);
                break;
            case HostEffect.Report report:
                _scheduler.Tell(new LedgerCommands.ReportVm(report.VmId, report.Epoch, report.Status, report.Reason, null, report.RestartAttempt));
                break;
            case HostEffect.AskPermission ask:
                _scheduler.Tell(new MayStartVm(ask.VmId, ask.Epoch, _hostId));
                Timers.StartSingleTimer($"permit-{ask.VmId}", new HostInput.PermissionTimedOut(ask.VmId, ask.Epoch), TimeSpan.FromSeconds(3));
                break;
            case HostEffect.CancelPermissionTimeout cancel:
                Timers.Cancel($"permit-{cancel.VmId}");
                break;
            case HostEffect.RestartLater later:
                Timers.StartSingleTimer($"restart-{later.VmId}", new HostInput.RestartDue(later.VmId, later.Epoch), later.Delay);
                break;
            case HostEffect.FinishDelete finish:
                // Removing the run directory is a few unlinks; the disk goes with the VM, for good (a deleted disk is never
                // readable again); the scheduler frees the allocation once we confirm.
                _driver.Cleanup(finish.VmId);
                DeleteDisk(finish.VmId);
                EndStartSpan(finish.VmId, ActivityStatusCode.Error, "deleted before it started");
                break;
            case HostEffect.Reenforce:
                Enforce();
                Throttle();
                Shape();
                break;
            case HostEffect.RemoveCgroup remove:
                // Its actor is gone this instant: remove now, even if the same decision starts it again.
                RemoveCgroup(new RemoveCgroupDue(remove.VmId, 0), whileRunning: true);
                break;
            case HostEffect.SweepCgroups when _cgroups is not null:
                foreach (var vmId in _cgroups.List().Where(id => !_actors.ContainsKey(id)))
                {
                    RemoveCgroup(new RemoveCgroupDue(vmId, 0));
                }

                break;
            case HostEffect.Note note:
                _log.Info("{0}", note.Message);
                break;
        }
    }

    private bool IsLiveActor(VmId vmId) => _actors.TryGetValue(vmId, out var actor) && Equals(actor, Sender);

    private void OnDiscovered(Discovered found)
    {
        _discovered = found.Vms.ToDictionary(v => v.VmId);
        _log.Info("host {0}: {1} running VM process(es) found from an earlier run", _hostId, found.Vms.Count);
        Feed(new HostInput.Discovered(found.Vms.Select(v => new FoundVm(v.VmId, v.Epoch, v.Pid)).ToList()));
        Self.Tell(Register.Instance);
        Timers.StartPeriodicTimer("register", Register.Instance, _settings.RegisterInterval);
    }

    private void StartVmActor(HostEffect.StartVm start)
    {
        var assignment = start.Assignment;
        var adopt = start.Adopt is { } found ? _discovered.GetValueOrDefault(found.VmId) ?? new DiscoveredVm(found.VmId, found.Epoch, found.Pid) : null;
        var traceParent = OrchestratorTracing.TraceParentOf(_startSpans.GetValueOrDefault(assignment.VmId));
        var actor = Context.ActorOf(
            VmActor.Props(assignment, ImageFor(assignment), _driver, _scheduler, adopt, _settings.StopTimeout, _settings.VcpuSampleInterval,
                _cgroups, _settings.UsageReportInterval, traceParent: traceParent, imageStore: _imageStore),
            $"vm-{assignment.VmId.Compact}-{start.Incarnation}");
        Context.Watch(actor);
        _actors[assignment.VmId] = actor;
        _enforced.Remove(assignment.VmId);
        _throttled.Remove(assignment.VmId);
        EndStartSpan(assignment.VmId); // only the first start after a traced create: a restart is not the create's
    }

    /// <summary>
    /// What the VM boots: its catalog image, or for an imported image the kernel, initrd and command line of the catalog image
    /// named at import, with the imported file (in this node's image store, named by its id) as the base of the VM's disk. A
    /// store that lacks the file has it fetched from a peer before the VM starts (see <see cref="Images.ImageStoreActor"/>).
    /// </summary>
    private GuestImage ImageFor(VmAssignment assignment)
    {
        var boot = _images.Find(assignment.BootImage)!; // the host plan fails a VM whose boot image is not in the catalog
        return assignment.ImageDisk is { } imported
            ? boot with
            {
                Name = assignment.Image,
                RootDiskPath = Path.Combine(_settings.ImageStore ?? ".", imported.FileName),
                RootDiskFormat = imported.Format,
            }
            : boot;
    }

    /// <summary>A traced create's assignment opens the host's span, which lasts through the start permission until the VM's actor runs.</summary>
    private void TraceStart(HostAgentCommands.Assign assign)
    {
        if (OrchestratorTracing.StartChild("host.start", assign.TraceParent, ActivityKind.Consumer) is not { } span)
        {
            return;
        }

        span.SetTag(OrchestratorTracing.VmIdTag, assign.Assignment.VmId.ToString());
        span.SetTag(OrchestratorTracing.HostIdTag, _hostId.ToString());
        span.SetTag(OrchestratorTracing.TenantIdTag, assign.Assignment.Tenant.ToString());
        EndStartSpan(assign.Assignment.VmId);
        _startSpans[assign.Assignment.VmId] = span;
    }

    private void EndStartSpan(VmId vmId, ActivityStatusCode status = ActivityStatusCode.Unset, string? why = null)
    {
        if (_startSpans.Remove(vmId, out var span))
        {
            span.End(status, why);
        }
    }

    /// <summary>
    /// The ledger's copy of a starting VM may be behind what its actor reported (a report lost as the scheduler moved):
    /// its actor, which knows what it reported, says it again.
    /// </summary>
    private void ReportAgainWhereBehind(IReadOnlyList<VmAssignment> assignments)
    {
        foreach (var assignment in assignments.Where(a => a.Status is VmStatus.Starting or VmStatus.Running))
        {
            if (_actors.TryGetValue(assignment.VmId, out var actor))
            {
                actor.Tell(new VmProtocol.ReportAgain(assignment.Epoch, assignment.Status));
            }
        }
    }

    /// <summary>Sends each running VM's actor its cgroup limits, when they changed; recomputed whenever the running set or its resources change.</summary>
    private void Enforce()
    {
        if (_cgroups is null)
        {
            return;
        }

        var running = _plan.RunningSlots.Where(s => _actors.ContainsKey(s.Assignment.VmId)).Select(s => s.Assignment).ToList();
        foreach (var (vmId, limits) in HostCgroups.Limits(running, _settings.Cpus))
        {
            if (!_enforced.TryGetValue(vmId, out var sent) || limits != sent)
            {
                _enforced[vmId] = limits;
                _actors[vmId].Tell(new VmProtocol.Enforce(limits));
            }
        }
    }

    /// <summary>
    /// Sends each running VM's actor the cap on its disks when it changed: its own limits, or its share of the host's disk
    /// when the running VMs' limits together exceed it; recomputed whenever the running set or its resources change.
    /// </summary>
    private void Throttle()
    {
        var running = _plan.RunningSlots.Where(s => _actors.ContainsKey(s.Assignment.VmId))
            .Select(s => DiskShares.From(s.Assignment.VmId, s.Assignment.EffectiveResources))
            .ToList();
        foreach (var (vmId, throttle) in DiskShares.Divide(_settings.EffectiveDiskCapacity, running))
        {
            if (!_throttled.TryGetValue(vmId, out var sent) || throttle != sent)
            {
                _throttled[vmId] = throttle;
                _actors[vmId].Tell(new VmProtocol.Throttle(throttle));
            }
        }

        foreach (var gone in _throttled.Keys.Where(id => !_actors.ContainsKey(id)).ToList())
        {
            _throttled.Remove(gone);
        }
    }

    /// <summary>
    /// Sends the driver the bandwidth of each running VM's NICs when it changed: the host's capacity divided among the
    /// VMs with NICs by share weight (each may borrow up to its limit what the idle ones leave), or their limits only
    /// where no capacity is configured; recomputed whenever the running set or its resources change.
    /// </summary>
    private void Shape()
    {
        var capacity = _settings.EffectiveNetCapacity;
        var running = _plan.RunningSlots
            .Where(s => _actors.ContainsKey(s.Assignment.VmId) && s.Assignment.Nics is { Count: > 0 })
            .Select(s => NetShares.From(s.Assignment.VmId, s.Assignment.EffectiveResources))
            .ToList();
        var rates = NetShares.Divide(capacity, running);
        ShowShapes(rates);
        if (_shaped is { } sent && sent.Count == rates.Count && rates.All(r => sent.TryGetValue(r.Key, out var was) && was == r.Value))
        {
            return;
        }

        _shaped = rates;
        var log = _log;
        _driver.SetNetworkBandwidthAsync(new HostBandwidth(capacity.Bps, rates), CancellationToken.None).ContinueWith(done =>
        {
            if (done.Exception is { } ex)
            {
                log.Error(ex.GetBaseException(), "could not shape the VMs' network bandwidth");
            }
        }, TaskScheduler.Default);
    }

    /// <summary>
    /// Tells each running VM's actor its NICs' bandwidth when it changed (or the actor is a new one), so that the VM's
    /// details show what its host entitles it to now.
    /// </summary>
    private void ShowShapes(IReadOnlyDictionary<VmId, NetRate> rates)
    {
        foreach (var (vmId, actor) in _actors)
        {
            NetRate? rate = rates.TryGetValue(vmId, out var r) ? r : null;
            if (!_shapeShown.TryGetValue(vmId, out var shown) || !Equals(shown.Actor, actor) || shown.Rate != rate)
            {
                _shapeShown[vmId] = (actor, rate);
                actor.Tell(new VmProtocol.Shape(rate));
            }
        }

        foreach (var gone in _shapeShown.Keys.Where(id => !_actors.ContainsKey(id)).ToList())
        {
            _shapeShown.Remove(gone);
        }
    }

    /// <summary>Removes a gone VM's cgroup; retried for a while when its last threads are still leaving.</summary>
    private void RemoveCgroup(RemoveCgroupDue due) => RemoveCgroup(due, whileRunning: false);

    private void RemoveCgroup(RemoveCgroupDue due, bool whileRunning)
    {
        if (_cgroups is null || (!whileRunning && _actors.ContainsKey(due.VmId)))
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

    private void DeleteDisk(VmId vmId)
    {
        var scheduler = _scheduler;
        var log = _log;
        _driver.DeleteDiskAsync(vmId, CancellationToken.None).ContinueWith(deleted =>
        {
            if (deleted.Exception is { } ex)
            {
                // Confirmed all the same: the VM is gone; an operator removes the file the log names.
                log.Error(ex.GetBaseException(), "could not delete the disk of deleted VM {0}", vmId);
            }

            scheduler.Tell(new LedgerCommands.ConfirmDeleted(vmId));
        }, TaskScheduler.Default);
    }

    /// <summary>A running VM whose volumes changed in the ledger gets them plugged or unplugged (its actor does it).</summary>
    private void SyncVolumes(VmAssignment assignment)
    {
        if (_actors.TryGetValue(assignment.VmId, out var actor) && _plan.Slots.TryGetValue(assignment.VmId, out var slot)
            && slot.Assignment.Epoch == assignment.Epoch
            && !(slot.Assignment.Volumes ?? []).SequenceEqual(assignment.Volumes ?? []))
        {
            actor.Tell(new VmProtocol.SyncVolumes(assignment.Volumes ?? []));
        }
    }

    /// <summary>A running VM whose disk layer changed in the ledger (a snapshot) switches to the new one (its actor does it).</summary>
    private void SyncDisk(VmAssignment assignment)
    {
        if (assignment.DiskPool is { } pool && _actors.TryGetValue(assignment.VmId, out var actor)
            && _plan.Slots.TryGetValue(assignment.VmId, out var slot) && slot.Assignment.Epoch == assignment.Epoch
            && slot.Assignment.DiskLayer != assignment.DiskLayer)
        {
            actor.Tell(new VmProtocol.SyncDisk(new VmDiskRequest(assignment.DiskGiB, pool, assignment.DiskLayer, assignment.DiskBacking)));
        }
    }

    private void DeleteDiskLayer(HostAgentCommands.DeleteDiskLayer delete)
    {
        var log = _log;
        _driver.DeleteDiskLayerAsync(delete.Layer, delete.Pool, CancellationToken.None).ContinueWith(deleted =>
        {
            if (deleted.Exception is { } ex)
            {
                log.Error(ex.GetBaseException(), "could not delete disk layer {0} from pool {1}", delete.Layer, delete.Pool);
            }
        }, TaskScheduler.Default);
    }

    /// <summary>A running VM's NICs as the ledger has them now (their security rules changed): its host applies them again.</summary>
    private void SyncNics(VmAssignment assignment)
    {
        if (_actors.ContainsKey(assignment.VmId) && _plan.Slots.TryGetValue(assignment.VmId, out var slot)
            && slot.Assignment.Epoch == assignment.Epoch && assignment.Nics is { Count: > 0 } nics
            && !(slot.Assignment.Nics ?? []).SequenceEqual(nics))
        {
            var log = _log;
            _driver.UpdateNicsAsync(assignment.VmId, nics, CancellationToken.None).ContinueWith(done =>
            {
                if (done.Exception is { } ex)
                {
                    log.Error(ex.GetBaseException(), "could not apply the NICs of VM {0} again", assignment.VmId);
                }
            }, TaskScheduler.Default);
        }
    }

    private void DeleteVolume(HostAgentCommands.DeleteVolume delete)
    {
        var log = _log;
        _driver.DeleteVolumeAsync(delete.VolumeId, delete.Pool, CancellationToken.None).ContinueWith(deleted =>
        {
            if (deleted.Exception is { } ex)
            {
                log.Error(ex.GetBaseException(), "could not delete the file of deleted volume {0}", delete.VolumeId);
            }
        }, TaskScheduler.Default);
    }

    private void SetNetworkPeers(HostAgentCommands.SetNetworkPeers set)
    {
        var log = _log;
        _driver.SetNetworkPeersAsync(set.Networks, CancellationToken.None).ContinueWith(done =>
        {
            if (done.Exception is { } ex)
            {
                log.Error(ex.GetBaseException(), "could not program the networks' VXLAN peers");
            }
        }, TaskScheduler.Default);
    }

    private void KillStale(DiscoveredVm vm, string why) =>
        _driver.KillAsync(vm, CancellationToken.None)
            .PipeTo(Self, success: () => new KilledStale(vm, why), failure: ex => new KillStaleFailed(vm, ex));

    private LedgerCommands.RegisterHost RegisterCommand() =>
        new(_hostId, _settings.Cpus, _settings.MemoryMiB, _driver.Name,
            ((ExtendedActorSystem)Context.System).Provider.DefaultAddress.ToString(), _driver.Acceleration,
            _driver.StoragePools is { Count: > 0 } pools ? pools : null, _settings.Labels);

    private sealed record RemoveCgroupDue(VmId VmId, int Attempt);

    private sealed class ReportUsage
    {
        public static readonly ReportUsage Instance = new();
    }

    private sealed record Discovered(IReadOnlyList<DiscoveredVm> Vms);

    private sealed record DiscoveryFailed(Exception Cause);

    private sealed record KilledStale(DiscoveredVm Vm, string Why);

    private sealed record KillStaleFailed(DiscoveredVm Vm, Exception Cause);

    private sealed class Register
    {
        public static readonly Register Instance = new();
    }
}
