using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Hosts;

/// <summary>The ledger's answer to a host asking whether it may still start a VM it was assigned (after a restart wait).</summary>
public static class StartPermissions
{
    /// <summary>Why <paramref name="host"/> may not start the VM under <paramref name="epoch"/> now; null: it may.</summary>
    public static string? WhyNot(LedgerState state, VmId vmId, HostId host, Epoch epoch) =>
        state.Vms.GetValueOrDefault(vmId) switch
        {
            null => "the VM no longer exists",
            var vm when vm.Host != host => $"the VM is placed on {vm.Host?.Value ?? "no host"} now",
            var vm when vm.Epoch != epoch => $"the VM runs under epoch {vm.Epoch} now, not {epoch}",
            var vm when !VmAssignment.From(vm).ShouldRun => $"the VM is {vm.Status} and should not run",
            _ => null,
        };
}
