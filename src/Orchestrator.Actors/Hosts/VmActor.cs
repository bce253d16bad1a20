using Akka.Actor;
using Akka.Event;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Actors.Hosts;

/// <summary>
/// Supervises one VM's hypervisor handle (a QEMU process and its QMP link). Starts or adopts it, turns driver
/// events into messages, reports Running/Ready to the scheduler, and tells its host agent how the process ended;
/// the host agent decides about restarts. Stopping this actor does not stop the VM: VMs outlive a node restart.
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

    private VmCgroup? _cgroup;
    private CgroupLimits? _limits;
    private readonly Dictionary<int, double> _vcpuWaiting = [];
    private (double CpuSeconds, double WaitingSeconds, DateTimeOffset At)? _lastUsage;
    private long? _usedMillicores;
    private long? _demandMillicores;

    public VmActor(VmAssignment assignment, GuestImage image, IHypervisor driver, IActorRef scheduler, DiscoveredVm? adopt,
        TimeSpan stopTimeout, TimeSpan vcpuSampleInterval, VmCgroups? cgroups = null, TimeSpan usageInterval = default)
    {
        _cgroups = cgroups;
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
        TimeSpan usageInterval = default) =>
        Akka.Actor.Props.Create(() => new VmActor(assignment, image, driver, scheduler, adopt, stopTimeout, vcpuSampleInterval,
            cgroups, usageInterval));

    protected override void PreStart()
    {
        var spec = new VmLaunchSpec(VmId, _assignment.Name, _assignment.Vcpus, _assignment.MemoryMiB, _image, _assignment.Epoch, _image.BurnCpu);
        var adopt = _adopt;
        var driver = _driver;
        // Process start and the QMP handshake block: they run off the dispatcher and come back as a message.
        Task.Run(async () => adopt is null
                ? await driver.StartAsync(spec, CancellationToken.None)
                : await driver.AdoptAsync(adopt, CancellationToken.None))
            .PipeTo(Self, success: handle => new HandleReady(handle), failure: ex => new HandleFailed(ex));
    }

    protected override void PostStop()
    {
        // Only let go of the QMP link: the process keeps running until someone asks for it to stop.
        if (_handle is { } handle)
        {
            _ = handle.DisposeAsync().AsTask();
        }
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
            _handle.QueryVcpusAsync(CancellationToken.None)
                .PipeTo(Self, success: vcpus => new VcpusFound(vcpus), failure: ex => new VcpusUnknown(ex.Message));
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
            var kind = _stopRequested ? ExitKind.Requested
                : _panicked ? ExitKind.Crash
                : _guestPoweredOff ? ExitKind.GuestPoweroff
                : ExitKind.Crash;
            var reason = kind switch
            {
                ExitKind.Requested => "stopped on request",
                ExitKind.GuestPoweroff => "guest powered off",
                _ when _panicked => "guest kernel panicked",
                _ => $"process ended unexpectedly: {exited.Reason}",
            };
            _log.Info("VM {0} ({1}) exited: {2}", _assignment.Name, VmId, reason);
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
            _handle!.RequestShutdownAsync(CancellationToken.None)
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

    /// <summary>Moves the VM's process (all its threads) into its own cgroup, then enforces the latest limits.</summary>
    private void JoinCgroup(int pid)
    {
        if (_cgroups is null)
        {
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
        new(VmId, _handle?.Pid, _vcpus.Values.ToList(), _consoleTail.ToList(), _usedMillicores, _demandMillicores, _cgroup?.Path);

    private sealed record HandleReady(IVmHandle Handle);

    private sealed record HandleFailed(Exception Cause);

    private sealed record VcpusFound(IReadOnlyList<VcpuInfo> Vcpus);

    private sealed record VcpusUnknown(string Reason);

    private sealed record KillFailed(Exception Cause);

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
