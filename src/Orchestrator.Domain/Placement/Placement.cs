using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Placement;

public enum PlacementStrategy
{
    /// <summary>Prefer the emptiest host (vSphere DRS, Nova's default weighers).</summary>
    Spread,

    /// <summary>Prefer the fullest host that fits, to keep others free.</summary>
    Pack,
}

/// <summary>How much may be promised per physical resource, and which hosts are preferred.</summary>
/// <param name="HaHeadroomHosts">
/// Keep enough room free to restart the VMs of this many of the fullest hosts elsewhere (vSphere HA admission
/// control); 0: none.
/// </param>
public sealed record PlacementPolicy(double CpuAllocationRatio, double MemoryAllocationRatio, PlacementStrategy Strategy,
    int HaHeadroomHosts = 0)
{
    public static readonly PlacementPolicy Default = new(4.0, 1.0, PlacementStrategy.Spread);
}

/// <summary>
/// What a VM needs from a host: vCPUs and memory against the overcommitted capacity, reservations against the physical,
/// the host's driver when the VM names one, and its accelerator ("kvm": hardware) when the VM asks for one (null: any).
/// </summary>
/// <param name="Selector">terms on the host's labels that must all hold (null: any host).</param>
public sealed record ResourceRequest(int Vcpus, long MemoryMiB, long CpuReservationMillicores = 0, long MemoryReservationMiB = 0,
    string? Driver = null, string? Accelerator = null, IReadOnlyList<HostSelectorTerm>? Selector = null)
{
    public bool HasReservation => CpuReservationMillicores > 0 || MemoryReservationMiB > 0;

    public static ResourceRequest For(Vms.VmSpec spec)
    {
        var resources = spec.EffectiveResources;
        var selector = HostSelectors.Of(spec);
        return new ResourceRequest(spec.Vcpus, spec.MemoryMiB, resources.CpuReservationMillicores, resources.MemoryReservationMiB, spec.Driver,
            spec.Accelerator, selector.Count == 0 ? null : selector);
    }

    public bool Accepts(HostRecord host) =>
        (Driver is null || host.Driver == Driver) && (Accelerator is null || host.Accelerator?.Kind == Accelerator)
        && (Selector is null || HostSelectors.Hold(Selector, host.EffectiveLabels));
}

/// <summary>Filters then weighers, Nova style, with a deterministic tie-break on the host id.</summary>
public static class Placement
{
    public static bool Fits(HostRecord host, ResourceRequest request, PlacementPolicy policy) =>
        host.State == HostState.Up
        && request.Accepts(host)
        && host.AllocatedVcpus + request.Vcpus <= VcpuCapacity(host, policy)
        && host.AllocatedMemoryMiB + request.MemoryMiB <= MemoryCapacity(host, policy)
        && host.ReservedCpuMillicores + request.CpuReservationMillicores <= host.CpuMillicores
        && host.ReservedMemoryMiB + request.MemoryReservationMiB <= host.MemoryMiB;

    public static int VcpuCapacity(HostRecord host, PlacementPolicy policy) => VcpuCapacity(host.Cpus, policy);

    public static int VcpuCapacity(int cpus, PlacementPolicy policy) => (int)Math.Floor(cpus * policy.CpuAllocationRatio);

    public static long MemoryCapacity(HostRecord host, PlacementPolicy policy) => MemoryCapacity(host.MemoryMiB, policy);

    public static long MemoryCapacity(long memoryMiB, PlacementPolicy policy) => (long)Math.Floor(memoryMiB * policy.MemoryAllocationRatio);

    /// <summary>The best host for the request, or null when none passes the filters.</summary>
    public static HostRecord? ChooseHost(IEnumerable<HostRecord> hosts, ResourceRequest request, PlacementPolicy policy)
    {
        HostRecord? best = null;
        foreach (var host in hosts)
        {
            if (Fits(host, request, policy) && (best is null || Compare(host, best, request, policy) > 0))
            {
                best = host;
            }
        }

        return best;
    }

