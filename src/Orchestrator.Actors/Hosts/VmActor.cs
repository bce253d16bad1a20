using Akka.Actor;
using Akka.Event;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// Supervises one VM's hypervisor handle (a QEMU process and its QMP link, or a native KVM VM in this process). Starts
/// or adopts it, turns driver events into messages, reports Running/Ready to the scheduler, and tells its host agent how
/// the process ended; the host agent decides about restarts. One child <see cref="VcpuActor"/> per vCPU; with the native
/// engine each owns its vCPU, and a vCPU that fails or stops acknowledging fails the VM. Stopping this actor does not
/// stop a QEMU VM (they outlive a node restart); a native VM lives in this process and ends with its handle.
/// </summary>
public sealed class VmActor : ReceiveActor, IWithTimers
{
    public const string ReadyBanner = "ORCHESTRATOR-GUEST-READY";
    private const int ConsoleTailLines = 20;

    private readonly VmAssignment _assignment;
    private readonly GuestImage _image;
    private readonly IHypervisor _driver;
    private readonly IActorRef _scheduler;
    private readonly DiscoveredVm? _adopt;
    private readonly TimeSpan _stopTimeout;
    private readonly TimeSpan _vcpuSampleInterval;
    private readonly TimeSpan _usageInterval;
    private readonly TimeSpan _vcpuAckTimeout;
    private readonly VmCgroups? _cgroups;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Queue<string> _consoleTail = new();
    private readonly SortedDictionary<int, VcpuUsage> _vcpus = [];

    private IVmHandle? _handle;
    private DateTimeOffset _startedAt;
    private bool _stopRequested;
    private bool _guestPoweredOff;
    private bool _panicked;
    private bool _ready;
    private bool _paused;

    /// <summary>A pause or resume waiting for its vCPUs' acknowledgements.</summary>
    private PendingPause? _pending;

    /// <summary>Why the VM is being killed as failed: a vCPU failed or stopped acknowledging.</summary>
    private string? _vcpuFailure;

    private readonly Dictionary<int, IActorRef> _vcpuActors = [];
    private readonly Dictionary<int, IVcpuHandle> _ownedVcpus = [];

    private VmCgroup? _cgroup;
    private Task<IVmHandle>? _opening;
    private CgroupLimits? _limits;
    private readonly Dictionary<int, double> _vcpuWaiting = [];
    private (double CpuSeconds, double WaitingSeconds, DateTimeOffset At)? _lastUsage;
    private long? _usedMillicores;
    private long? _demandMillicores;

    public VmActor(VmAssignment assignment, GuestImage image, IHypervisor driver, IActorRef scheduler, DiscoveredVm? adopt,
        TimeSpan stopTimeout, TimeSpan vcpuSampleInterval, VmCgroups? cgroups = null, TimeSpan usageInterval = default,
        TimeSpan vcpuAckTimeout = default)
    {
        _cgroups = cgroups;
        _vcpuAckTimeout = vcpuAckTimeout > TimeSpan.Zero ? vcpuAckTimeout : TimeSpan.FromSeconds(2);
        _usageInterval = usageInterval > TimeSpan.Zero ? usageInterval : TimeSpan.FromSeconds(2);
        _assignment = assignment;
        _image = image;
        _driver = driver;
        _scheduler = scheduler;
        _adopt = adopt;
        _stopTimeout = stopTimeout;
        _vcpuSampleInterval = vcpuSampleInterval;
        Starting();
    }

    public ITimerScheduler Timers { get; set; } = null!;

    private VmId VmId => _assignment.VmId;

    public static Props Props(VmAssignment assignment, GuestImage image, IHypervisor driver, IActorRef scheduler,
        DiscoveredVm? adopt, TimeSpan stopTimeout, TimeSpan vcpuSampleInterval, VmCgroups? cgroups = null,
        TimeSpan usageInterval = default, TimeSpan vcpuAckTimeout = default) =>
        Akka.Actor.Props.Create(() => new VmActor(assignment, image, driver, scheduler, adopt, stopTimeout, vcpuSampleInterval,
            cgroups, usageInterval, vcpuAckTimeout));

    protected override void PreStart()
    {
        var spec = new VmLaunchSpec(VmId, _assignment.Name, _assignment.Vcpus, _assignment.MemoryMiB, _image, _assignment.Epoch, _image.BurnCpu);
        var adopt = _adopt;
        var driver = _driver;
        // Process start and the QMP handshake block: they run off the dispatcher and come back as a message.
        _opening = Task.Run(async () => adopt is null
            ? await driver.StartAsync(spec, CancellationToken.None)
            : await driver.AdoptAsync(adopt, CancellationToken.None));
        _opening.PipeTo(Self, success: handle => new HandleReady(handle), failure: ex => new HandleFailed(ex));
    }

