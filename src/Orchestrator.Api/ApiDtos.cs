// From the ledger's records to the wire shapes of Orchestrator.Contracts, and from request bodies to Domain values:
// the mapping stays here, so Contracts knows nothing of the Domain.
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Contracts;
using Orchestrator.Domain.Apply;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Api;

public static class ApiDtos
{
    /// <summary>The resources a create request names; null when it names none (the VM gets the defaults).</summary>
    public static VmResources? ToResources(this CreateVmRequest request) =>
        request.CpuShares is null && request.CpuReservationMillicores is null && request.CpuLimitMillicores is null
        && request.MemoryReservationMiB is null && request.MemoryLimitMiB is null && request.Cpuset is null
        && request.DiskIops is null && request.DiskBps is null && request.DiskShares is null && request.NetBps is null && request.NetShares is null
            ? null
            : new VmResources(request.CpuShares, request.CpuReservationMillicores ?? 0, request.CpuLimitMillicores,
                request.MemoryReservationMiB ?? 0, request.MemoryLimitMiB, request.Cpuset, request.DiskIops, request.DiskBps, request.DiskShares,
                request.NetBps, request.NetShares);

    /// <param name="runtime">the host's live details, when it answered.</param>
    public static VmDto ToDto(this VmRecord vm, VmRuntime? runtime = null) => new(
        vm.Id.Compact,
        vm.Spec.Name,
        vm.Tenant.Value,
        vm.Spec.Vcpus,
        vm.Spec.MemoryMiB,
        vm.Spec.Image,
        vm.Spec.RestartPolicy.ToWire(),
        vm.Desired.ToString(),
        vm.Status.ToString(),
        vm.Reason,
        vm.Host?.Value,
        vm.Epoch.Value,
        vm.Pid,
        vm.Restarts,
        vm.CreatedAt,
        vm.ReadyAt,
        runtime?.Vcpus.Select(v => new VcpuDto(v.Index, v.ThreadId, Math.Round(v.CpuSeconds, 3))).ToList() ?? [],
        runtime?.ConsoleTail,
        ResourcesOf(vm, runtime),
        vm.Spec.EffectiveLabels,
        runtime?.Paused ?? false,
        vm.Spec.Driver,
        vm.Spec.Accelerator,
        BootstrapOf(vm.Spec),
        runtime?.Guest is { } guest ? new GuestDto(guest.Os, guest.Hostname, guest.Addresses) : null,
        new VmDiskDto(vm.Spec.EffectiveDiskGiB, vm.Disk?.Pool, vm.Disk?.Host?.Value),
        vm.Spec.HostSelector,
        vm.Spec.Group,
        vm.Spec.Nics?.Select(n => new NicDto(n.Network, n.Ip, n.Mac, n.SecurityGroups)).ToList());

    /// <summary>The bootstrap as it may be shown: fingerprints and a digest, never the user-data itself.</summary>
    public static VmBootstrapDto BootstrapOf(VmSpec spec)
    {
        var bootstrap = spec.Bootstrap ?? new VmBootstrap();
        var userData = bootstrap.UserDataBytes().Length;
        return new VmBootstrapDto(VmBootstrap.HostnameOf(spec), [.. bootstrap.EffectiveSshKeys.Select(VmBootstraps.Fingerprint)], userData,
            userData == 0 ? null : bootstrap.UserDataSha256());
    }

    private static VmResourcesDto ResourcesOf(VmRecord vm, VmRuntime? runtime)
    {
        var r = vm.Spec.EffectiveResources;
        return new VmResourcesDto(r.SharesFor(vm.Spec.Vcpus), r.CpuReservationMillicores, r.CpuLimitMillicores, r.MemoryReservationMiB,
            r.MemoryLimitMiB, r.Cpuset, vm.EntitledCpuMillicores, runtime?.UsedCpuMillicores, runtime?.DemandCpuMillicores,
            r.DiskIops, r.DiskBps, r.DiskShares ?? Domain.Shares.DiskLimits.DefaultShares, runtime?.DiskThrottle?.Iops, runtime?.DiskThrottle?.Bps,
            r.NetBps, r.NetShares ?? Domain.Shares.NetLimits.DefaultShares, runtime?.Network?.GuaranteedBps, runtime?.Network?.CeilingBps);
    }