    /// <summary>
    /// Positive when <paramref name="a"/> is the better host for the request: the greater <see cref="Weigh"/>,
    /// computed exactly (in integers, so equal weights are equal whatever the rounding), then the lesser ordinal id.
    /// </summary>
    public static int Compare(HostRecord a, HostRecord b, ResourceRequest request, PlacementPolicy policy)
    {
        var (numeratorA, denominatorA) = ExactFree(a, request, policy);
        var (numeratorB, denominatorB) = ExactFree(b, request, policy);
        var c = (numeratorA * denominatorB).CompareTo(numeratorB * denominatorA);
        if (policy.Strategy == PlacementStrategy.Pack)
        {
            c = -c;
        }

        return c != 0 ? c : string.CompareOrdinal(b.Id.Value, a.Id.Value);
    }

    /// <summary>Free vCPU fraction + free memory fraction after placing the request, as a fraction of integers.</summary>
    private static (Int128 Numerator, Int128 Denominator) ExactFree(HostRecord host, ResourceRequest request, PlacementPolicy policy)
    {
        var cpuCapacity = VcpuCapacity(host, policy);
        var memoryCapacity = MemoryCapacity(host, policy);
        Int128 cpuDivisor = Math.Max(1, cpuCapacity);
        Int128 memoryDivisor = Math.Max(1, memoryCapacity);
        var freeCpu = (Int128)cpuCapacity - host.AllocatedVcpus - request.Vcpus;
        var freeMemory = (Int128)memoryCapacity - host.AllocatedMemoryMiB - request.MemoryMiB;
        return (freeCpu * memoryDivisor + freeMemory * cpuDivisor, cpuDivisor * memoryDivisor);
    }

    /// <summary>Higher is better. The mean free fraction of vCPUs and memory after placing the request.</summary>
    public static double Weigh(HostRecord host, ResourceRequest request, PlacementPolicy policy)
    {
        var cpuCapacity = Math.Max(1, VcpuCapacity(host, policy));
        var memoryCapacity = Math.Max(1, MemoryCapacity(host, policy));
        var freeCpu = (cpuCapacity - host.AllocatedVcpus - request.Vcpus) / (double)cpuCapacity;
        var freeMemory = (memoryCapacity - host.AllocatedMemoryMiB - request.MemoryMiB) / (double)memoryCapacity;
        var free = (freeCpu + freeMemory) / 2;
        return policy.Strategy == PlacementStrategy.Spread ? free : -free;
    }

    /// <summary>
    /// What HA admission control keeps free: the allocations of the <see cref="PlacementPolicy.HaHeadroomHosts"/> fullest
    /// Up hosts (by vCPUs and by memory, each on its own), against what the other Up hosts have free.
    /// </summary>
    public static HaHeadroom Headroom(IEnumerable<HostRecord> hosts, PlacementPolicy policy)
    {
        var up = hosts.Where(h => h.State == HostState.Up).ToList();
        var n = Math.Min(policy.HaHeadroomHosts, up.Count);
        var byVcpus = up.OrderByDescending(h => h.AllocatedVcpus).ThenBy(h => h.Id.Value, StringComparer.Ordinal).ToList();
        var byMemory = up.OrderByDescending(h => h.AllocatedMemoryMiB).ThenBy(h => h.Id.Value, StringComparer.Ordinal).ToList();
        return new HaHeadroom(
            policy.HaHeadroomHosts,
            byVcpus.Take(n).Sum(h => (long)h.AllocatedVcpus),
            byMemory.Take(n).Sum(h => h.AllocatedMemoryMiB),
            byVcpus.Skip(n).Sum(h => (long)VcpuCapacity(h, policy) - h.AllocatedVcpus),
            byMemory.Skip(n).Sum(h => MemoryCapacity(h, policy) - h.AllocatedMemoryMiB));
    }

    /// <summary>Whether placing the request on <paramref name="host"/> keeps the HA headroom (always true without one).</summary>
    public static bool KeepsHeadroom(IEnumerable<HostRecord> hosts, HostRecord host, ResourceRequest request, PlacementPolicy policy)
    {
        if (policy.HaHeadroomHosts <= 0)
        {
            return true;
        }

        var after = hosts.Select(h => h.Id == host.Id
            ? h with { AllocatedVcpus = h.AllocatedVcpus + request.Vcpus, AllocatedMemoryMiB = h.AllocatedMemoryMiB + request.MemoryMiB }
            : h);
        return Headroom(after, policy).Holds;
    }