    protected override void PostStop()
    {
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
        Receive<HandleReady>(ready =>
        {
            _handle = ready.Handle;
            _startedAt = DateTimeOffset.UtcNow;
            var self = Self;
            _handle.Subscribe(evt => self.Tell(evt));
            JoinCgroup(_handle.Pid);
            Report(VmStatus.Running, null, _handle.Pid);
            _log.Info("VM {0} ({1}) {2}, pid {3}, epoch {4}", _assignment.Name, VmId, _adopt is null ? "started" : "adopted",
                _handle.Pid, _assignment.Epoch);
            Timers.StartPeriodicTimer("usage", UsageDue.Instance, _usageInterval);
            if (_handle is IVcpuHost host)
            {
                OwnVcpus(host.Vcpus);
            }
            else
            {
                _handle.QueryVcpusAsync(CancellationToken.None)
                    .PipeTo(Self, success: vcpus => new VcpusFound(vcpus), failure: ex => new VcpusUnknown(ex.Message));
                if (_adopt is not null)
                {
                    // Pause is not kept across a node restart: whatever a previous run left paused runs again.
                    _handle.ResumeAsync(CancellationToken.None).PipeTo(Self, success: () => ResumeOnAdoptDone.Instance,
                        failure: ex => new ResumeOnAdoptFailed(ex));
                }
            }

            Become(Running);
            if (_stopRequested)
            {
                KillNow();
            }
        });
        Receive<HandleFailed>(failed =>
        {
            var reason = failed.Cause is HypervisorException ? failed.Cause.Message : $"could not start: {failed.Cause.Message}";
            _log.Warning("VM {0} ({1}) failed to start: {2}", _assignment.Name, VmId, reason);
            Context.Parent.Tell(new VmProtocol.StartFailed(VmId, _assignment.Epoch, reason));
            Context.Stop(Self);
        });
        Receive<VmProtocol.Stop>(_ => _stopRequested = true);
        Receive<VmProtocol.Kill>(_ => _stopRequested = true);
        Receive<VmProtocol.Enforce>(enforce => _limits = enforce.Limits); // applied once the process is in its cgroup
        Receive<HostAgentCommands.GetVmRuntime>(_ => Sender.Tell(Runtime()));
        Receive<HostAgentCommands.SetPaused>(set => Sender.Tell(new VmPauseResult(VmId, false, "the VM is still starting")));
    }

