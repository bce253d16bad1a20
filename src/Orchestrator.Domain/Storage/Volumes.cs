// Volumes (issue 18): a tenant's disks that live apart from any VM, attached read-write to at most one at a time.
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Storage;

/// <summary>
/// A volume as the ledger keeps it. <see cref="Id"/> (32 hex digits) names its file and its QEMU devices, never the
/// tenant's <see cref="Name"/>. It lives in <see cref="Pool"/>, on <see cref="Host"/> when that pool is the host's own
/// (a VM it is attached to is pinned there), and is attached to <see cref="AttachedTo"/> when not null.
/// </summary>
public sealed record VolumeRecord(string Id, TenantId Tenant, string Name, int SizeGiB, string Pool, HostId? Host, VmId? AttachedTo,
    DateTimeOffset CreatedAt)
{
    public const int MaxPerTenant = 64;

    public const int MaxPerVm = 8;

    public PoolKey Key => new(Host, Pool);

    /// <summary>Whether <paramref name="id"/> is a volume id: the compact form of a GUID, so it is safe in a path and a QEMU argument.</summary>
    public static bool IsValidId(string? id) => id is { Length: 32 } && id.All(char.IsAsciiHexDigitLower);

    /// <summary>Where this volume's pool puts it, in words: "host h1's local pool 'p'" or "shared pool 'p'".</summary>
    public string Where => Host is { } host ? $"host {host}'s local pool '{Pool}'" : $"shared pool '{Pool}'";
}

/// <summary>What a host needs to open one volume: its id (file and device names), pool and size.</summary>
public sealed record VolumeAssignment(string Id, string Pool, int SizeGiB)
{
    /// <summary>QEMU's block node name: ids only, within QEMU's 31 characters.</summary>
    public string NodeName => NodePrefix + Id[..28];

    private const string NodePrefix = "vn";

    /// <summary>Whether a QEMU block node is a volume's (its name as <see cref="NodeName"/> makes them).</summary>
    public static bool IsNodeName(string name) =>
        name.Length == NodePrefix.Length + 28 && name.StartsWith(NodePrefix, StringComparison.Ordinal) && name[2..].All(char.IsAsciiHexDigitLower);

    /// <summary>QEMU's device id (device_add/device_del), ids only.</summary>
    public string DeviceId => DeviceIdOf(NodeName);

    /// <summary>The device id of the volume whose block node is <paramref name="nodeName"/>.</summary>
    public static string DeviceIdOf(string nodeName) => "vd" + nodeName[NodePrefix.Length..];

    /// <summary>The serial the guest sees (/sys/block/vdX/serial), at most 20 characters in virtio-blk.</summary>
    public string Serial => "vol" + Id[..17];
}
