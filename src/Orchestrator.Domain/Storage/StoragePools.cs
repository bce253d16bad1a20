using System.Globalization;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Storage;

/// <summary>
/// The pool kinds a host can offer. <c>dir</c>: a directory of qcow2 files; <c>rbd</c>: images in a Ceph pool, which
/// every host of the cluster reaches (always shared).
/// </summary>
public static class StoragePoolKinds
{
    public const string Dir = "dir";
    public const string Rbd = "rbd";

    public static readonly IReadOnlyList<string> Known = [Dir, Rbd];
}

/// <summary>
/// A storage pool as its host reports it at registration and the ledger places disks in: its capacity in GiB, how far
/// it may be promised beyond that (thin provisioning), and whether every host reaches the same pool
/// (<see cref="Shared"/>: NFS, CephFS, one directory of the cluster scripts), so that a disk on it follows its VM.
/// </summary>
public sealed record StoragePoolInfo(string Id, string Kind, long CapacityGiB, double Overcommit, bool Shared)
{
    /// <summary>The most GiB of disks this pool may hold: its capacity times the overcommit ratio.</summary>
    public long PromisableGiB => (long)Math.Floor(CapacityGiB * Overcommit);

    public static IEnumerable<string> Validate(StoragePoolInfo pool)
    {
        if (!VmSpecValidator.IsValidName(pool.Id))
        {
            yield return $"storage pool id '{FieldError.Echo(pool.Id)}' must be a DNS label (lowercase letters, digits and '-')";
        }

        if (!StoragePoolKinds.Known.Contains(pool.Kind, StringComparer.Ordinal))
        {
            yield return $"storage pool {pool.Id}: unknown kind '{FieldError.Echo(pool.Kind)}'; known kinds: {string.Join(", ", StoragePoolKinds.Known)}";
        }

        if (pool.CapacityGiB < 1)
        {
            yield return $"storage pool {pool.Id}: capacity-gib must be at least 1, was {pool.CapacityGiB.ToString(CultureInfo.InvariantCulture)}";
        }

        if (!(pool.Overcommit >= 1.0 && pool.Overcommit <= 100.0))
        {
            yield return $"storage pool {pool.Id}: overcommit must be between 1.0 and 100.0, was {pool.Overcommit.ToString(CultureInfo.InvariantCulture)}";
        }
    }

    /// <summary>Equal lists of pools, in order (records compare lists by reference).</summary>
    public static bool Same(IReadOnlyList<StoragePoolInfo>? a, IReadOnlyList<StoragePoolInfo>? b) =>
        (a ?? []).SequenceEqual(b ?? []);
}
