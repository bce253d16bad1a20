using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;

namespace Orchestrator.Actors.Scheduler;

public static class NetworkQueries
{
    /// <summary>The tenant's networks by name, each with the addresses its VMs hold.</summary>
    public sealed record ListNetworks(TenantId Tenant) : ILedgerQuery;
}

public static class NetworkReplies
{
    /// <summary>To CreateNetwork: the network as recorded, with its VNI.</summary>
    public sealed record NetworkCreated(NetworkRecord Network) : IOrchestratorMessage;

    public sealed record NetworkView(NetworkRecord Network, int Addresses);

    public sealed record NetworkList(IReadOnlyList<NetworkView> Networks) : IOrchestratorMessage;

    public static NetworkList List(LedgerState state, TenantId tenant) =>
        new(state.NetworksOf(tenant).Select(n => new NetworkView(n, state.LeasesOf(n.Id).Addresses.Count)).ToList());
}
