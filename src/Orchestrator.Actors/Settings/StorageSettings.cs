using System.Globalization;
using Akka.Configuration;
using Orchestrator.Domain.Shares;
using Orchestrator.Domain.Storage;

namespace Orchestrator.Actors.Settings;

/// <summary>
/// One configured pool: what the host reports of it, and where it is: the directory (dir pools), or the Ceph cluster's
/// config file, its pool and the client to connect as (rbd pools; <see cref="CephUser"/> null: admin).
/// </summary>
public sealed record StoragePoolSettings(StoragePoolInfo Info, string Path, string? CephConf = null, string? CephPool = null,
    string? CephUser = null);

/// <summary>
/// <c>orchestrator.storage</c>: the host's pools. With no pool configured a host has one: <c>local</c>, a dir pool under
/// its data directory the size of that filesystem.
/// </summary>
public sealed record StorageSettings(IReadOnlyList<StoragePoolSettings> Pools)
{
    public const string DefaultPoolId = "local";

    /// <summary>A laptop's SSD, modestly: 10 000 IOPS and 200 MiB/s.</summary>
    /// <summary>
    /// Unknown, so limits only: the division is a static partition (not work-conserving), so a figure an operator did not
    /// give would cap a lone busy VM at a fraction of a disk that could serve it whole.
    /// </summary>
    public static readonly HostDiskCapacity DefaultDiskCapacity = new(0, 0);

    /// <summary><c>orchestrator.storage.host-iops</c> and <c>host-bps</c> (0: unknown, limits only, no division).</summary>
    /// <exception cref="ConfigurationException">a negative figure.</exception>
    public static HostDiskCapacity DiskCapacity(Config? c)
    {
        var iops = c?.GetLong("host-iops", DefaultDiskCapacity.Iops) ?? DefaultDiskCapacity.Iops;
        var bps = c?.GetLong("host-bps", DefaultDiskCapacity.Bps) ?? DefaultDiskCapacity.Bps;
        return iops < 0 || bps < 0
            ? throw new ConfigurationException($"orchestrator.storage.host-iops and host-bps must be 0 or more, were {iops} and {bps}")
            : new HostDiskCapacity(iops, bps);
    }

    /// <exception cref="ConfigurationException">a pool is malformed; the message names it and the setting.</exception>
    public static StorageSettings Create(Config? c, string dataDir)
    {
        var pools = new List<StoragePoolSettings>();
        var configured = c?.GetConfig("pools");
        var ids = configured is null || configured.IsEmpty
            ? []
            : configured.AsEnumerable().Select(kv => kv.Key.Split('.')[0]).Distinct().Order(StringComparer.Ordinal).ToList();
        foreach (var id in ids)
        {
            pools.Add(Pool(id, configured!.GetConfig(id), dataDir));
        }

        if (pools.Count == 0)
        {
            pools.Add(Pool(DefaultPoolId, null, dataDir));
        }

        return new StorageSettings(pools);
    }

    private static StoragePoolSettings Pool(string id, Config? p, string dataDir)
    {
        if (p?.GetString("kind", StoragePoolKinds.Dir) == StoragePoolKinds.Rbd)
        {
            return RbdPool(id, p);
        }

        var path = p?.GetString("path", "") is { Length: > 0 } configured
            ? Path.GetFullPath(configured, dataDir)
            : Path.Combine(dataDir, "pools", id);
        var capacity = p?.GetLong("capacity-gib", 0) ?? 0;
        var info = new StoragePoolInfo(
            id,
            p?.GetString("kind", StoragePoolKinds.Dir) ?? StoragePoolKinds.Dir,
            capacity > 0 ? capacity : FilesystemGiB(path),
            p?.GetDouble("overcommit", 4.0) ?? 4.0,
            p?.GetBoolean("shared", false) ?? false);
        var errors = StoragePoolInfo.Validate(info).ToList();
        return errors.Count == 0
            ? new StoragePoolSettings(info, path)
            : throw new ConfigurationException($"orchestrator.storage.pools.{id}: {string.Join("; ", errors)}");
    }

    /// <summary>
    /// An rbd pool: <c>ceph-conf</c> (the cluster's config file), <c>ceph-pool</c> (the Ceph pool the images go in),
    /// <c>ceph-user</c> (the client, "" = admin), <c>capacity-gib</c> (required: what this orchestrator may use of the
    /// cluster). These go into QEMU's and rbd's arguments, so each must be a plain name or path: no ':', ',' or '='.
    /// </summary>
    private static StoragePoolSettings RbdPool(string id, Config p)
    {
        var conf = p.GetString("ceph-conf", "/etc/ceph/ceph.conf");
        var pool = p.GetString("ceph-pool", "");
        var user = p.GetString("ceph-user", "");
        var info = new StoragePoolInfo(id, StoragePoolKinds.Rbd, p.GetLong("capacity-gib", 0), p.GetDouble("overcommit", 4.0), Shared: true);
        var errors = StoragePoolInfo.Validate(info).ToList();
        if (!System.IO.Path.IsPathRooted(conf) || conf.IndexOfAny([':', ',', '=']) >= 0)
        {
            errors.Add($"ceph-conf must be an absolute path without ':', ',' or '=', was '{conf}'");
        }

        if (!IsCephName(pool))
        {
            errors.Add($"ceph-pool must name the Ceph pool (letters, digits, '.', '_', '-'), was '{pool}'");
        }

        if (user.Length > 0 && !IsCephName(user))
        {
            errors.Add($"ceph-user must be a Ceph client name (letters, digits, '.', '_', '-'), was '{user}'");
        }

        return errors.Count == 0
            ? new StoragePoolSettings(info, "", conf, pool, user.Length > 0 ? user : null)
            : throw new ConfigurationException($"orchestrator.storage.pools.{id}: {string.Join("; ", errors)}");
    }

    private static bool IsCephName(string name) =>
        name.Length is > 0 and <= 64 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>The size of the filesystem the pool's directory is on (its nearest existing ancestor's), at least 1 GiB.</summary>
    private static long FilesystemGiB(string path)
    {
        var existing = path;
        while (!Directory.Exists(existing) && Path.GetDirectoryName(existing) is { } parent)
        {
            existing = parent;
        }

        try
        {
            return Math.Max(1, new DriveInfo(existing).TotalSize >> 30);
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            throw new ConfigurationException(
                $"cannot tell the size of the filesystem of {path.ToString(CultureInfo.InvariantCulture)}: set capacity-gib ({ex.Message})");
        }
    }
}
