using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Shares;

/// <summary>What a host's storage does at most, as its operator configured it (orchestrator.storage.host-iops / host-bps); 0: unknown.</summary>
public sealed record HostDiskCapacity(long Iops, long Bps);

/// <summary>The throttle on one VM's disks (one QEMU throttle group for its disk and volumes); null: not throttled in that dimension.</summary>
public sealed record DiskThrottle(long? Iops, long? Bps)
{
    public static readonly DiskThrottle None = new(null, null);
}

/// <summary>The bounds of a VM's disk limits and share weight, as a tenant may set them.</summary>
public static class DiskLimits
{
    public const long MinIops = 10;
    public const long MaxIops = 10_000_000;

    /// <summary>64 KiB/s: below that one request of a guest's page cache takes seconds.</summary>
    public const long MinBps = 64 * 1024;

    public const long MaxBps = 1L << 40;
    public const int DefaultShares = 100;
    public const int MinShares = 1;
    public const int MaxShares = 10_000;

    public static IEnumerable<FieldError> Validate(long? iops, long? bps, int? shares)
    {
        if (iops is { } i && (i < MinIops || i > MaxIops))
        {
            yield return new FieldError("diskIops", $"must be between {MinIops} and {MaxIops} I/O operations per second, was {i}");
        }

        if (bps is { } b && (b < MinBps || b > MaxBps))
        {
            yield return new FieldError("diskBps", $"must be between {MinBps} ({MinBps / 1024} KiB/s) and {MaxBps} bytes per second, was {b}");
        }

        if (shares is { } s && (s < MinShares || s > MaxShares))
        {
            yield return new FieldError("diskShares", $"must be between {MinShares} and {MaxShares}, was {s}");
        }
    }
}

/// <summary>
/// A host's disk throughput divided among its running VMs. While the VMs' limits (an unlimited VM counts as the whole
/// host) add up to no more than the host's capacity, each VM is throttled at its own limit only. Beyond that, the capacity
/// is divided by share weight, a VM never getting more than its limit (what it leaves goes to the others, max-min fair).
/// Not work-conserving: the division counts every running VM as busy (QEMU's throttle is a cap, not a weight), so an
/// idle VM's part is left unused until the set of running VMs changes.
/// </summary>
public static class DiskShares
{
    public sealed record Member(VmId VmId, int Shares, long? IopsLimit, long? BpsLimit);

    public static Member From(VmId vmId, VmResources resources) =>
        new(vmId, resources.DiskShares ?? DiskLimits.DefaultShares, resources.DiskIops, resources.DiskBps);

    /// <summary>Each VM's throttle: its limit, or its share of the capacity when the limits together exceed it.</summary>
    public static IReadOnlyDictionary<VmId, DiskThrottle> Divide(HostDiskCapacity capacity, IReadOnlyList<Member> vms)
    {
        var iops = DivideOne(capacity.Iops, vms, v => v.IopsLimit);
        var bps = DivideOne(capacity.Bps, vms, v => v.BpsLimit);
        return vms.ToDictionary(v => v.VmId, v => new DiskThrottle(iops[v.VmId], bps[v.VmId]));
    }

    private static Dictionary<VmId, long?> DivideOne(long capacity, IReadOnlyList<Member> vms, Func<Member, long?> limitOf)
    {
        var result = vms.ToDictionary(v => v.VmId, limitOf);
        if (capacity <= 0 || vms.Sum(v => (decimal)(limitOf(v) ?? capacity)) <= capacity)
        {
            return result; // no contention (or no capacity known): limits only
        }

        var open = vms.Where(v => v.Shares > 0).ToList();
        decimal remaining = capacity;
        while (open.Count > 0)
        {
            var weights = (decimal)open.Sum(v => v.Shares);
            var capped = open.Where(v => limitOf(v) is { } limit && limit <= remaining * v.Shares / weights).ToList();
            if (capped.Count == 0)
            {
                break;
            }

            foreach (var vm in capped)
            {
                remaining -= limitOf(vm)!.Value;
                open.Remove(vm);
            }
        }

        var openWeights = (decimal)open.Sum(v => v.Shares);
        foreach (var vm in open)
        {
            // At least 1: QEMU reads 0 as "no limit".
            result[vm.VmId] = Math.Max(1, (long)Math.Floor(remaining * vm.Shares / openWeights));
        }

        return result;
    }
}