    private void Running()
    {
        Receive<VcpusFound>(found =>
        {
            var pins = VcpuPins(found.Vcpus.Count);
            foreach (var vcpu in found.Vcpus)
            {
                _vcpus[vcpu.Index] = new VcpuUsage(vcpu.Index, vcpu.ThreadId, 0);
                Context.ActorOf(VcpuActor.Props(vcpu.Index, _handle!.Pid, vcpu.ThreadId, _vcpuSampleInterval, pins?[vcpu.Index]),
                    $"vcpu-{vcpu.Index}");
            }
        });
        Receive<VcpusUnknown>(unknown => _log.Warning("VM {0}: could not list vCPU threads: {1}", _assignment.Name, unknown.Reason));
        Receive<ResumeOnAdoptDone>(_ => { });
        Receive<ResumeOnAdoptFailed>(failed => _log.Warning("VM {0}: could not resume it after adopting it: {1}", _assignment.Name, failed.Cause.Message));
        Receive<HostAgentCommands.SetPaused>(OnSetPaused);
        Receive<VmProtocol.VcpuDone>(OnVcpuDone);
        Receive<VmProtocol.VcpuRefused>(refused =>
            FinishPause($"vCPU {refused.Index} could not {Verb(refused.Operation)}: {refused.Reason}"));
        Receive<VmProtocol.VcpuUnresponsive>(silent =>
            FailVm($"vCPU {silent.Index} did not acknowledge {Verb(silent.Operation)} within {silent.Waited.TotalSeconds:0.###} s"));
        Receive<VmProtocol.VcpuEnded>(ended =>
        {
            _vcpuActors.Remove(ended.Index);
            if (ended.End.Kind == VcpuEndKind.Failed && !_stopRequested)
            {
                FailVm($"vCPU {ended.Index} failed: {ended.End.Reason}");
            }
            else if (_pending?.Remaining.Contains(ended.Index) == true)
            {
                FinishPause($"vCPU {ended.Index} ended: {ended.End.Reason}");
            }
        });
        Receive<Terminated>(terminated =>
        {
            // A vCPU actor stops on its own only after its vCPU ended (VcpuEnded, which may arrive after this); any other
            // stop leaves a vCPU nobody drives.
            foreach (var (index, _) in _vcpuActors.Where(v => v.Value.Equals(terminated.ActorRef)).ToList())
            {
                _vcpuActors.Remove(index);
                if (_ownedVcpus[index].Completion.IsCompleted)
                {
                    continue;
                }

                FailVm($"the actor of vCPU {index} stopped while its vCPU still ran");
            }
        });
        Receive<PauseCompleted>(completed =>
        {
            if (completed.Error is null)
            {
                _paused = completed.Paused;
            }

            FinishPause(completed.Error);
        });
        Receive<VmProtocol.VcpuSample>(sample =>
        {
            _vcpus[sample.Index] = new VcpuUsage(sample.Index, sample.ThreadId, sample.CpuTime.TotalSeconds);
            _vcpuWaiting[sample.Index] = sample.Waiting?.TotalSeconds ?? 0;
        });
        Receive<UsageDue>(_ => MeasureUsage());
        Receive<VmProtocol.Enforce>(enforce =>
        {
            _limits = enforce.Limits;
            ApplyLimits();
        });

        Receive<VmEvent.ConsoleLine>(line =>
        {
            if (_consoleTail.Count == ConsoleTailLines)
            {
                _consoleTail.Dequeue();
            }

            _consoleTail.Enqueue(line.Text);
            if (!_ready && line.Text.Contains(ReadyBanner, StringComparison.Ordinal))
            {
                _ready = true;
                _log.Info("VM {0} ready: {1}", _assignment.Name, line.Text.Trim());
                Report(VmStatus.Ready, null, _handle!.Pid);
            }
        });
        Receive<VmEvent.Shutdown>(shutdown => _guestPoweredOff |= shutdown.GuestInitiated);
        Receive<VmEvent.GuestPanicked>(_ => _panicked = true);
        Receive<VmEvent.Stopped>(_ => { });
        Receive<VmEvent.Resumed>(_ => { });
        Receive<VmEvent.Exited>(exited =>
        {
            var kind = _vcpuFailure is not null ? ExitKind.Crash
                : _stopRequested ? ExitKind.Requested
                : _panicked ? ExitKind.Crash
                : _guestPoweredOff ? ExitKind.GuestPoweroff
                : ExitKind.Crash;
            var reason = kind switch
            {
                _ when _vcpuFailure is not null => _vcpuFailure,
                ExitKind.Requested => "stopped on request",
                ExitKind.GuestPoweroff => "guest powered off",
                _ when _panicked => "guest kernel panicked",
                _ => $"process ended unexpectedly: {exited.Reason}",
            };
            _log.Info("VM {0} ({1}) exited: {2}", _assignment.Name, VmId, reason);
            FinishPause($"the VM exited: {reason}");
            Context.Parent.Tell(new VmProtocol.Exited(VmId, _assignment.Epoch, kind, reason, DateTimeOffset.UtcNow - _startedAt));
            _handle = null; // nothing left to let go of
            Context.Stop(Self);
        });

        Receive<VmProtocol.Stop>(_ =>
        {
            if (_stopRequested)
            {
                return;
            }

            _stopRequested = true;
            var handle = _handle!;
            // A paused guest cannot see the power button: let it run first.
            (_paused ? handle.ResumeAsync(CancellationToken.None).ContinueWith(_ => handle.RequestShutdownAsync(CancellationToken.None)).Unwrap()
                    : handle.RequestShutdownAsync(CancellationToken.None))
                .PipeTo(Self, success: () => ShutdownRequested.Instance, failure: _ => StopTimedOut.Instance);
            Timers.StartSingleTimer("stop-timeout", StopTimedOut.Instance, _stopTimeout);
        });
        Receive<ShutdownRequested>(_ => { });
        Receive<StopTimedOut>(_ =>
        {
            _log.Info("VM {0}: guest did not power off within {1}; killing it", _assignment.Name, _stopTimeout);
            KillNow();
        });
        Receive<VmProtocol.Kill>(_ =>
        {
            _stopRequested = true;
            KillNow();
        });
        Receive<KillFailed>(failed => _log.Error(failed.Cause, "VM {0}: kill failed", _assignment.Name));
        Receive<HostAgentCommands.GetVmRuntime>(_ => Sender.Tell(Runtime()));
    }

