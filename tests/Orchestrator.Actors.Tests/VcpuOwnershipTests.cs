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
}
