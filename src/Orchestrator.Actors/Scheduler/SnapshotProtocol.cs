using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Storage;

namespace Orchestrator.Actors.Scheduler;

public static class SnapshotQueries
{
    /// <summary>The tenant's snapshots, each with the name of its VM; only those of VM <paramref name="Vm"/> when given.</summary>
    public sealed record ListSnapshots(TenantId Tenant, string? Vm = null) : ILedgerQuery;
}

public static class SnapshotReplies
{
    /// <param name="Vm">the name of the VM it is a snapshot of.</param>
    public sealed record SnapshotView(SnapshotRecord Snapshot, string Vm);

    /// <summary>To a snapshot taken: the snapshot as it now stands (not yet <see cref="SnapshotRecord.Ready"/> on a running VM).</summary>
    public sealed record SnapshotAccepted(SnapshotView Snapshot) : IOrchestratorMessage;

    /// <param name="VmFound">false when a VM was named and the tenant has none of that name.</param>
    public sealed record SnapshotList(IReadOnlyList<SnapshotView> Snapshots, bool VmFound = true) : IOrchestratorMessage;

    public static SnapshotList List(LedgerState state, SnapshotQueries.ListSnapshots query)
    {
        var vm = query.Vm is { } name ? state.FindVm(query.Tenant, name) : null;
        return query.Vm is not null && vm is null
            ? new SnapshotList([], VmFound: false)
            : new(state.SnapshotsOf(query.Tenant).Where(s => vm is null || s.Vm == vm.Id)
                .Select(s => new SnapshotView(s, state.Vms.GetValueOrDefault(s.Vm)?.Spec.Name ?? "")).ToList());
    }

    /// <summary>The reply to a snapshot taken: the snapshot after it.</summary>
    public static IOrchestratorMessage Accepted(LedgerState after, TenantId tenant, string vm, string name) =>
        after.FindSnapshot(tenant, vm, name) is { } snapshot ? new SnapshotAccepted(new SnapshotView(snapshot, vm)) : SchedulerReplies.Done.Instance;
}
