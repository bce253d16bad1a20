using Orchestrator.Domain.Networks;

namespace Orchestrator.Domain.Ledger;

/// <summary>Requests about a tenant's port forwards. Each says which states allow it.</summary>
public static class ForwardCommands
{
    /// <summary>
    /// Allowed for a tenant's gateway network, its VM <paramref name="Vm"/> with a NIC on it, a host port in the tenant's
    /// granted range (<see cref="Tenants.TenantQuota.ForwardPorts"/>) that no forward of the cluster has for the protocol.
    /// </summary>
    public sealed record AddForward(string Id, TenantId Tenant, string Network, int HostPort, string Vm, int GuestPort, string Protocol) : ILedgerCommand;

    /// <summary>Allowed for a forward of the tenant's on that network.</summary>
    public sealed record RemoveForward(TenantId Tenant, string Network, string ForwardId) : ILedgerCommand;
}

public static class ForwardEvents
{
    public sealed record ForwardAdded(PortForwardRecord Forward) : ILedgerEvent;

    public sealed record ForwardRemoved(string Id, TenantId Tenant, VmId Vm) : ILedgerEvent;
}
