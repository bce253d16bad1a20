using System.Collections.Concurrent;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;
using Orchestrator.Hypervisor.Cgroups;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// The VM actor and its vCPU actors with the native engine's shape of handle: each vCPU actor owns one vCPU and drives
/// it. The vCPUs here are scripted (this machine has no /dev/kvm; the engine's own runner is tested in
/// Orchestrator.Hypervisor.Tests and on a KVM machine by the harness): each answers a request at once, or never.
/// </summary>
public sealed class VcpuOwnershipTests : TestKit
{
    private static readonly TimeSpan AckTimeout = TimeSpan.FromMilliseconds(300);

    private (IActorRef Vm, ScriptedVm Handle) StartVm(int vcpus, Action<ScriptedVcpu>? script = null, VmCgroups? cgroups = null)
    {
        var handle = new ScriptedVm(vcpus);
        foreach (var vcpu in handle.ScriptedVcpus)
        {
            script?.Invoke(vcpu);
        }

        var assignment = new VmAssignment(VmId.New(), "k1", vcpus, 64, "demo", RestartPolicy.Never, new Epoch(1), DesiredState.Running,
            Deleting: false, VmStatus.Starting);
        var props = VmActor.Props(assignment, new GuestImage("demo", "/nonexistent/kernel", "/nonexistent/initrd", "scripted"),
            new ScriptedDriver(handle), TestActor, adopt: null, stopTimeout: TimeSpan.FromSeconds(5),
            vcpuSampleInterval: TimeSpan.FromHours(1), cgroups: cgroups, vcpuAckTimeout: AckTimeout);
        var vm = ChildActorOf(props);
        // Running is reported once the handle is there and the vCPU actors exist.
        FishForMessage(m => m is Domain.Ledger.LedgerCommands.ReportVm { Status: VmStatus.Running });
        return (vm, handle);
    }

    [Fact]
    public void A_vm_inside_the_node_process_leaves_the_node_out_of_its_cgroup()
    {
        var layout = CgroupLayout.Detect();
        Assert.True(layout.Version != CgroupVersion.None, $"this test needs cgroups: {layout.Problem}");
        var cgroups = new VmCgroups(layout, $"vcpu-test-{Guid.NewGuid():N}"[..24]);
        cgroups.PrepareScope(null, null);
        var before = File.ReadAllText("/proc/self/cgroup");
        try
        {
            var (vm, handle) = StartVm(vcpus: 2, cgroups: cgroups);

            vm.Tell(new HostAgentCommands.GetVmRuntime(handle.VmId));
            Assert.Null(FishForMessage<VmRuntime>(_ => true).Cgroup);
            Assert.Equal(before, File.ReadAllText("/proc/self/cgroup"));
        }
        finally
        {
            cgroups.RemoveAll(TimeSpan.FromSeconds(5));
            cgroups.RemoveScope();
        }
    }

    [Fact]
    public void Pause_and_resume_reach_every_vcpu_and_are_answered_once_all_acknowledged()
    {
        var (vm, handle) = StartVm(vcpus: 3);

        vm.Tell(new HostAgentCommands.SetPaused(handle.VmId, true));
        var paused = FishForMessage<VmPauseResult>(_ => true);
        Assert.Null(paused.Error);
        Assert.True(paused.Paused);
        Assert.All(handle.ScriptedVcpus, v => Assert.Equal(VcpuState.Paused, v.State));

        vm.Tell(new HostAgentCommands.GetVmRuntime(handle.VmId));
        Assert.True(FishForMessage<VmRuntime>(_ => true).Paused);

        vm.Tell(new HostAgentCommands.SetPaused(handle.VmId, false));
        var resumed = FishForMessage<VmPauseResult>(_ => true);
        Assert.Null(resumed.Error);
        Assert.False(resumed.Paused);
        Assert.All(handle.ScriptedVcpus, v => Assert.Equal(VcpuState.Running, v.State));
        Assert.All(handle.ScriptedVcpus, v => Assert.Equal(2, v.Requests.Count));
    }

