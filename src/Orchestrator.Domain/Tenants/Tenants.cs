using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tenants;

/// <summary>What a key may do: admins act for any tenant; members change their tenant's things; read-only keys look.</summary>
public enum KeyRole
{
    Admin,
    Member,
    ReadOnly,
}

public static class KeyRoles
{
    public static string ToWire(this KeyRole role) => role switch
    {
        KeyRole.Admin => "admin",
        KeyRole.Member => "member",
        KeyRole.ReadOnly => "read-only",
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };

    public static bool TryParse(string? text, out KeyRole role)
    {
        switch (text)
        {
            case "admin": role = KeyRole.Admin; return true;
            case "member": role = KeyRole.Member; return true;
            case "read-only": role = KeyRole.ReadOnly; return true;
            default: role = default; return false;
        }
    }
}

/// <summary>A tenant's limits, OpenStack-style; null = unlimited.</summary>
/// <param name="MaxStorageGiB">GiB of VM disks, volumes, snapshots and private imported images together (issue 18).</param>
/// <param name="MaxAddresses">addresses on the tenant's networks, one per NIC of its VMs.</param>
/// <param name="ForwardPorts">the host ports (a range, "20000-20099") its port forwards may use; null: none granted.</param>
public sealed record TenantQuota(int? MaxVms = null, int? MaxVcpus = null, long? MaxMemoryMiB = null, long? MaxStorageGiB = null,
    int? MaxSnapshots = null, int? MaxVolumes = null, int? MaxNetworks = null, int? MaxAddresses = null, string? ForwardPorts = null)
{
    public static readonly TenantQuota Unlimited = new();

    public IEnumerable<FieldError> Validate()
    {
        if (MaxVms is < 0)
        {
            yield return new FieldError("quota.vms", $"must be 0 or more, was {MaxVms}");
        }

        if (MaxVcpus is < 0)
        {
            yield return new FieldError("quota.vcpus", $"must be 0 or more, was {MaxVcpus}");
        }

        if (MaxMemoryMiB is < 0)
        {
            yield return new FieldError("quota.memoryMiB", $"must be 0 or more, was {MaxMemoryMiB}");
        }

        if (MaxStorageGiB is < 0)
        {
            yield return new FieldError("quota.storageGiB", $"must be 0 or more, was {MaxStorageGiB}");
        }

        if (MaxSnapshots is < 0)
        {
            yield return new FieldError("quota.snapshots", $"must be 0 or more, was {MaxSnapshots}");
        }

        if (MaxVolumes is < 0)
        {
            yield return new FieldError("quota.volumes", $"must be 0 or more, was {MaxVolumes}");
        }

        if (MaxNetworks is < 0)
        {
            yield return new FieldError("quota.networks", $"must be 0 or more, was {MaxNetworks}");
        }

        if (MaxAddresses is < 0)
        {
            yield return new FieldError("quota.addresses", $"must be 0 or more, was {MaxAddresses}");
        }

        if (ForwardPorts is not null && !Networks.PortRange.TryParse(ForwardPorts, out _, out var problem))
        {
            yield return new FieldError("quota.forwardPorts", problem);
        }
    }

    /// <summary>Why <paramref name="usedGiB"/> plus <paramref name="moreGiB"/> would exceed the storage quota; null when it fits.</summary>
    public FieldError? StorageExceeded(long usedGiB, long moreGiB, string field) =>
        MaxStorageGiB is { } max && usedGiB + moreGiB > max
            ? new FieldError(field, $"quota exceeded: {usedGiB} of {max} GiB of storage in use, {moreGiB} more asked")
            : null;

    /// <summary>Why one more snapshot beside the tenant's <paramref name="count"/> would exceed the quota; null when it fits.</summary>
    public FieldError? SnapshotsExceeded(int count) => CountExceeded(MaxSnapshots, count, 1, "name", "snapshots");

    /// <summary>Why one more volume beside the tenant's <paramref name="count"/> would exceed the quota; null when it fits.</summary>
    public FieldError? VolumesExceeded(int count) => CountExceeded(MaxVolumes, count, 1, "name", "volumes");

    /// <summary>Why one more network beside the tenant's <paramref name="count"/> would exceed the quota; null when it fits.</summary>
    public FieldError? NetworksExceeded(int count) => CountExceeded(MaxNetworks, count, 1, "name", "networks");

    /// <summary>Why <paramref name="more"/> addresses beside the tenant's <paramref name="count"/> would exceed the quota; null when they fit.</summary>
    public FieldError? AddressesExceeded(int count, int more) => CountExceeded(MaxAddresses, count, more, "nics", "addresses");

    private static FieldError? CountExceeded(int? max, int count, int more, string field, string things) =>
        max is { } most && count + more > most
            ? new FieldError(field, $"quota exceeded: {count} of {most} {things} in use" + (more > 1 ? $", {more} more asked" : ""))
            : null;

    /// <summary>Why <paramref name="usage"/> plus one more VM of this size would exceed the quota; null when it fits.</summary>
    public FieldError? Exceeded(TenantUsage usage, int vcpus, long memoryMiB)
    {
        if (MaxVms is { } vms && usage.Vms + 1 > vms)
        {
            return new FieldError("name", $"quota exceeded: {usage.Vms} of {vms} VMs in use");
        }

        if (MaxVcpus is { } maxVcpus && usage.Vcpus + vcpus > maxVcpus)
        {
            return new FieldError("vcpus", $"quota exceeded: {usage.Vcpus} of {maxVcpus} vCPUs in use, {vcpus} more asked");
        }

        if (MaxMemoryMiB is { } maxMemory && usage.MemoryMiB + memoryMiB > maxMemory)
        {
            return new FieldError("memoryMiB", $"quota exceeded: {usage.MemoryMiB} of {maxMemory} MiB in use, {memoryMiB} more asked");
        }

        return null;
    }
}

