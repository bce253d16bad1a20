using Orchestrator.Actors.Consoles;
using Akka.Actor;
using Akka.Event;
using System.Diagnostics;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Telemetry;
using Orchestrator.Domain;
using Orchestrator.Domain.Shares;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// Supervises one VM's hypervisor handle (a QEMU process and its QMP link, or a native KVM VM in this process). Starts
/// or adopts it, turns driver events into messages, reports Running/Ready to the scheduler, and tells its host agent how
/// the process ended; the host agent decides about restarts. Its vCPUs run under the <see cref="VcpuSupervision"/> the
/// handle calls for (one child <see cref="VcpuActor"/> per vCPU either way). Stopping this actor does not stop a QEMU VM
/// (they outlive a node restart); a native VM lives in this process and ends with its handle.
/// </summary>
public sealed class VmActor : ReceiveActor, IWithTimers
{
    /// <summary>How often the guest's agent is asked about the guest (a guest without one costs a QMP query-chardev).</summary>
    private static readonly TimeSpan GuestPollInterval = TimeSpan.FromSeconds(5);

    /// <summary>How long one such question may take before the guest counts as not answering.</summary>
    private static readonly TimeSpan GuestAnswerTimeout = TimeSpan.FromSeconds(3);

    /// <summary>How long a start waits for the ledger to hand over the VM's bootstrap (a scheduler failover takes a few seconds).</summary>
    private static readonly TimeSpan BootstrapFetchTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long a start waits for its disk's lock (see <see cref="StartWhenDiskFreeAsync"/>) before the VM fails.</summary>
    private static readonly TimeSpan DiskLockPatience = TimeSpan.FromMinutes(5);

    private readonly VmAssignment _assignment;
    private readonly GuestImage _image;
    private readonly IHypervisor _driver;
    private readonly IActorRef _scheduler;
    private readonly DiscoveredVm? _adopt;
    private readonly TimeSpan _stopTimeout;
    private readonly TimeSpan _vcpuSampleInterval;
    private readonly TimeSpan _usageInterval;
    private readonly TimeSpan _vcpuAckTimeout;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly HostCgroups.VmEnforcer _cgroup;
    private readonly GuestConsole _console = new();
    private readonly VcpuUsageMeter _usage = new();
    private readonly VmExitCause _exit = new();

    /// <summary>What this actor last told the scheduler the VM is doing.</summary>
    private VmStatus? _reported;

    private IVmHandle? _handle;
    private VcpuSupervision? _vcpus;
    private Task<IVmHandle>? _opening;

    /// <summary>This node's image store, asked for an imported image's file before a start (null: the file must be here).</summary>
    private readonly IActorRef? _imageStore;

    /// <summary>The longest a start waits for its image's file to be fetched: a 4 GiB image at a slow link's pace.</summary>
    private static readonly TimeSpan ImageFetchPatience = TimeSpan.FromHours(1);

    /// <summary>Ends a start's wait for its disk's lock when the actor stops.</summary>
    private readonly CancellationTokenSource _starting = new();
    private IActorRef? _consoleActor;
    private DateTimeOffset _startedAt;
    private GuestInfo? _guest;
    private bool _askingGuest;

    /// <summary>The volumes the ledger attaches now (the assignment's at first, then each <see cref="VmProtocol.SyncVolumes"/>).</summary>
    private IReadOnlyList<Domain.Storage.VolumeAssignment> _volumes;

    /// <summary>A sync runs (one at a time); another is due when the wanted volumes changed meanwhile.</summary>
    private bool _syncingVolumes;

    /// <summary>The disk (and the layer it writes) the ledger says now: the assignment's at first, then each <see cref="VmProtocol.SyncDisk"/>.</summary>
    private VmDiskRequest? _disk;
    private bool _volumesChanged;

    /// <summary>The cap on the VM's disks the host agent wants now (its own limits until it says otherwise).</summary>
    private DiskThrottle _diskThrottle;

    /// <summary>The cap QEMU has now, as far as this actor knows (null: unknown, as for an adopted VM).</summary>
    private DiskThrottle? _diskThrottleApplied;