    /// <summary>Why nothing fits, in words an operator can act on.</summary>
    public static string ExplainNoFit(IReadOnlyCollection<HostRecord> hosts, ResourceRequest request, PlacementPolicy policy)
    {
        if (hosts.Count == 0)
        {
            return "no host is registered";
        }

        var up = hosts.Count(h => h.State == HostState.Up);
        if (up == 0)
        {
            return $"none of the {hosts.Count} hosts is up";
        }

        if (request.Accelerator is { } accelerator)
        {
            var accelerated = hosts.Where(h => h.State == HostState.Up && h.Accelerator?.Kind == accelerator).ToList();
            if (accelerated.Count == 0)
            {
                // Say why the hosts have none: the fallback's reason is what an operator fixes.
                var others = hosts.Where(h => h.State == HostState.Up)
                    .Select(h => h.Accelerator is { } a ? $"{h.Id} runs {a.Kind}{(a.Note.Length == 0 ? "" : $" ({a.Note})")}" : $"{h.Id} did not say")
                    .Order(StringComparer.Ordinal).Take(3).ToList();
                return $"no up host has {accelerator} acceleration ({up} hosts up: {string.Join("; ", others)}{(up > 3 ? "; …" : "")})";
            }

            if (request.Driver is null)
            {
                return $"no host has room for {request.Vcpus} vCPUs and {request.MemoryMiB} MiB on the {accelerated.Count} up host(s) " +
                       $"with {accelerator} acceleration (allocation ratios cpu {policy.CpuAllocationRatio}, memory {policy.MemoryAllocationRatio})";
            }
        }

        if (request.Driver is { } driver)
        {
            var withDriver = hosts.Count(h => h.State == HostState.Up && h.Driver == driver);
            if (withDriver == 0)
            {
                var drivers = hosts.Where(h => h.State == HostState.Up).Select(h => h.Driver).Distinct().Order(StringComparer.Ordinal);
                return $"no up host runs the {driver} driver ({up} hosts up, running {string.Join(", ", drivers)})";
            }

            var on = $" on the {withDriver} up host(s) that run the {driver} driver";
            return $"no host has room for {request.Vcpus} vCPUs and {request.MemoryMiB} MiB{on}" +
                   (request.HasReservation
                       ? $" with {request.CpuReservationMillicores} millicores and {request.MemoryReservationMiB} MiB reserved"
                       : $" (allocation ratios cpu {policy.CpuAllocationRatio}, memory {policy.MemoryAllocationRatio})");
        }

        if (request.HasReservation)
        {
            return $"no host has room for {request.Vcpus} vCPUs and {request.MemoryMiB} MiB with " +
                   $"{request.CpuReservationMillicores} millicores and {request.MemoryReservationMiB} MiB reserved " +
                   $"({up} hosts up; reservations are promised against physical CPUs and memory, never overcommitted)";
        }

        return NoRoom(request, policy, up);
    }

    /// <summary>Why no host took a plain request (no driver, accelerator or reservation) when <paramref name="up"/> hosts are up.</summary>
    public static string NoRoom(ResourceRequest request, PlacementPolicy policy, int up) =>
        $"no host has room for {request.Vcpus} vCPUs and {request.MemoryMiB} MiB " +
        $"({up} hosts up, allocation ratios cpu {policy.CpuAllocationRatio}, memory {policy.MemoryAllocationRatio})";
}

/// <summary>HA admission control's figures: what the fullest hosts hold, and what the others could take in.</summary>
public sealed record HaHeadroom(int Hosts, long NeededVcpus, long NeededMemoryMiB, long SpareVcpus, long SpareMemoryMiB)
{
    public bool Holds => NeededVcpus <= SpareVcpus && NeededMemoryMiB <= SpareMemoryMiB;
}