/// <summary>What a tenant's VMs take (every VM from request to release, running or not).</summary>
public sealed record TenantUsage(int Vms, int Vcpus, long MemoryMiB)
{
    public static readonly TenantUsage None = new(0, 0, 0);

    public TenantUsage Add(int vms, int vcpus, long memoryMiB) => new(Vms + vms, Vcpus + vcpus, MemoryMiB + memoryMiB);
}

/// <summary>How many of the things with a count quota a tenant has (VMs are in <see cref="TenantUsage"/>).</summary>
public sealed record TenantCounts(int Snapshots, int Volumes, int Networks, int Addresses)
{
    public static readonly TenantCounts None = new(0, 0, 0, 0);
}

/// <param name="Pool">how the tenant's VMs on each host weigh, together, against other tenants' (null: by their own shares).</param>
public sealed record TenantRecord(TenantId Id, TenantQuota Quota, bool Disabled, DateTimeOffset CreatedAt, TenantCpuPool? Pool = null);

/// <summary>
/// A tenant's resource pool on each host, vSphere style: the tenant's VMs there share what the pool gets. Shares weigh
/// the pool against other tenants' (null: the sum of its VMs' shares); the reservation is guaranteed to the pool as a
/// whole, the limit caps it (millicores per host).
/// </summary>
public sealed record TenantCpuPool(int? Shares = null, int ReservationMillicores = 0, int? LimitMillicores = null)
{
    public IEnumerable<FieldError> Validate()
    {
        if (Shares is { } shares && (shares < VmResources.MinShares || shares > VmResources.MaxShares))
        {
            yield return new FieldError("pool.cpuShares", $"must be between {VmResources.MinShares} and {VmResources.MaxShares}, was {shares}");
        }

        if (ReservationMillicores < 0)
        {
            yield return new FieldError("pool.cpuReservationMillicores", $"must be 0 or more, was {ReservationMillicores}");
        }

        if (LimitMillicores is { } limit && (limit < VmResources.MinCpuLimitMillicores || limit < ReservationMillicores))
        {
            yield return new FieldError("pool.cpuLimitMillicores",
                $"must be at least {VmResources.MinCpuLimitMillicores} and at least the reservation ({ReservationMillicores}), was {limit}");
        }
    }
}

/// <summary>
/// An API key as the ledger keeps it: its public id, whose it is, and a SHA-256 of its secret (keys are 256-bit
/// random, so a fast hash suffices). The secret itself is shown once, when issued, and kept nowhere.
/// </summary>
public sealed record ApiKeyRecord(
    string KeyId, TenantId Tenant, KeyRole Role, string SecretHash, string? Name, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt)
{
    public bool IsRevoked => RevokedAt is not null;
}