    /// <summary>The bandwidth the host agent last said it holds the VM's NICs to (null: not shaped).</summary>
    private NetRate? _netRate;
    private bool _throttling;

    /// <summary>A traced create's "vm.boot" span: from this actor's start until the guest's ready banner.</summary>
    private Activity? _bootSpan;

    /// <param name="traceParent">the host's span of a traced create: this start is its VM's first boot.</param>
    public VmActor(VmAssignment assignment, GuestImage image, IHypervisor driver, IActorRef scheduler, DiscoveredVm? adopt,
        TimeSpan stopTimeout, TimeSpan vcpuSampleInterval, VmCgroups? cgroups = null, TimeSpan usageInterval = default,
        TimeSpan vcpuAckTimeout = default, string? traceParent = null, IActorRef? imageStore = null)
    {
        _imageStore = imageStore;
        _bootSpan = OrchestratorTracing.StartChild("vm.boot", traceParent);
        _bootSpan?.SetTag(OrchestratorTracing.VmIdTag, assignment.VmId.ToString());
        _vcpuAckTimeout = vcpuAckTimeout > TimeSpan.Zero ? vcpuAckTimeout : TimeSpan.FromSeconds(2);
        _usageInterval = usageInterval > TimeSpan.Zero ? usageInterval : TimeSpan.FromSeconds(2);
        _assignment = assignment;
        _image = image;
        _driver = driver;
        _scheduler = scheduler;
        _adopt = adopt;
        _stopTimeout = stopTimeout;
        _vcpuSampleInterval = vcpuSampleInterval;
        _cgroup = new HostCgroups.VmEnforcer(cgroups, assignment.VmId, assignment.Name, _log);
        _volumes = assignment.Volumes ?? [];
        _disk = DiskOf(assignment);
        _diskThrottle = OwnThrottle(assignment);
        _diskThrottleApplied = adopt is null ? _diskThrottle : null;
        Starting();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private VmId VmId => _assignment.VmId;

    public static Props Props(VmAssignment assignment, GuestImage image, IHypervisor driver, IActorRef scheduler,
        DiscoveredVm? adopt, TimeSpan stopTimeout, TimeSpan vcpuSampleInterval, VmCgroups? cgroups = null,
        TimeSpan usageInterval = default, TimeSpan vcpuAckTimeout = default, string? traceParent = null, IActorRef? imageStore = null) =>
        Akka.Actor.Props.Create(() => new VmActor(assignment, image, driver, scheduler, adopt, stopTimeout, vcpuSampleInterval,
            cgroups, usageInterval, vcpuAckTimeout, traceParent, imageStore));

    protected override void PreStart()
    {
        var assignment = _assignment;
        var image = _image;
        var adopt = _adopt;
        var driver = _driver;
        var scheduler = _scheduler;
        var log = _log;
        var starting = _starting.Token;
        var imageStore = _imageStore;
        // The bootstrap fetch, process start and QMP handshake block: they run off the dispatcher and come back as a message.
        _opening = Task.Run(async () =>
        {
            if (adopt is not null)
            {
                return await driver.AdoptAsync(adopt, CancellationToken.None);
            }

            if (assignment.ImageDisk is { } imported && imageStore is not null)
            {
                await EnsureImageAsync(imageStore, imported, assignment.Image, starting);
            }

            var bootstrap = assignment.HasBootstrap ? await FetchBootstrapAsync(scheduler, assignment.VmId) : null;
            var spec = new VmLaunchSpec(assignment.VmId, assignment.Name, assignment.Vcpus, assignment.MemoryMiB, image, assignment.Epoch,
                image.BurnCpu, GuestSeed.For(assignment.Name, bootstrap),
                DiskOf(assignment), assignment.Nics, assignment.Volumes, OwnThrottle(assignment));
            return await StartWhenDiskFreeAsync(driver, spec, assignment.Name, log, starting);
        });
        _opening.PipeTo(Self, success: handle => new HandleReady(handle), failure: ex => new HandleFailed(ex));
    }

    /// <summary>
    /// Starts the VM, waiting while its disk is locked by its previous copy: after a re-placement that copy may still
    /// exist on a host that froze or was cut off, until that host's fence kills it. The lock keeps the two from ever
    /// running on one disk; giving up would leave the VM Failed for good once the old copy is gone.
    /// </summary>
    private static async Task<IVmHandle> StartWhenDiskFreeAsync(IHypervisor driver, VmLaunchSpec spec, string name, ILoggingAdapter log,
        CancellationToken ct)
    {
        var wait = TimeSpan.FromMilliseconds(250);
        var giveUpAt = DateTime.UtcNow + DiskLockPatience;
        while (true)
        {
            try
            {
                return await driver.StartAsync(spec, CancellationToken.None);
            }
            catch (DiskLockedException) when (DateTime.UtcNow < giveUpAt)
            {
                log.Warning("VM {0} ({1}): its disk is locked by another process (its old copy, not yet fenced); trying again in {2} ms",
                    name, spec.VmId, wait.TotalMilliseconds);
                await Task.Delay(wait, ct);
                wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
            catch (DiskLockedException locked)
            {
                throw new HypervisorException($"its disk stayed locked for {DiskLockPatience.TotalSeconds:F0} s: {locked.Message}");
            }
        }
    }

    /// <summary>
    /// Has the imported image's file in this node's store before the VM starts on it: fetched from a peer and checked against the
    /// ledger's SHA-256 when it is not here. The store always answers (each chunk of a fetch has its own deadline), so the ask
    /// waits as long as a large image takes.
    /// </summary>
    private static async Task EnsureImageAsync(IActorRef imageStore, Domain.Storage.ImageDisk image, string name, CancellationToken ct)
    {
        var answer = await imageStore.Ask<object>(new Images.ImageStoreProtocol.Ensure(image), ImageFetchPatience, ct);
        if (answer is Images.ImageStoreProtocol.Unavailable unavailable)
        {
            throw new HypervisorException($"image '{name}' ({image.Id}): {unavailable.Reason}");
        }
    }

    /// <summary>The VM's bootstrap from the ledger, asked for at each start since assignments leave it out.</summary>
    private static async Task<VmBootstrap?> FetchBootstrapAsync(IActorRef scheduler, VmId vmId)
    {
        try
        {
            var reply = await scheduler.Ask<SchedulerReplies.BootstrapOf>(new SchedulerQueries.GetBootstrap(vmId), BootstrapFetchTimeout);
            return reply.Bootstrap;
        }
        catch (AskTimeoutException)
        {
            throw new HypervisorException($"the scheduler did not hand over the VM's bootstrap within {BootstrapFetchTimeout.TotalSeconds:F0} s");
        }
    }

    protected override void PostStop()
    {
        EndBootSpan(ActivityStatusCode.Error, "stopped before the guest was ready");
        _starting.Cancel();
        // Only let go of the QMP link: the process keeps running until someone asks for it to stop.
        if (_handle is { } handle)
        {
            _ = handle.DisposeAsync().AsTask();
            return;
        }

        // Stopped before the handle came (or before its message was read): nobody would own what the start makes. A VM
        // this actor started is killed (it was never reported running; the host agent starts it again if it should
        // run); one it was adopting is only let go of, and keeps running under its fence guard for the next adoption.
        var adopting = _adopt is not null;
        _opening?.ContinueWith(async opened =>
        {
            if (!opened.IsCompletedSuccessfully)
            {
                return;
            }

            if (!adopting)
            {
                await opened.Result.KillAsync(CancellationToken.None);
            }

            await opened.Result.DisposeAsync();
        }, TaskScheduler.Default).Unwrap();
    }

    private void Starting()
    {
        Receive<HandleReady>(ready => OnHandleReady(ready.Handle));
        Receive<HandleFailed>(failed =>
        {
            var reason = failed.Cause is HypervisorException ? failed.Cause.Message : $"could not start: {failed.Cause.Message}";
            _log.Warning("VM {0} ({1}) failed to start: {2}", _assignment.Name, VmId, reason);
            EndBootSpan(ActivityStatusCode.Error, "failed to start");
            Context.Parent.Tell(new VmProtocol.StartFailed(VmId, _assignment.Epoch, reason));
            Context.Stop(Self);
        });
        Receive<VmProtocol.Stop>(_ => _exit.RequestStop());
        Receive<VmProtocol.Kill>(_ => _exit.RequestStop());
        Receive<VmProtocol.ReportAgain>(_ => { }); // nothing reported yet
        Receive<VmProtocol.Enforce>(enforce => _cgroup.Enforce(enforce.Limits)); // applied once the process is in its cgroup
        Receive<VmProtocol.Throttle>(throttle => _diskThrottle = throttle.Disk); // applied once running
        Receive<VmProtocol.Shape>(shape => _netRate = shape.Network);
        Receive<VmProtocol.SyncVolumes>(sync =>
        {
            _volumes = sync.Wanted;
            _volumesChanged = true; // synced once running
        });
        Receive<VmProtocol.SyncDisk>(sync => _disk = sync.Wanted); // switched once running
        Receive<HostAgentCommands.GetVmRuntime>(_ => Sender.Tell(Runtime()));
        Receive<HostAgentCommands.SetPaused>(_ => Sender.Tell(new VmPauseResult(VmId, false, "the VM is still starting")));
        Receive<ConsoleCommands.AttachVm>(_ => Sender.Tell(new ConsoleReplies.Refused(false, "the VM is still starting")));
    }

    private void OnHandleReady(IVmHandle handle)
    {
        _handle = handle;
        _startedAt = DateTimeOffset.UtcNow;
        var self = Self;
        handle.Subscribe(evt => self.Tell(evt));
        _cgroup.Join(handle.Pid);
        Report(VmStatus.Running, handle.Pid);
        _log.Info("VM {0} ({1}) {2}, pid {3}, epoch {4}", _assignment.Name, VmId, _adopt is null ? "started" : "adopted",
            handle.Pid, _assignment.Epoch);
        Timers.StartPeriodicTimer("usage", UsageDue.Instance, _usageInterval);
        Timers.StartPeriodicTimer("guest", GuestDue.Instance, GuestPollInterval);
        _vcpus = VcpuSupervision.For(handle, _adopt is not null,
            new VcpuSetup(Context, _assignment, _usage, _exit, _vcpuSampleInterval, _vcpuAckTimeout, _log));
        _vcpus.Start();
        _consoleActor = Context.ActorOf(GuestConsoleActor.Props(handle), "console");
        Become(Running);
        if (_exit.StopRequested)
        {
            KillNow();
        }
        else if (_adopt is not null || _volumesChanged)
        {
            SyncVolumes(); // adopted (attached or detached while the node was away), or changed while starting
        }

        if (!_exit.StopRequested && _disk?.Layer is not null)
        {
            SyncDisk(); // started on its layer (older snapshots are whole), or one was taken while it started or was away
        }

        if (!_exit.StopRequested)
        {
            ApplyDiskThrottle(); // adopted (its cap unknown), or the host's division changed while it started
        }
    }

    /// <summary>The VM's own disk limits: its cap until the host agent divides the host's disk among its VMs.</summary>
    private static DiskThrottle OwnThrottle(VmAssignment assignment) =>
        new(assignment.EffectiveResources.DiskIops, assignment.EffectiveResources.DiskBps);

    private sealed record DiskThrottled(DiskThrottle Throttle, string? Problem);

    /// <summary>Sets the cap the host agent wants on QEMU's throttle group (one QMP call at a time, off the dispatcher).</summary>
    private void ApplyDiskThrottle()
    {
        if (_throttling || _handle is not { } handle || _diskThrottleApplied == _diskThrottle)
        {
            return;
        }

        _throttling = true;
        var wanted = _diskThrottle;
        Task.Run(async () =>
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await handle.SetDiskThrottleAsync(wanted, timeout.Token);
        }).PipeTo(Self, success: () => new DiskThrottled(wanted, null), failure: ex => new DiskThrottled(wanted, ex.Message));
    }

    private void OnDiskThrottled(DiskThrottled done)
    {
        _throttling = false;
        if (done.Problem is { } problem)
        {
            _log.Warning("VM {0} ({1}): could not cap its disks at {2}: {3}", _assignment.Name, VmId, done.Throttle, problem);
            return; // the next change, or the next start, tries again
        }

        _diskThrottleApplied = done.Throttle;
        _log.Info("VM {0} ({1}): disks capped at {2} IOPS, {3} bytes/s (0: no cap)", _assignment.Name, VmId,
            done.Throttle.Iops ?? 0, done.Throttle.Bps ?? 0);
        ApplyDiskThrottle(); // changed meanwhile
    }

    private void Running()
    {
        Receive<HostAgentCommands.SetPaused>(set => _vcpus!.SetPaused(set.Paused, Sender));
        Receive<VmProtocol.IVcpuSupervisionMessage>(ReadVcpuNews);
        Receive<Terminated>(ReadVcpuNews); // only vCPU actors are watched
        Receive<VmProtocol.VcpuSample>(sample =>
            _usage.Sampled(sample.Index, sample.ThreadId, sample.CpuTime.TotalSeconds, sample.Waiting?.TotalSeconds));
        Receive<UsageDue>(_ =>
        {
            if (_usage.Measure(DateTimeOffset.UtcNow) is { } window)
            {
                Context.Parent.Tell(new VmProtocol.Usage(VmId, _assignment.Epoch, window.UsedMillicores, window.DemandMillicores));
            }
        });
        Receive<VmProtocol.Enforce>(enforce => _cgroup.Enforce(enforce.Limits));
        Receive<VmProtocol.Throttle>(throttle =>
        {
            _diskThrottle = throttle.Disk;
            ApplyDiskThrottle();
        });
        Receive<DiskThrottled>(OnDiskThrottled);
        Receive<VmProtocol.Shape>(shape => _netRate = shape.Network);
        Receive<VmProtocol.ReportAgain>(again =>
        {
            if (again.Epoch == _assignment.Epoch && !_exit.StopRequested && _reported is { } reported && IsBehind(again.LedgerStatus, reported))
            {
                _log.Info("VM {0}: the ledger still has it {1}, reporting {2} again", _assignment.Name, again.LedgerStatus, reported);
                Report(reported, _handle!.Pid);
            }
        });
        Receive<VmProtocol.SyncVolumes>(sync =>
        {
            _volumes = sync.Wanted;
            SyncVolumes();
        });
        Receive<VmProtocol.SyncDisk>(sync =>
        {
            _disk = sync.Wanted;
            SyncDisk();
        });
        Receive<DiskSynced>(synced =>
        {
            if (synced.Problem is { } problem)
            {
                _log.Warning("VM {0} ({1}): could not switch its disk to layer {2}: {3}", _assignment.Name, VmId, synced.Disk.Layer, problem);
                return; // the next assignment, or the next start, tries again
            }

            if (synced.How != DiskSwitch.AlreadyThere)
            {
                _log.Info("VM {0} ({1}) writes to disk layer {2} now: live snapshot, {3}", _assignment.Name, VmId, synced.Disk.Layer,
                    synced.How == DiskSwitch.Frozen ? "guest filesystems frozen" : "crash-consistent (no guest agent froze them)");
            }

            _scheduler.Tell(new SnapshotCommands.ConfirmDiskLayer(VmId, synced.Disk.Layer!), ActorRefs.NoSender);
        });
        Receive<VolumesSynced>(synced =>
        {
            _syncingVolumes = false;
            foreach (var problem in synced.Problems)
            {
                _log.Warning("VM {0} ({1}): {2}", _assignment.Name, VmId, problem);
            }

            if (_volumesChanged)
            {
                SyncVolumes();
            }
        });
        Receive<GuestDue>(_ => AskGuest());
        Receive<GuestSeen>(seen =>
        {
            _askingGuest = false;
            _guest = seen.Info;
        });

        Receive<VmEvent.ConsoleLine>(line =>
        {
            if (_console.Add(line.Text))
            {
                _log.Info("VM {0} ready: {1}", _assignment.Name, line.Text.Trim());
                Report(VmStatus.Ready, _handle!.Pid);
                EndBootSpan();
            }
        });
        Receive<VmEvent.Shutdown>(shutdown => _exit.ShutDown(shutdown.GuestInitiated));
        Receive<VmEvent.GuestPanicked>(_ => _exit.GuestPanicked());
        Receive<VmEvent.Stopped>(_ => { });
        Receive<VmEvent.Resumed>(_ => { });
        Receive<VmEvent.Exited>(exited =>
        {
            var (kind, reason) = _exit.Classify(exited.Reason);
            _log.Info("VM {0} ({1}) exited: {2}", _assignment.Name, VmId, reason);
            _vcpus!.EndPause($"the VM exited: {reason}");
            Context.Parent.Tell(new VmProtocol.Exited(VmId, _assignment.Epoch, kind, reason, DateTimeOffset.UtcNow - _startedAt));
            _handle = null; // nothing left to let go of
            Context.Stop(Self);
        });

        Receive<VmProtocol.Stop>(_ =>
        {
            if (!_exit.RequestStop())
            {
                return;
            }

            var handle = _handle!;
            // A paused guest cannot see the power button: let it run first.
            (_vcpus!.Paused ? handle.ResumeAsync(CancellationToken.None).ContinueWith(_ => handle.RequestShutdownAsync(CancellationToken.None)).Unwrap()
                    : handle.RequestShutdownAsync(CancellationToken.None))
                .PipeTo(Self, success: route => new PowerOffAsked(route), failure: _ => StopTimedOut.Instance);
            Timers.StartSingleTimer("stop-timeout", StopTimedOut.Instance, _stopTimeout);
        });
        Receive<ShutdownRequested>(_ => { });
        Receive<PowerOffAsked>(asked => _log.Info("VM {0}: asked the guest to power off ({1})", _assignment.Name, asked.Route));
        Receive<StopTimedOut>(_ =>
        {
            _log.Info("VM {0}: guest did not power off within {1}; killing it", _assignment.Name, _stopTimeout);
            KillNow();
        });
        Receive<VmProtocol.Kill>(_ =>
        {
            _exit.RequestStop();
            KillNow();
        });
        Receive<KillFailed>(failed => _log.Error(failed.Cause, "VM {0}: kill failed", _assignment.Name));
        Receive<VmProtocol.Shape>(shape => _netRate = shape.Network);
        Receive<HostAgentCommands.GetVmRuntime>(_ => Sender.Tell(Runtime()));
        Receive<ConsoleCommands.AttachVm>(attach => _consoleActor!.Forward(attach));
    }

    private void ReadVcpuNews(object news)
    {
        if (_vcpus!.Read(news))
        {
            KillNow(); // the vCPUs failed the VM
        }
    }

    /// <summary>Asks the guest's agent, off the dispatcher, one question at a time; no answer leaves the guest part out.</summary>
    private void AskGuest()
    {
        if (_askingGuest || _handle is not { } handle)
        {
            return;
        }

        _askingGuest = true;
        Task.Run(async () =>
        {
            using var timeout = new CancellationTokenSource(GuestAnswerTimeout);
            return await handle.QueryGuestAsync(timeout.Token);
        }).PipeTo(Self, success: info => new GuestSeen(info), failure: _ => new GuestSeen(null));
    }

    /// <summary>
    /// Plugs the wanted volumes QEMU lacks and unplugs those it holds that are no longer wanted, off the dispatcher, one
    /// sync at a time. A volume that fails stays as it is, logged (the next assignment tries again).
    /// </summary>
    private void SyncVolumes()
    {
        if (_syncingVolumes || _handle is not { } handle)
        {
            _volumesChanged = true;
            return;
        }

        _syncingVolumes = true;
        _volumesChanged = false;
        var wanted = _volumes;
        Task.Run(async () =>
        {
            var problems = new List<string>();
            var plugged = await handle.QueryVolumesAsync(CancellationToken.None);
            foreach (var nodeName in plugged.Where(n => wanted.All(v => v.NodeName != n)))
            {
                await Try(() => handle.DetachVolumeAsync(nodeName, CancellationToken.None), problems, $"could not detach volume node {nodeName}");
            }

            foreach (var volume in wanted.Where(v => !plugged.Contains(v.NodeName)))
            {
                await Try(() => handle.AttachVolumeAsync(volume, CancellationToken.None), problems, $"could not attach volume {volume.Id}");
            }

            return new VolumesSynced(problems);
        }).PipeTo(Self, failure: ex => new VolumesSynced([$"could not sync volumes: {ex.GetBaseException().Message}"]));
    }

    private static VmDiskRequest? DiskOf(VmAssignment assignment) =>
        assignment.DiskPool is { } pool ? new VmDiskRequest(assignment.DiskGiB, pool, assignment.DiskLayer, assignment.DiskBacking) : null;

    /// <summary>
    /// Has the running VM write to the layer the ledger says (a live snapshot when it writes to another), off the dispatcher,
    /// then tells the ledger, which marks the snapshots before it whole. Frozen through the guest's agent when it has one.
    /// </summary>
    private void SyncDisk()
    {
        if (_handle is not { } handle || _disk is not { Layer: not null } disk)
        {
            return;
        }

        var freeze = _guest is not null;
        handle.SwitchDiskLayerAsync(disk, freeze, CancellationToken.None).PipeTo(Self,
            success: how => new DiskSynced(disk, how, null),
            failure: ex => new DiskSynced(disk, DiskSwitch.AlreadyThere, ex.GetBaseException().Message));
    }

    private static async Task Try(Func<Task> action, List<string> problems, string what)
    {
        try
        {
            await action();
        }
        catch (Exception ex) when (ex is HypervisorException or NotSupportedException or IOException)
        {
            problems.Add($"{what}: {ex.Message}");
        }
    }

    private void KillNow() =>
        _handle?.KillAsync(CancellationToken.None).PipeTo(Self, success: () => ShutdownRequested.Instance, failure: ex => new KillFailed(ex));

    private void Report(VmStatus status, int? pid)
    {
        _reported = status;
        _scheduler.Tell(new LedgerCommands.ReportVm(VmId, _assignment.Epoch, status, null, pid, null));
    }

    /// <summary>Only a start's progress is reported again: Starting, then Running, then Ready.</summary>
    private static bool IsBehind(VmStatus ledger, VmStatus reported) =>
        (ledger, reported) is (VmStatus.Starting, VmStatus.Running or VmStatus.Ready) or (VmStatus.Running, VmStatus.Ready);

    private VmRuntime Runtime() =>
        new(VmId, _handle?.Pid, _usage.Vcpus.Select(v => new VcpuUsage(v.Index, v.ThreadId, v.CpuSeconds)).ToList(), _console.Tail,
            _usage.Last?.UsedMillicores, _usage.Last?.DemandMillicores, _cgroup.Path, _vcpus?.Paused ?? false, _guest,
            _diskThrottleApplied, _netRate);

    private void EndBootSpan(ActivityStatusCode status = ActivityStatusCode.Unset, string? why = null)
    {
        _bootSpan.End(status, why);
        _bootSpan = null;
    }

    private sealed record HandleReady(IVmHandle Handle);

    private sealed record VolumesSynced(IReadOnlyList<string> Problems);

    private sealed record DiskSynced(VmDiskRequest Disk, DiskSwitch How, string? Problem);

    private sealed record HandleFailed(Exception Cause);

    private sealed record KillFailed(Exception Cause);

    private sealed record GuestSeen(GuestInfo? Info);

    private sealed record PowerOffAsked(ShutdownRoute Route);

    private sealed class ShutdownRequested
    {
        public static readonly ShutdownRequested Instance = new();
    }

    private sealed class UsageDue
    {
        public static readonly UsageDue Instance = new();
    }

    private sealed class GuestDue
    {
        public static readonly GuestDue Instance = new();
    }

    private sealed class StopTimedOut
    {
        public static readonly StopTimedOut Instance = new();
    }
}