    /// <summary>Native engine: one actor per vCPU, owning it; usage starts at zero and fills in from their samples.</summary>
    private void OwnVcpus(IReadOnlyList<IVcpuHandle> vcpus)
    {
        var pins = VcpuPins(vcpus.Count);
        foreach (var vcpu in vcpus)
        {
            _vcpus[vcpu.Index] = new VcpuUsage(vcpu.Index, vcpu.ThreadId, 0);
            _ownedVcpus[vcpu.Index] = vcpu;
            _vcpuActors[vcpu.Index] = Context.Watch(Context.ActorOf(VcpuActor.Owning(vcpu, _vcpuSampleInterval, _vcpuAckTimeout, pins?[vcpu.Index]),
                $"vcpu-{vcpu.Index}"));
        }
    }

    private void OnSetPaused(HostAgentCommands.SetPaused set)
    {
        var error = _stopRequested ? "the VM is stopping"
            : _pending is not null ? "a pause or resume of this VM is already in progress"
            : null;
        if (error is not null || _paused == set.Paused)
        {
            Sender.Tell(new VmPauseResult(VmId, _paused, error));
            return;
        }

        _pending = new PendingPause(set.Paused, Sender, [.. _vcpuActors.Keys]);
        if (_handle is IVcpuHost)
        {
            // Each vCPU actor kicks its thread out of KVM_RUN and answers once the thread acknowledged.
            var command = new VmProtocol.VcpuCommand(set.Paused ? VmProtocol.VcpuOperation.Pause : VmProtocol.VcpuOperation.Resume);
            foreach (var vcpu in _vcpuActors.Values)
            {
                vcpu.Tell(command);
            }

            if (_pending.Remaining.Count == 0)
            {
                FinishPause("the VM has no running vCPU");
            }

            return;
        }

        // QEMU: one QMP stop/cont for the whole VM; QEMU waits for its vCPU threads itself.
        var wanted = set.Paused;
        (wanted ? _handle!.PauseAsync(CancellationToken.None) : _handle!.ResumeAsync(CancellationToken.None))
            .WaitAsync(_vcpuAckTimeout)
            .PipeTo(Self, success: () => new PauseCompleted(wanted, null),
                failure: ex => new PauseCompleted(wanted, ex is TimeoutException ? $"QEMU did not answer within {_vcpuAckTimeout.TotalSeconds:0.###} s" : ex.Message));
    }

    private void OnVcpuDone(VmProtocol.VcpuDone done)
    {
        if (_pending is null || !_pending.Remaining.Remove(done.Index) || _pending.Remaining.Count > 0)
        {
            return;
        }

        _paused = _pending.Paused;
        FinishPause(null);
    }

    private void FinishPause(string? error)
    {
        if (_pending is not { } pending)
        {
            return;
        }

        _pending = null;
        if (error is null)
        {
            _log.Info("VM {0} ({1}) {2}", _assignment.Name, VmId, _paused ? "paused" : "resumed");
        }
        else if (pending.Paused && _handle is IVcpuHost && _vcpuFailure is null)
        {
            // A pause that failed half-way leaves the vCPUs that did acknowledge parked while the VM counts as running:
            // resume them all (a running vCPU acknowledges a resume as it is), so the VM is wholly what it says it is.
            var resume = new VmProtocol.VcpuCommand(VmProtocol.VcpuOperation.Resume);
            foreach (var vcpu in _vcpuActors.Values)
            {
                vcpu.Tell(resume);
            }
        }

        pending.ReplyTo.Tell(new VmPauseResult(VmId, _paused, error));
    }

    /// <summary>A vCPU failed or went silent: the VM can no longer be paused, resumed or trusted, so it is killed as crashed.</summary>
    private void FailVm(string reason)
    {
        if (_vcpuFailure is not null)
        {
            return;
        }

        _vcpuFailure = reason;
        _log.Error("VM {0} ({1}): {2}; killing it", _assignment.Name, VmId, reason);
        FinishPause(reason);
        KillNow();
    }

    private static string Verb(VmProtocol.VcpuOperation operation) => operation.ToString().ToLowerInvariant();

