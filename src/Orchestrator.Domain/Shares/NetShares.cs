using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Shares;

/// <summary>
/// What a host's network carries at most in each direction, in bytes per second of Ethernet frames, as its operator
/// configured it (orchestrator.network.host-bps); 0: unknown.
/// </summary>
public sealed record HostNetCapacity(long Bps);

/// <summary>
/// The bandwidth of one VM's NICs together, in each direction, in bytes per second of Ethernet frames: what it is
/// guaranteed under contention, and the most it may reach by borrowing what the others leave (its limit, or the host's capacity).
/// </summary>
public sealed record NetRate(long GuaranteedBps, long CeilingBps);

/// <summary>The bounds of a VM's network limit and share weight, as a tenant may set them.</summary>
public static class NetLimits
{
    /// <summary>64 KiB/s: below that a few full-size frames take a second, and TCP's timers start to misread the link.</summary>
    public const long MinBps = 64 * 1024;

    public const long MaxBps = 1L << 40;
    public const int DefaultShares = 100;
    public const int MinShares = 1;
    public const int MaxShares = 10_000;

    public static IEnumerable<FieldError> Validate(long? bps, int? shares)
    {
        if (bps is { } b && (b < MinBps || b > MaxBps))
        {
            yield return new FieldError("netBps", $"must be between {MinBps} ({MinBps / 1024} KiB/s) and {MaxBps} bytes per second, was {b}");
        }

        if (shares is { } s && (s < MinShares || s > MaxShares))
        {
            yield return new FieldError("netShares", $"must be between {MinShares} and {MaxShares}, was {s}");
        }
    }
}

/// <summary>
/// A host's network bandwidth divided among its running VMs, work-conserving: each VM is guaranteed its share of the
/// host's capacity by weight (max-min fair: a VM is never guaranteed more than its limit, and what it leaves goes to the
/// others), and may borrow up to its ceiling (its limit, else the whole host) what idle VMs leave, in proportion to its
/// guarantee (HTB's borrowing). With no capacity known, limits only: a limited VM is held at its limit, the others are
/// not shaped at all.
/// </summary>
public static class NetShares
{
    public sealed record Member(VmId VmId, int Shares, long? LimitBps);

    public static Member From(VmId vmId, VmResources resources) =>
        new(vmId, resources.NetShares ?? NetLimits.DefaultShares, resources.NetBps);

    /// <summary>Each VM's rates; a VM not in the result is not shaped (no capacity known and no limit of its own).</summary>
    public static IReadOnlyDictionary<VmId, NetRate> Divide(HostNetCapacity capacity, IReadOnlyList<Member> vms)
    {
        if (capacity.Bps <= 0)
        {
            return vms.Where(v => v.LimitBps is not null).ToDictionary(v => v.VmId, v => new NetRate(v.LimitBps!.Value, v.LimitBps.Value));
        }

        var guaranteed = new Dictionary<VmId, long>();
        var open = vms.ToList();
        decimal remaining = capacity.Bps;
        while (open.Count > 0)
        {
            var weights = (decimal)open.Sum(v => v.Shares);
            var capped = open.Where(v => v.LimitBps is { } limit && limit <= remaining * v.Shares / weights).ToList();
            if (capped.Count == 0)
            {
                break;
            }

            foreach (var vm in capped)
            {
                guaranteed[vm.VmId] = vm.LimitBps!.Value;
                remaining -= vm.LimitBps.Value;
                open.Remove(vm);
            }
        }

        var openWeights = (decimal)open.Sum(v => v.Shares);
        foreach (var vm in open)
        {
            // At least 1 byte/s: tc refuses a rate of 0.
            guaranteed[vm.VmId] = Math.Max(1, (long)Math.Floor(remaining * vm.Shares / openWeights));
        }

        return vms.ToDictionary(v => v.VmId, v =>
        {
            var ceiling = Math.Min(v.LimitBps ?? capacity.Bps, capacity.Bps);
            return new NetRate(Math.Min(guaranteed[v.VmId], ceiling), ceiling);
        });
    }
}
