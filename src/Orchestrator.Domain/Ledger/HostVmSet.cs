using System.Collections;
using Orchestrator.Domain.Collections;

namespace Orchestrator.Domain.Ledger;

/// <summary>
/// The VMs on one host (<see cref="VmIndex.ByHost"/>), immutable. A host has tens or hundreds of VMs, and a hash trie of
/// their own costs about 48 bytes a VM in nodes and arrays; a sorted array costs 16. So up to <see cref="MostInArray"/> they
/// are a sorted array (found by binary search; a change copies at most a few KiB), and beyond a
/// <see cref="PersistentHashSet{T}"/>, where copying the array at each change would cost more than a trie's path.
/// Enumerated in id order while an array: the same VMs enumerate the same way whatever their history.
/// </summary>
internal sealed class HostVmSet : IReadOnlyCollection<VmId>
{
    public const int MostInArray = 256;

    public static readonly HostVmSet Empty = new([], null);

    private readonly VmId[] _few;
    private readonly PersistentHashSet<VmId>? _many; // when not null, the set (and _few is empty)

    private HostVmSet(VmId[] few, PersistentHashSet<VmId>? many)
    {
        _few = few;
        _many = many;
    }

    public int Count => _many?.Count ?? _few.Length;

    public bool IsEmpty => Count == 0;

    /// <summary>The set of these ids. Each id once.</summary>
    public static HostVmSet Of(List<VmId> ids)
    {
        if (ids.Count > MostInArray)
        {
            return new HostVmSet([], ids.ToPersistentHashSet());
        }

        var few = ids.ToArray();
        Array.Sort(few, ByValue.Instance);
        return few.Length == 0 ? Empty : new HostVmSet(few, null);
    }

    public bool Contains(VmId id) => _many?.Contains(id) ?? Find(id) >= 0;

    /// <summary>The set with the id; this very set when it has it already.</summary>
    public HostVmSet Add(VmId id)
    {
        if (_many is not null)
        {
            var many = _many.Add(id);
            return ReferenceEquals(many, _many) ? this : new HostVmSet([], many);
        }

        var at = Find(id);
        if (at >= 0)
        {
            return this;
        }

        if (_few.Length == MostInArray)
        {
            return new HostVmSet([], _few.Append(id).ToPersistentHashSet());
        }

        at = ~at;
        var few = new VmId[_few.Length + 1];
        _few.AsSpan(0, at).CopyTo(few);
        few[at] = id;
        _few.AsSpan(at).CopyTo(few.AsSpan(at + 1));
        return new HostVmSet(few, null);
    }

    /// <summary>The set without the id; this very set when it does not have it.</summary>
    public HostVmSet Remove(VmId id)
    {
        if (_many is not null)
        {
            var many = _many.Remove(id);
            // Back to an array only well below the limit, so that a host at the limit does not convert at every change.
            return ReferenceEquals(many, _many) ? this : many.Count <= MostInArray / 2 ? Of([.. many]) : new HostVmSet([], many);
        }

        var at = Find(id);
        if (at < 0)
        {
            return this;
        }

        if (_few.Length == 1)
        {
            return Empty;
        }

        var few = new VmId[_few.Length - 1];
        _few.AsSpan(0, at).CopyTo(few);
        _few.AsSpan(at + 1).CopyTo(few.AsSpan(at));
        return new HostVmSet(few, null);
    }

    public IEnumerator<VmId> GetEnumerator() => _many is null ? ((IEnumerable<VmId>)_few).GetEnumerator() : _many.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private int Find(VmId id) => Array.BinarySearch(_few, id, ByValue.Instance);

    private sealed class ByValue : IComparer<VmId>
    {
        public static readonly ByValue Instance = new();

        public int Compare(VmId x, VmId y) => x.Value.CompareTo(y.Value);
    }
}