    public static HostDto ToDto(this HostRecord h) =>
        new(h.Id.Value, h.State.ToString(), h.Driver, h.Cpus, h.MemoryMiB, h.AllocatedVcpus, h.AllocatedMemoryMiB, h.VmCount,
            h.ReservedCpuMillicores, h.ReservedMemoryMiB, h.Accelerator?.Kind, h.Accelerator?.CpuModel, h.Accelerator?.Note,
            [.. h.EffectivePools.Select(p => new StoragePoolDto(p.Id, p.Kind, p.CapacityGiB, p.Overcommit, p.Shared))], h.EffectiveLabels);

    /// <summary>The capacity of the hosts that are up, under the allocation ratios, and what HA admission control keeps free.</summary>
    public static CapacityDto CapacityOf(IReadOnlyList<HostRecord> hosts, PlacementPolicy policy)
    {
        var up = hosts.Where(h => h.State == HostState.Up).ToList();
        var headroom = Placement.Headroom(up, policy);
        return new CapacityDto(
            up.Count,
            up.Sum(h => (long)Placement.VcpuCapacity(h, policy)),
            up.Sum(h => (long)h.AllocatedVcpus),
            up.Sum(h => Placement.MemoryCapacity(h, policy)),
            up.Sum(h => h.AllocatedMemoryMiB),
            up.Sum(h => h.ReservedCpuMillicores),
            up.Sum(h => h.ReservedMemoryMiB),
            headroom.Hosts,
            headroom.NeededVcpus,
            headroom.NeededMemoryMiB,
            headroom.SpareVcpus,
            headroom.SpareMemoryMiB,
            headroom.Holds);
    }

    public static ImageDto ToDto(this GuestImage image) => new(image.Name, image.Description);

    public static TenantQuota ToQuota(this QuotaDto q) =>
        new(q.Vms, q.Vcpus, q.MemoryMiB, q.StorageGiB, q.Snapshots, q.Volumes, q.Networks, q.Addresses, q.ForwardPorts);

    public static QuotaDto ToDto(this TenantQuota q) =>
        new(q.MaxVms, q.MaxVcpus, q.MaxMemoryMiB, q.MaxStorageGiB, q.MaxSnapshots, q.MaxVolumes, q.MaxNetworks, q.MaxAddresses, q.ForwardPorts);

    public static TenantCpuPool ToPool(this PoolDto p) => new(p.CpuShares, p.CpuReservationMillicores ?? 0, p.CpuLimitMillicores);

    public static PoolDto? ToDto(this TenantCpuPool? p) => p is null ? null : new(p.Shares, p.ReservationMillicores, p.LimitMillicores);

    public static KeyDto ToDto(this ApiKeyRecord k) => new(k.KeyId, k.Tenant.Value, k.Role.ToWire(), k.Name, k.CreatedAt, k.RevokedAt);

    /// <param name="withKeys">list the tenant's keys (an admin asking for one tenant).</param>
    public static TenantDto ToDto(this SchedulerReplies.TenantFound found, bool withKeys) => new(
        found.Tenant!.Id.Value,
        found.Tenant.Disabled,
        found.Tenant.Quota.ToDto(),
        ToDto(found.Usage, found.StorageGiB, found.Counts ?? TenantCounts.None),
        withKeys ? found.Keys.Select(ToDto).ToList() : null,
        found.Tenant.Pool.ToDto());

    private static UsageDto ToDto(TenantUsage usage, long storageGiB, TenantCounts counts) =>
        new(usage.Vms, usage.Vcpus, usage.MemoryMiB, storageGiB, counts.Snapshots, counts.Volumes, counts.Networks, counts.Addresses);

    public static WebhookDto ToDto(this WebhookRecord w) => new(w.Id, w.Url, w.EventTypes, w.CreatedAt);

    public static RuleDto ToDto(this RuleRecord r) => new(r.Id, r.Name,
        r.OnEvent is null ? null : new RuleTriggerDto(r.OnEvent, r.Count, Durations.Format(r.Within)), r.Schedule,
        r.Action.ToString().ToLowerInvariant(), r.Selector, r.CreatedAt);

    public static ApplyStepDto ToDto(this ApplyStep step) => new(ActionName(step.Action), step.Vm, step.Detail);

    public static string ActionName(ApplyAction action) => action.ToString().ToLowerInvariant();

    public static ApplyResultDto ToDto(this ApplyPlan plan, bool dryRun) =>
        new(dryRun, plan.Steps.Select(ToDto).ToList(), plan.Changed);
}
