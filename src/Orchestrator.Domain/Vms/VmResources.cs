using System.Globalization;
using Orchestrator.Domain.Shares;

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
    string? Cpuset = null,
    long? DiskIops = null,
    long? DiskBps = null,
    int? DiskShares = null,
    long? NetBps = null,
    int? NetShares = null)
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

        errors.AddRange(DiskLimits.Validate(DiskIops, DiskBps, DiskShares));
        errors.AddRange(NetLimits.Validate(NetBps, NetShares));

        if (Cpuset is not null && Cpuset.Any(c => !char.IsAsciiDigit(c) && c is not (',' or '-')))
        {
            // CpuSet.TryParse forgives surrounding whitespace (operators' config); a tenant's spec is kept as given.
            errors.Add(new FieldError("cpuset", "must be CPU numbers and ranges such as \"0-3,6\": digits, ',' and '-' only"));
        }
        else if (Cpuset is not null && !CpuSet.TryParse(Cpuset, out _, out var cpusetError))
        {
            errors.Add(new FieldError("cpuset", cpusetError!));
        }

        return errors;
    }
}

/// <summary>
/// A merge patch of a VM's resources (RFC 7396's rule): the <see cref="Fields"/> it names take their value from
/// <see cref="Values"/> (a field reset to its default carries the default there), the others keep theirs. Applied by
/// the ledger to the VM's resources as they are when it decides, so two patches of different fields never lose one.
/// </summary>
public sealed record VmResourcesPatch(IReadOnlyList<string> Fields, VmResources Values)
{
    public const string CpuShares = "cpuShares";
    public const string CpuReservationMillicores = "cpuReservationMillicores";
    public const string CpuLimitMillicores = "cpuLimitMillicores";
    public const string MemoryReservationMiB = "memoryReservationMiB";
    public const string MemoryLimitMiB = "memoryLimitMiB";
    public const string Cpuset = "cpuset";
    public const string DiskIops = "diskIops";
    public const string DiskBps = "diskBps";
    public const string DiskShares = "diskShares";
    public const string NetBps = "netBps";
    public const string NetShares = "netShares";

    public static readonly IReadOnlyList<string> Known =
        [CpuShares, CpuReservationMillicores, CpuLimitMillicores, MemoryReservationMiB, MemoryLimitMiB, Cpuset, DiskIops, DiskBps, DiskShares, NetBps, NetShares];

    public VmResources ApplyTo(VmResources current)
    {
        var result = current;
        foreach (var field in Fields)
        {
            result = field switch
            {
                CpuShares => result with { CpuShares = Values.CpuShares },
                CpuReservationMillicores => result with { CpuReservationMillicores = Values.CpuReservationMillicores },
                CpuLimitMillicores => result with { CpuLimitMillicores = Values.CpuLimitMillicores },
                MemoryReservationMiB => result with { MemoryReservationMiB = Values.MemoryReservationMiB },
                MemoryLimitMiB => result with { MemoryLimitMiB = Values.MemoryLimitMiB },
                Cpuset => result with { Cpuset = Values.Cpuset },
                DiskIops => result with { DiskIops = Values.DiskIops },
                DiskBps => result with { DiskBps = Values.DiskBps },
                DiskShares => result with { DiskShares = Values.DiskShares },
                NetBps => result with { NetBps = Values.NetBps },
                NetShares => result with { NetShares = Values.NetShares },
                _ => throw new ArgumentException($"'{field}' is not a resource field (known: {string.Join(", ", Known)})", nameof(current)),
            };
        }

        return result;
    }
}
