using System.Globalization;

namespace Orchestrator.Domain.Vms;

/// <summary>
/// How a VM shares its host, vSphere style. CPU in millicores (1000 = one physical CPU). Shares weigh VMs against
/// each other only under contention; a reservation is guaranteed (admission refuses a VM whose reservation does not
/// fit); a limit is a hard cap even on an idle host. Memory: the reservation must fit in the host's physical memory;
/// the limit caps the VM's whole process (guest RAM plus the emulator's own), so it is at least the guest's memory.
/// </summary>
public sealed record VmResources(
    int? CpuShares = null,
    int CpuReservationMillicores = 0,
    int? CpuLimitMillicores = null,
    int MemoryReservationMiB = 0,
    int? MemoryLimitMiB = null,
    string? Cpuset = null)
{
    public static readonly VmResources Default = new();

    /// <summary>Default shares per vCPU: cgroup v1's default weight, so one VM with one vCPU weighs like one process.</summary>
    public const int SharesPerVcpu = 1024;

    public const int MinShares = 2;
    public const int MaxShares = 262144;

    /// <summary>The smallest CPU limit: a 1 ms CFS quota per 100 ms period.</summary>
    public const int MinCpuLimitMillicores = 10;

    public int SharesFor(int vcpus) => CpuShares ?? SharesPerVcpu * Math.Max(1, vcpus);

    /// <summary>The hard cap in millicores: the limit, or what the vCPUs can use at most.</summary>
    public int CpuCapFor(int vcpus) => Math.Min(CpuLimitMillicores ?? int.MaxValue, 1000 * Math.Max(1, vcpus));

    public IReadOnlyList<FieldError> Validate(int vcpus, int memoryMiB)
    {
        var errors = new List<FieldError>();
        var cpuCap = 1000 * Math.Max(1, vcpus);
        if (CpuShares is { } shares && (shares < MinShares || shares > MaxShares))
        {
            errors.Add(new FieldError("cpuShares", $"must be between {MinShares} and {MaxShares}, was {shares}"));
        }

        if (CpuReservationMillicores < 0 || CpuReservationMillicores > cpuCap)
        {
            errors.Add(new FieldError("cpuReservationMillicores",
                $"must be between 0 and {cpuCap} ({vcpus} vCPUs), was {CpuReservationMillicores}"));
        }

        if (CpuLimitMillicores is { } limit)
        {
            if (limit < MinCpuLimitMillicores || limit > cpuCap)
            {
                errors.Add(new FieldError("cpuLimitMillicores",
                    $"must be between {MinCpuLimitMillicores} and {cpuCap} ({vcpus} vCPUs), was {limit}"));
            }
            else if (limit < CpuReservationMillicores)
            {
                errors.Add(new FieldError("cpuLimitMillicores",
                    $"must be at least the reservation ({CpuReservationMillicores}), was {limit}"));
            }
        }

        if (MemoryReservationMiB < 0 || MemoryReservationMiB > memoryMiB)
        {
            errors.Add(new FieldError("memoryReservationMiB", $"must be between 0 and the VM's memory ({memoryMiB} MiB), was {MemoryReservationMiB}"));
        }

        if (MemoryLimitMiB is { } memoryLimit && (memoryLimit < memoryMiB || memoryLimit > 16 * 1024 * 1024))
        {
            errors.Add(new FieldError("memoryLimitMiB",
                $"caps the whole VM process, so it must be at least the VM's memory ({memoryMiB} MiB), was {memoryLimit}"));
        }

        if (Cpuset is not null && !CpuSet.TryParse(Cpuset, out _, out var cpusetError))
        {
            errors.Add(new FieldError("cpuset", cpusetError!));
        }

        return errors;
    }
}

/// <summary>A Linux CPU list ("0-3,6"): which host CPUs a VM's vCPUs may run on.</summary>
public static class CpuSet
{
    public const int MaxCpu = 4095;

    public static bool TryParse(string? text, out IReadOnlyList<int> cpus, out string? error)
    {
        cpus = [];
        error = null;
        if (string.IsNullOrEmpty(text) || text.Length > 256)
        {
            error = "must be a CPU list such as 0-3,6";
            return false;
        }

        var set = new SortedSet<int>();
        foreach (var part in text.Split(','))
        {
            var bounds = part.Split('-');
            if (bounds.Length is < 1 or > 2
                || !int.TryParse(bounds[0], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
                || !int.TryParse(bounds[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var last))
            {
                error = $"must be a CPU list such as 0-3,6; '{Shorten(part)}' is not a CPU number or range";
                return false;
            }

            if (first > last || last > MaxCpu)
            {
                error = $"range '{Shorten(part)}' must go upwards and stay within 0-{MaxCpu}";
                return false;
            }

            for (var cpu = first; cpu <= last; cpu++)
            {
                set.Add(cpu);
            }
        }

        cpus = [.. set];
        return true;
    }

    public static IReadOnlyList<int> Parse(string text) =>
        TryParse(text, out var cpus, out var error) ? cpus : throw new FormatException($"cpuset '{Shorten(text)}' {error}");

    /// <summary>The canonical form: ascending, runs collapsed ("0-2,5").</summary>
    public static string Format(IEnumerable<int> cpus)
    {
        var sorted = cpus.Distinct().Order().ToList();
        var parts = new List<string>();
        for (var i = 0; i < sorted.Count;)
        {
            var j = i;
            while (j + 1 < sorted.Count && sorted[j + 1] == sorted[j] + 1)
            {
                j++;
            }

            parts.Add(i == j
                ? sorted[i].ToString(CultureInfo.InvariantCulture)
                : string.Create(CultureInfo.InvariantCulture, $"{sorted[i]}-{sorted[j]}"));
            i = j + 1;
        }

        return string.Join(',', parts);
    }

    private static string Shorten(string text) => text.Length > 16 ? text[..16] + "…" : text;
}
