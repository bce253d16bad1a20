using Orchestrator.Domain.Vms;

namespace Orchestrator.Hypervisor.Cgroups;

/// <summary>
/// What to enforce on one VM. <see cref="CpuWeight"/> is in cgroup-v1 cpu.shares units (2..262144, 1024 the
/// default), converted for cgroup v2. <see cref="CpuQuotaMillicores"/> caps CPU time per 100 ms period
/// (null: no cap). Memory limit and reservation are bytes (null: none). <see cref="Cpuset"/> is a cpu list
/// like "0-2,5"; null inherits the scope's.
/// </summary>
public sealed record CgroupLimits(int CpuWeight, int? CpuQuotaMillicores, long? MemoryLimitBytes, long? MemoryReservationBytes, string? Cpuset)
{
    public const int MinCpuWeight = 2;
    public const int MaxCpuWeight = 262144;
    public const int DefaultCpuWeight = 1024;

    /// <summary>The kernel refuses a cfs quota under 1 ms, i.e. 10 millicores of a 100 ms period.</summary>
    public const int MinCpuQuotaMillicores = 10;

    public const int MaxCpuQuotaMillicores = (CpuSet.MaxCpu + 1) * 1000;

    /// <summary>cfs_period_us and the period in cpu.max.</summary>
    public const int CpuPeriodMicroseconds = 100_000;

    /// <summary>The cpu.weight (1..10000) of cpu.shares, with systemd's conversion.</summary>
    public static int ToCpuWeightV2(int shares)
    {
        ValidateCpuWeight(shares, nameof(shares));
        return (int)(1 + ((long)shares - MinCpuWeight) * 9999 / (MaxCpuWeight - MinCpuWeight));
    }

    /// <summary>cfs quota in µs per <see cref="CpuPeriodMicroseconds"/>.</summary>
    public static long ToQuotaMicroseconds(int millicores) => (long)millicores * CpuPeriodMicroseconds / 1000;

    internal static void ValidateCpuWeight(int weight, string name)
    {
        if (weight is < MinCpuWeight or > MaxCpuWeight)
        {
            throw new ArgumentOutOfRangeException(name, weight, $"a cpu weight is {MinCpuWeight}..{MaxCpuWeight} (cpu.shares units)");
        }
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field; returns the parsed cpuset.</summary>
    internal IReadOnlyList<int>? Validate()
    {
        ValidateCpuWeight(CpuWeight, nameof(CpuWeight));
        if (CpuQuotaMillicores is < MinCpuQuotaMillicores or > MaxCpuQuotaMillicores)
        {
            throw new ArgumentOutOfRangeException(nameof(CpuQuotaMillicores), CpuQuotaMillicores,
                $"a cpu quota is {MinCpuQuotaMillicores}..{MaxCpuQuotaMillicores} millicores (the kernel's minimum is 1 ms per period)");
        }

        if (MemoryLimitBytes is <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MemoryLimitBytes), MemoryLimitBytes, "a memory limit is positive");
        }

        if (MemoryReservationBytes is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MemoryReservationBytes), MemoryReservationBytes, "a memory reservation is not negative");
        }

        if (Cpuset is null)
        {
            return null;
        }

        return CpuSet.TryParse(Cpuset, out var cpus, out var error)
            ? cpus
            : throw new ArgumentException(error, nameof(Cpuset));
    }
}
