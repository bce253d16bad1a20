using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Tests;

public class StartPermissionsTests
{
    [Fact]
    public void Only_the_vms_host_under_its_current_epoch_may_start_it_and_only_while_it_should_run()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var vm = ledger.Create("web");
        var host = vm.Host!.Value;

        Assert.Null(StartPermissions.WhyNot(ledger.State, vm.Id, host, vm.Epoch));
        Assert.Equal("the VM is placed on h1 now", StartPermissions.WhyNot(ledger.State, vm.Id, new HostId("h2"), vm.Epoch));
        Assert.Equal($"the VM runs under epoch {vm.Epoch} now, not {vm.Epoch.Next()}", StartPermissions.WhyNot(ledger.State, vm.Id, host, vm.Epoch.Next()));
        Assert.Equal("the VM no longer exists", StartPermissions.WhyNot(ledger.State, VmId.New(), host, vm.Epoch));

        ledger.Send(new LedgerCommands.StopVm(vm.Tenant, "web"));
        Assert.Equal($"the VM is {ledger.State.Vms[vm.Id].Status} and should not run", StartPermissions.WhyNot(ledger.State, vm.Id, host, vm.Epoch));
    }
}
