using Akka.Actor;
using Akka.TestKit.Xunit2;
using Orchestrator.Actors.Hosts;
using Orchestrator.Domain;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// A VM actor's reports to the scheduler are told, not acknowledged. When the ledger's copy (the host agent's periodic
/// assignments) shows the VM earlier in its start than the actor reported, the actor reports again — the lost "Ready"
/// the chaos exerciser found when the scheduler's node was killed as a guest came up.
/// </summary>
public sealed class ReportAgainTests : TestKit
{
    private static readonly Epoch Epoch = new(1);

    private IActorRef StartRunningVm()
    {
        var handle = new ScriptedVm(1);
        var assignment = new VmAssignment(handle.VmId, "r1", 1, 64, "demo", RestartPolicy.Never, Epoch, DesiredState.Running,
            Deleting: false, VmStatus.Starting);
        var vm = ChildActorOf(VmActor.Props(assignment, new GuestImage("demo", "/nonexistent/kernel", "/nonexistent/initrd", "scripted"),
            new ScriptedDriver(handle), TestActor, adopt: null, stopTimeout: TimeSpan.FromSeconds(5),
            vcpuSampleInterval: TimeSpan.FromHours(1), cgroups: null, vcpuAckTimeout: TimeSpan.FromMilliseconds(300)));
        FishForMessage(m => m is LedgerCommands.ReportVm { Status: VmStatus.Running });
        return vm;
    }

    private LedgerCommands.ReportVm NextReport() => FishForMessage<LedgerCommands.ReportVm>(_ => true);

    [Fact]
    public void A_ready_guest_the_ledger_still_has_running_is_reported_ready_again()
    {
        var vm = StartRunningVm();
        vm.Tell(new VmEvent.ConsoleLine($"{GuestConsole.ReadyBanner} r1 boot=1"));
        Assert.Equal(VmStatus.Ready, NextReport().Status);

        vm.Tell(new VmProtocol.ReportAgain(Epoch, VmStatus.Running));

        var again = NextReport();
        Assert.Equal(VmStatus.Ready, again.Status);
        Assert.Equal(Epoch, again.Epoch);
    }

    [Fact]
    public void A_running_vm_the_ledger_still_has_starting_is_reported_running_again()
    {
        var vm = StartRunningVm();

        vm.Tell(new VmProtocol.ReportAgain(Epoch, VmStatus.Starting));

        Assert.Equal(VmStatus.Running, NextReport().Status);
    }

    [Fact]
    public void Nothing_is_reported_again_when_the_ledger_is_not_behind_or_the_epoch_moved_on_or_a_stop_was_asked()
    {
        var vm = StartRunningVm();

        vm.Tell(new VmProtocol.ReportAgain(Epoch, VmStatus.Running)); // it is Running: the ledger is right
        vm.Tell(new VmProtocol.ReportAgain(new Epoch(2), VmStatus.Starting)); // another copy's
        vm.Tell(VmProtocol.Stop.Instance);
        vm.Tell(new VmProtocol.ReportAgain(Epoch, VmStatus.Starting)); // stopping: its start is over

        // The actor handles its messages in order: whatever it reported would reach us before this answer.
        vm.Tell(new HostAgentCommands.GetVmRuntime(VmId.New()));
        var reports = new List<LedgerCommands.ReportVm>();
        FishForMessage(m =>
        {
            if (m is LedgerCommands.ReportVm report)
            {
                reports.Add(report);
            }

            return m is VmRuntime;
        });
        Assert.DoesNotContain(reports, r => r.Status is VmStatus.Running or VmStatus.Ready);
    }
}
