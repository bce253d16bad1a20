// Commands and events of steerable placement: host labels and server groups.
using Orchestrator.Domain.Placement;

namespace Orchestrator.Domain.Ledger;

/// <summary>A placement command; <see cref="LedgerState"/> decides these in LedgerState.Placement.cs.</summary>
public interface IPlacementCommand : ILedgerCommand
{
}

/// <summary>A placement event; applied in LedgerState.Placement.cs.</summary>
public interface IPlacementEvent : ILedgerEvent
{
}

public static class PlacementCommands
{
    /// <summary>
    /// An admin sets and removes labels of a known host (any state). VMs already running there stay, whatever their
    /// selectors say; VMs waiting for such a host are placed.
    /// </summary>
    public sealed record SetHostLabels(HostId HostId, IReadOnlyDictionary<string, string> Set, IReadOnlyList<string> Remove) : IPlacementCommand;

    /// <summary>Allowed for a known tenant and a new, valid group name.</summary>
    public sealed record CreateGroup(TenantId Tenant, string Name, GroupPolicy Policy) : IPlacementCommand;

    /// <summary>Allowed for the tenant's own group once it has no members.</summary>
    public sealed record DeleteGroup(TenantId Tenant, string Name) : IPlacementCommand;

    /// <summary>From the scheduler: something outside the ledger changed (a host is reachable again); place what waits.</summary>
    public sealed record PlacePending : IPlacementCommand;
}

public static class PlacementEvents
{
    /// <summary>The host's labels are now these (all of them).</summary>
    public sealed record HostLabelsChanged(HostId HostId, IReadOnlyDictionary<string, string> Labels) : IPlacementEvent;

    public sealed record GroupCreated(TenantId Tenant, string Name, GroupPolicy Policy, DateTimeOffset At) : IPlacementEvent;

    public sealed record GroupDeleted(TenantId Tenant, string Name) : IPlacementEvent;
}