    [Fact]
    public void A_pause_one_vcpu_refuses_resumes_the_others_so_the_vm_runs_whole()
    {
        var (vm, handle) = StartVm(vcpus: 3, script: v => v.RefusesPause = v.Index == 1);

        vm.Tell(new HostAgentCommands.SetPaused(handle.VmId, true));
        var answer = FishForMessage<VmPauseResult>(_ => true);

        Assert.Contains("vCPU 1 could not pause", answer.Error);
        Assert.False(answer.Paused);
        AwaitAssert(() => Assert.All(handle.ScriptedVcpus, v => Assert.Equal(VcpuState.Running, v.State)));
        AwaitAssert(() => Assert.Equal(["pause", "resume"], handle.ScriptedVcpus[0].Requests));
        Assert.False(handle.Killed);
    }

    [Fact]
    public void A_vcpu_that_never_acknowledges_a_pause_fails_the_vm_naming_it()
    {
        var (vm, handle) = StartVm(vcpus: 2, script: v => v.SilentOnPause = v.Index == 1);

        vm.Tell(new HostAgentCommands.SetPaused(handle.VmId, true));
        var answer = FishForMessage<VmPauseResult>(_ => true);
        Assert.Contains("vCPU 1 did not acknowledge pause", answer.Error);

        var exited = FishForMessage<VmProtocol.Exited>(_ => true);
        Assert.Equal(ExitKind.Crash, exited.Kind);
        Assert.Contains("vCPU 1 did not acknowledge pause", exited.Reason);
        Assert.True(handle.Killed);
    }

    [Fact]
    public void A_vcpu_that_kvm_fails_takes_its_vm_down_as_a_crash()
    {
        var (_, handle) = StartVm(vcpus: 2);

        handle.ScriptedVcpus[0].End(new VcpuEnd(VcpuEndKind.Failed, "KVM_EXIT_INTERNAL_ERROR (suberror 1)"));

        var exited = FishForMessage<VmProtocol.Exited>(_ => true);
        Assert.Equal(ExitKind.Crash, exited.Kind);
        Assert.Contains("vCPU 0 failed: KVM_EXIT_INTERNAL_ERROR", exited.Reason);
    }

    [Fact]
    public void A_vm_that_is_still_starting_refuses_a_pause_with_a_reason()
    {
        var handle = new ScriptedVm(1);
        var driver = new ScriptedDriver(handle, startGate: new TaskCompletionSource());
        var assignment = new VmAssignment(handle.VmId, "k1", 1, 64, "demo", RestartPolicy.Never, new Epoch(1), DesiredState.Running, false,
            VmStatus.Starting);
        var vm = ChildActorOf(VmActor.Props(assignment, new GuestImage("demo", "/k", "/i", "scripted"), driver, TestActor, null,
            TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), vcpuAckTimeout: AckTimeout));

