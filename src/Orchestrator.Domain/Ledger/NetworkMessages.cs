namespace Orchestrator.Domain.Ledger;

/// <summary>Requests about tenant networks. Each says which states allow it.</summary>
public static class NetworkCommands
{
    /// <summary>
    /// Allowed for an existing, enabled tenant with fewer than <see cref="Orchestrator.Domain.Networks.NetworkRecord.MaxPerTenant"/> networks,
    /// a valid name it does not use yet and a valid CIDR (another tenant may use the same one).
    /// </summary>
    /// <param name="Gateway">the network's router (.1) is advertised as the guests' gateway.</param>
    public sealed record CreateNetwork(string Id, TenantId Tenant, string Name, string Cidr, bool Gateway = true) : ILedgerCommand;

    /// <summary>Allowed while no VM has a NIC on the network (VMs being deleted count until their host lets go).</summary>
    public sealed record DeleteNetwork(TenantId Tenant, string Name) : ILedgerCommand;
}

public static class NetworkEvents
{
    /// <summary>A network was created with the VXLAN id <paramref name="Vni"/>, unique in the cluster.</summary>
    public sealed record NetworkCreated(string Id, TenantId Tenant, string Name, string Cidr, bool Gateway, int Vni, DateTimeOffset At) : ILedgerEvent;

    public sealed record NetworkDeleted(string Id, TenantId Tenant) : ILedgerEvent;
}
