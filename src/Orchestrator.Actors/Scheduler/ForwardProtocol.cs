using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;

namespace Orchestrator.Actors.Scheduler;

public static class ForwardQueries
{
    /// <summary>The port forwards of the tenant's network <paramref name="Network"/>, by host port.</summary>
    public sealed record ListForwards(TenantId Tenant, string Network) : ILedgerQuery;
}

public static class ForwardReplies
{
    /// <summary>A forward with its VM's name and address on the network.</summary>
    public sealed record ForwardView(PortForwardRecord Forward, string Vm, string Ip);

    /// <param name="Found">false: the tenant has no such network.</param>
    public sealed record ForwardList(bool Found, IReadOnlyList<ForwardView> Forwards) : IOrchestratorMessage;

    public static ForwardList List(LedgerState state, ForwardQueries.ListForwards q) => state.FindNetwork(q.Tenant, q.Network) is { } network
        ? new ForwardList(true, state.ForwardsOf(q.Tenant, network.Id)
            .Select(f => state.Vms.GetValueOrDefault(f.Vm) is { } vm
                ? new ForwardView(f, vm.Spec.Name, vm.Spec.Nics is { } nics && f.Nic < nics.Count ? nics[f.Nic].Ip ?? "" : "")
                : null)
            .OfType<ForwardView>()
            .ToList())
        : new ForwardList(false, []);
}