        vm.Tell(new HostAgentCommands.SetPaused(handle.VmId, true));
        var answer = FishForMessage<VmPauseResult>(_ => true);
        Assert.Equal("the VM is still starting", answer.Error);
        Assert.Empty(handle.ScriptedVcpus[0].Requests);
    }

    [Fact]
    public void A_vm_whose_actor_stopped_while_it_was_starting_is_killed_not_left_unowned()
    {
        var handle = new ScriptedVm(1);
        var gate = new TaskCompletionSource();
        var assignment = new VmAssignment(handle.VmId, "k1", 1, 64, "demo", RestartPolicy.Never, new Epoch(1), DesiredState.Running, false,
            VmStatus.Starting);
        var vm = ChildActorOf(VmActor.Props(assignment, new GuestImage("demo", "/k", "/i", "scripted"), new ScriptedDriver(handle, gate),
            TestActor, null, TimeSpan.FromSeconds(5), TimeSpan.FromHours(1), vcpuAckTimeout: AckTimeout));
        Watch(vm);

        Sys.Stop(vm);
        ExpectTerminated(vm);
        gate.SetResult();

        AwaitAssert(() => Assert.True(handle.Killed));
    }

    private sealed class ScriptedDriver(ScriptedVm vm, TaskCompletionSource? startGate = null) : IHypervisor
    {
        public string Name => "scripted";

        public async Task<IVmHandle> StartAsync(VmLaunchSpec spec, CancellationToken cancellationToken)
        {
            if (startGate is not null)
            {
                await startGate.Task.WaitAsync(cancellationToken);
            }

            return vm;
        }

        public Task<IReadOnlyList<DiscoveredVm>> DiscoverAsync(CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<DiscoveredVm>>([]);

        public Task<IVmHandle> AdoptAsync(DiscoveredVm vm, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task KillAsync(DiscoveredVm vm, CancellationToken cancellationToken) => Task.CompletedTask;

        public void Cleanup(VmId vmId)
        {
        }

        public void Heartbeat()
        {
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>A VM of scripted vCPUs; killing it ends them all and then reports Exited, as the engine does.</summary>
    private sealed class ScriptedVm(int vcpus) : IVmHandle, IVcpuHost
    {
        private readonly ConcurrentBag<Action<VmEvent>> _subscribers = [];
        private int _ended;

        public ScriptedVcpu[] ScriptedVcpus { get; } = Enumerable.Range(0, vcpus).Select(i => new ScriptedVcpu(i)).ToArray();

        public IReadOnlyList<IVcpuHandle> Vcpus => ScriptedVcpus;

        public VmId VmId { get; } = VmId.New();

        public Epoch Epoch => new(1);

        public int Pid => Environment.ProcessId;

        public string ConsoleLogPath => "/nonexistent/console.log";

        public bool Killed { get; private set; }

        public void Subscribe(Action<VmEvent> onEvent) => _subscribers.Add(onEvent);

        public Task<IReadOnlyList<VcpuInfo>> QueryVcpusAsync(CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<VcpuInfo>>(ScriptedVcpus.Select(v => new VcpuInfo(v.Index, v.ThreadId)).ToList());

        public Task PauseAsync(CancellationToken cancellationToken) => throw new NotSupportedException("the VM actor drives vCPUs one by one");

        public Task ResumeAsync(CancellationToken cancellationToken) => throw new NotSupportedException("the VM actor drives vCPUs one by one");

        public async Task<ShutdownRoute> RequestShutdownAsync(CancellationToken cancellationToken)
        {
            await KillAsync(cancellationToken);
            return ShutdownRoute.StoppedByHost;
        }

        public Task KillAsync(CancellationToken cancellationToken)
        {
            Killed = true;
            End("killed");
            return Task.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            End("handle disposed");
            return ValueTask.CompletedTask;
        }

        private void End(string reason)
        {
            if (Interlocked.Exchange(ref _ended, 1) == 1)
            {
                return;
            }

            foreach (var vcpu in ScriptedVcpus)
            {
                vcpu.End(new VcpuEnd(VcpuEndKind.Stopped, reason));
            }

            foreach (var subscriber in _subscribers)
            {
                subscriber(new VmEvent.Exited(reason));
            }
        }
    }

    private sealed class ScriptedVcpu(int index) : IVcpuHandle
    {
        private readonly TaskCompletionSource<VcpuEnd> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private volatile VcpuState _state = VcpuState.Running;

        /// <summary>Never acknowledges a pause (a thread stuck outside the reach of its kick).</summary>
        public bool SilentOnPause { get; set; }

        /// <summary>Refuses a pause, as a vCPU that ended meanwhile does.</summary>
        public bool RefusesPause { get; set; }

        public ConcurrentQueue<string> Requests { get; } = new();

        public int Index => index;

        public int ThreadId => 0; // no real thread: nothing to sample or pin

        public VcpuState State => _state;

        public VcpuCounters Counters => new(0, 0, 0, 0, 0);

        public Task<VcpuEnd> Completion => _completion.Task;

        public Task PauseAsync(CancellationToken cancellationToken)
        {
            Requests.Enqueue("pause");
            if (SilentOnPause)
            {
                return Task.Delay(Timeout.Infinite, cancellationToken);
            }

            if (RefusesPause)
            {
                return Task.FromException(new HypervisorException($"vCPU {index} refuses"));
            }

            _state = VcpuState.Paused;
            return Task.CompletedTask;
        }

        public Task ResumeAsync(CancellationToken cancellationToken)
        {
            Requests.Enqueue("resume");
            _state = VcpuState.Running;
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            Requests.Enqueue("stop");
            End(new VcpuEnd(VcpuEndKind.Stopped, "stopped"));
            return Task.CompletedTask;
        }

        public void End(VcpuEnd end)
        {
            _state = end.Kind == VcpuEndKind.Failed ? VcpuState.Failed : VcpuState.Stopped;
            _completion.TrySetResult(end);
        }
    }
}