    /// <summary>Moves the VM's process (all its threads) into its own cgroup, then enforces the latest limits.</summary>
    private void JoinCgroup(int pid)
    {
        if (_cgroups is null)
        {
            return;
        }

        if (pid == Environment.ProcessId)
        {
            // The native engine's VMs are threads of this node: moving "their" process would move the whole node (every
            // VM, the actor system) under this VM's limits, and a small memory limit would kill it.
            _log.Warning("VM {0} ({1}) runs inside the node process: cgroups do not enforce its shares and limits (the scheduler's " +
                         "placement still counts them)", _assignment.Name, VmId);
            return;
        }

        try
        {
            _cgroup = _cgroups.Open(VmId);
            _cgroup.AddProcess(pid); // idempotent: an adopted VM is already there
            ApplyLimits();
        }
        catch (HypervisorException ex)
        {
            _log.Error("VM {0} ({1}): its shares and limits are not enforced: {2}", _assignment.Name, VmId, ex.Message);
        }
    }

    private void ApplyLimits()
    {
        if (_cgroup is null || _limits is null)
        {
            return;
        }

        try
        {
            _cgroup.Apply(_limits);
        }
        catch (HypervisorException ex)
        {
            _log.Error("VM {0} ({1}): could not apply {2}: {3}", _assignment.Name, VmId, _limits, ex.Message);
        }
    }

    /// <summary>
    /// Which host CPU each vCPU thread is pinned to, when the VM has a cpuset: one CPU per vCPU while the set has enough
    /// (vCPU i on the set's i-th CPU), else every vCPU may use the whole set. Null: no pinning.
    /// </summary>
    private IReadOnlyList<IReadOnlyList<int>>? VcpuPins(int vcpus)
    {
        if (_assignment.EffectiveResources.Cpuset is not { } cpuset || !CpuSet.TryParse(cpuset, out var cpus, out _))
        {
            return null;
        }

        return Enumerable.Range(0, vcpus)
            .Select(i => cpus.Count >= vcpus ? (IReadOnlyList<int>)[cpus[i]] : cpus)
            .ToList();
    }

    /// <summary>
    /// CPU the vCPU threads used since the last window and what they wanted (used + waited for a CPU), in millicores,
    /// reported to the host agent. Demand never exceeds what the vCPUs could use.
    /// </summary>
    private void MeasureUsage()
    {
        var now = DateTimeOffset.UtcNow;
        var cpu = _vcpus.Values.Sum(v => v.CpuSeconds);
        var waiting = _vcpuWaiting.Values.Sum();
        if (_lastUsage is { } last && now > last.At)
        {
            var seconds = (now - last.At).TotalSeconds;
            var used = (long)Math.Round(Math.Max(0, cpu - last.CpuSeconds) / seconds * 1000);
            var wanted = used + (long)Math.Round(Math.Max(0, waiting - last.WaitingSeconds) / seconds * 1000);
            _usedMillicores = used;
            _demandMillicores = Math.Min(wanted, 1000L * Math.Max(1, _vcpus.Count));
            Context.Parent.Tell(new VmProtocol.Usage(VmId, _assignment.Epoch, used, _demandMillicores.Value));
        }

        _lastUsage = (cpu, waiting, now);
    }

    private void KillNow() =>
        _handle?.KillAsync(CancellationToken.None).PipeTo(Self, success: () => ShutdownRequested.Instance, failure: ex => new KillFailed(ex));

    private void Report(VmStatus status, string? reason, int? pid) =>
        _scheduler.Tell(new LedgerCommands.ReportVm(VmId, _assignment.Epoch, status, reason, pid, null));

    private VmRuntime Runtime() =>
        new(VmId, _handle?.Pid, _vcpus.Values.ToList(), _consoleTail.ToList(), _usedMillicores, _demandMillicores, _cgroup?.Path, _paused);

    private sealed record HandleReady(IVmHandle Handle);

    private sealed record HandleFailed(Exception Cause);

    private sealed record VcpusFound(IReadOnlyList<VcpuInfo> Vcpus);

    private sealed record VcpusUnknown(string Reason);

    private sealed record KillFailed(Exception Cause);

    private sealed record PendingPause(bool Paused, IActorRef ReplyTo, HashSet<int> Remaining);

    private sealed record PauseCompleted(bool Paused, string? Error);

    private sealed record ResumeOnAdoptFailed(Exception Cause);

    private sealed class ResumeOnAdoptDone
    {
        public static readonly ResumeOnAdoptDone Instance = new();
    }

    private sealed class ShutdownRequested
    {
        public static readonly ShutdownRequested Instance = new();
    }

    private sealed class UsageDue
    {
        public static readonly UsageDue Instance = new();
    }

    private sealed class StopTimedOut
    {
        public static readonly StopTimedOut Instance = new();
    }
}
