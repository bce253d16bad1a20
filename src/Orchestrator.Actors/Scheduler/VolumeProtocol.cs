using Orchestrator.Actors.Serialization;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Storage;

namespace Orchestrator.Actors.Scheduler;

public static class VolumeQueries
{
    /// <summary>The tenant's volumes by name, each with the name of the VM it is attached to.</summary>
    public sealed record ListVolumes(TenantId Tenant) : ILedgerQuery;
}

public static class VolumeReplies
{
    /// <param name="AttachedTo">the name of the VM it is attached to; null when detached.</param>
    public sealed record VolumeView(VolumeRecord Volume, string? AttachedTo);

    /// <summary>To a create, resize, attach or detach: the volume as it now stands.</summary>
    public sealed record VolumeAccepted(VolumeView Volume) : IOrchestratorMessage;

    public sealed record VolumeList(IReadOnlyList<VolumeView> Volumes) : IOrchestratorMessage;

    public static VolumeList List(LedgerState state, TenantId tenant) => new(state.VolumesOf(tenant).Select(v => View(state, v)).ToList());

    /// <summary>The reply to an accepted volume command: the volume after it (Done when it is gone).</summary>
    public static IOrchestratorMessage Accepted(LedgerState after, TenantId tenant, string name) =>
        after.FindVolume(tenant, name) is { } volume ? new VolumeAccepted(View(after, volume)) : SchedulerReplies.Done.Instance;

    private static VolumeView View(LedgerState state, VolumeRecord volume) =>
        new(volume, volume.AttachedTo is { } vm ? state.Vms.GetValueOrDefault(vm)?.Spec.Name : null);
}
