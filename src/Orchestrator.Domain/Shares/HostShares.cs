using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Shares;

/// <summary>
/// A host's CPU divided among its VMs, each tenant's VMs forming one pool. Used twice with the same rules: by the
/// scheduler with measured demand (what each VM is entitled to now, shown and journaled), and by the host under full
/// contention (every VM burning), which is what it writes to the kernel as CPU weights: CFS is work-conserving, so an
/// idle VM's CPU flows to the busy ones anyway, and a VM that wakes up gets its due at once instead of after the next
/// recompute.
/// </summary>
public static class HostShares
{
    /// <summary>Weight written for a VM entitled to nothing (the kernel's minimum).</summary>
    public const int MinWeight = VmResources.MinShares;

    public sealed record Member(VmId VmId, TenantId Tenant, int Vcpus, VmResources Resources);

    /// <param name="pools">each tenant's pool settings (null: a pool weighing as much as its VMs' shares, no reservation or limit).</param>
    public static IReadOnlyDictionary<VmId, long> Divide(long capacityMillicores, IReadOnlyList<Member> vms,
        Func<VmId, long?>? demandMillicores = null, Func<TenantId, TenantCpuPool?>? pools = null)
    {
        var claims = vms
            .GroupBy(v => v.Tenant)
            .OrderBy(g => g.Key.Value, StringComparer.Ordinal)
            .Select(g => (Pool: pools?.Invoke(g.Key), Tenant: g.Key, Members: g.Select(v => Claim(v, demandMillicores?.Invoke(v.VmId))).ToList()))
            .Select(p => new PoolClaim(p.Tenant.Value, p.Pool?.Shares, p.Pool?.ReservationMillicores ?? 0, p.Pool?.LimitMillicores, p.Members))
            .ToList();
        var byId = vms.ToDictionary(v => v.VmId.Compact);
        return Entitlements.DivideInPools(capacityMillicores, claims)
            .ToDictionary(kv => byId[kv.Key].VmId, kv => kv.Value);
    }

    /// <summary>Every VM burning all its vCPUs: what the host writes as each VM's CPU weight.</summary>
    public static IReadOnlyDictionary<VmId, long> UnderContention(long capacityMillicores, IReadOnlyList<Member> vms,
        Func<TenantId, TenantCpuPool?>? pools = null) =>
        Divide(capacityMillicores, vms, null, pools);

    /// <summary>A CPU weight in cgroup v1 cpu.shares units: the full-contention entitlement in millicores.</summary>
    public static int Weight(long contentionMillicores) =>
        (int)Math.Clamp(contentionMillicores, MinWeight, VmResources.MaxShares);

    public static Member From(VmRecord vm) => new(vm.Id, vm.Tenant, vm.Spec.Vcpus, vm.Spec.EffectiveResources);

    private static CpuClaim Claim(Member vm, long? demand)
    {
        var cap = vm.Resources.CpuCapFor(vm.Vcpus);
        return new CpuClaim(vm.VmId.Compact, vm.Resources.SharesFor(vm.Vcpus), vm.Resources.CpuReservationMillicores, cap,
            Math.Clamp(demand ?? cap, 0, cap));
    }
}
