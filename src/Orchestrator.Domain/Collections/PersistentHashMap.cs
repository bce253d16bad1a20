// The ledger's hot maps (issue 23): a persistent hash map with wide nodes, cheaper per update than ImmutableDictionary's AVL tree.
using System.Collections;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Orchestrator.Domain.Collections;

/// <summary>
/// An immutable hash map: a hash array mapped trie (HAMT) in the compressed layout of Steindorff and Vinju's CHAMP, with
/// 32-way nodes that hold their entries and their children in two compact arrays indexed by two bitmaps. An update copies
/// the few nodes on one key's path (about four at a million entries, against twenty for an AVL tree), and old versions stay
/// as they were. Keys compare with <see cref="EqualityComparer{T}.Default"/>; the map itself compares by reference, as
/// ImmutableDictionary does. The method names are ImmutableDictionary's, so that code written against it reads the same.
/// </summary>
public sealed partial class PersistentHashMap<TKey, TValue> : IReadOnlyDictionary<TKey, TValue> where TKey : notnull
{
    public static readonly PersistentHashMap<TKey, TValue> Empty = new(Node.EmptyNode, 0);

    private readonly Node _root;

    private PersistentHashMap(Node root, int count)
    {
        _root = root;
        Count = count;
    }

    public int Count { get; }

    public bool IsEmpty => Count == 0;

    public TValue this[TKey key] =>
        TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"the key '{key}' is not in the map");

    public bool ContainsKey(TKey key) => !Unsafe.IsNullRef(ref Lookup(_root, key));

    public bool TryGetValue(TKey key, [MaybeNullWhen(false)] out TValue value)
    {
        ref var entry = ref Lookup(_root, key);
        if (Unsafe.IsNullRef(ref entry))
        {
            value = default;
            return false;
        }

        value = entry.Value;
        return true;
    }

    public TValue? GetValueOrDefault(TKey key) => TryGetValue(key, out var value) ? value : default;

    public TValue GetValueOrDefault(TKey key, TValue defaultValue) => TryGetValue(key, out var value) ? value : defaultValue;

    /// <summary>The map with the key set to the value; this very map when it holds that value already.</summary>
    public PersistentHashMap<TKey, TValue> SetItem(TKey key, TValue value)
    {
        var change = Change.None;
        var root = Node.Set(_root, new KeyValuePair<TKey, TValue>(key, value), Hash(key), 0, null, false, ref change);
        return change == Change.None ? this : new PersistentHashMap<TKey, TValue>(root, change == Change.Added ? Count + 1 : Count);
    }

    /// <summary>The map with the key added; this very map when it holds that value already.</summary>
    /// <exception cref="ArgumentException">the key is there with another value (as ImmutableDictionary.Add).</exception>
    public PersistentHashMap<TKey, TValue> Add(TKey key, TValue value)
    {
        var change = Change.None;
        var root = Node.Set(_root, new KeyValuePair<TKey, TValue>(key, value), Hash(key), 0, null, true, ref change);
        return change == Change.None ? this : new PersistentHashMap<TKey, TValue>(root, Count + 1);
    }

    /// <summary>The map without the key; this very map when the key is not there.</summary>
    public PersistentHashMap<TKey, TValue> Remove(TKey key)
    {
        var removed = false;
        var root = Node.Remove(_root, key, Hash(key), 0, null, ref removed);
        return !removed ? this : Count == 1 ? Empty : new PersistentHashMap<TKey, TValue>(root, Count - 1);
    }

    public PersistentHashMap<TKey, TValue> SetItems(IEnumerable<KeyValuePair<TKey, TValue>> items)
    {
        var builder = ToBuilder();
        foreach (var (key, value) in items)
        {
            builder[key] = value;
        }

        return builder.ToImmutable();
    }

    public PersistentHashMap<TKey, TValue> AddRange(IEnumerable<KeyValuePair<TKey, TValue>> items)
    {
        var builder = ToBuilder();
        foreach (var (key, value) in items)
        {
            builder.Add(key, value);
        }

        return builder.ToImmutable();
    }

    /// <summary>A builder that starts from this map and changes only the nodes it copied from it.</summary>
    public Builder ToBuilder() => new(_root, Count);

    public KeyCollection Keys => new(this);

    public ValueCollection Values => new(this);

    IEnumerable<TKey> IReadOnlyDictionary<TKey, TValue>.Keys => Keys;

    IEnumerable<TValue> IReadOnlyDictionary<TKey, TValue>.Values => Values;

    public Enumerator GetEnumerator() => new(_root);

    IEnumerator<KeyValuePair<TKey, TValue>> IEnumerable<KeyValuePair<TKey, TValue>>.GetEnumerator() => GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>
    /// The key's hash, mixed so that every bit of it depends on every bit of the key's own: the trie takes its branches
    /// from the high bits down, and small integers or hashes that differ only in their low bits would otherwise share a
    /// path to the bottom. A bijection, so it makes no new collisions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint Hash(TKey key)
    {
        var x = (uint)EqualityComparer<TKey>.Default.GetHashCode(key);
        x ^= x >> 16;
        x *= 0x7feb352d;
        x ^= x >> 15;
        x *= 0x846ca68b;
        x ^= x >> 16;
        return x;
    }

    /// <summary>
    /// The map of these entries, as adding them one by one in this order makes it (a key twice with the same value counts
    /// once; with another value it throws), built as a whole: the entries sorted by their mixed hash are the trie's slots in
    /// order, so each node is made once, with arrays of its final size, and nothing is copied or left for the collector.
    /// At a million entries that is several times less work than adding them (each add copies its node's array).
    /// </summary>
    /// <exception cref="ArgumentException">a key twice with different values.</exception>
    internal static PersistentHashMap<TKey, TValue> Build(ReadOnlySpan<KeyValuePair<TKey, TValue>> entries)
    {
        if (entries.IsEmpty)
        {
            return Empty;
        }

        var order = GC.AllocateUninitializedArray<ulong>(entries.Length);
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = ((ulong)Hash(entries[i].Key) << 32) | (uint)i;
        }

        SortByHash(order); // by hash, then by position: entries of one hash keep the order they were given in
        var sorted = new KeyValuePair<TKey, TValue>[order.Length];
        var hashes = GC.AllocateUninitializedArray<uint>(order.Length);
        var count = 0;
        for (var i = 0; i < order.Length; i++)
        {
            var entry = entries[(int)(uint)order[i]];
            var hash = (uint)(order[i] >> 32);
            if (!IsRepeat(sorted, hashes, count, entry, hash))
            {
                (sorted[count], hashes[count]) = (entry, hash);
                count++;
            }
        }

        return new PersistentHashMap<TKey, TValue>(Node.Build(sorted.AsSpan(0, count), hashes.AsSpan(0, count), 0), count);
    }

    /// <summary>
    /// Sorts keys whose upper half is a hash and whose lower half a position (distinct, increasing as given). Large arrays
    /// by a radix sort of the hash, a byte at a time from the least: linear, and stable, so the positions of one hash stay
    /// in order and the result is Array.Sort's. At a million VMs Array.Sort's introsort was a twelfth of rebuilding the state.
    /// </summary>
    private static void SortByHash(ulong[] keys)
    {
        if (keys.Length < RadixFrom)
        {
            Array.Sort(keys);
            return;
        }

        var from = keys;
        var to = GC.AllocateUninitializedArray<ulong>(keys.Length);
        Span<int> starts = stackalloc int[256];
        for (var shift = 32; shift < 64; shift += 8)
        {
            starts.Clear();
            foreach (var key in from)
            {
                starts[(int)(key >> shift) & 0xFF]++;
            }

            var sum = 0;
            for (var b = 0; b < starts.Length; b++)
            {
                (starts[b], sum) = (sum, sum + starts[b]);
            }

            foreach (var key in from)
            {
                to[starts[(int)(key >> shift) & 0xFF]++] = key;
            }

            (from, to) = (to, from);
        }

        // Four passes: the sorted keys are back in the array given.
    }

    /// <summary>Below this many keys the radix sort's passes over its 256 counts cost more than they save.</summary>
    private const int RadixFrom = 4096;

    /// <summary>Whether the entry's key is among those of its hash already kept (at the end); another value for it throws.</summary>
    private static bool IsRepeat(KeyValuePair<TKey, TValue>[] kept, uint[] hashes, int count, KeyValuePair<TKey, TValue> entry, uint hash)
    {
        for (var k = count - 1; k >= 0 && hashes[k] == hash; k--)
        {
            if (EqualityComparer<TKey>.Default.Equals(kept[k].Key, entry.Key))
            {
                return EqualityComparer<TValue>.Default.Equals(kept[k].Value, entry.Value)
                    ? true
                    : throw new ArgumentException($"An element with the same key but a different value already exists. Key: '{entry.Key}'", "key");
            }
        }

        return false;
    }

    /// <summary>The key's entry in its node, or a null reference when the key is not there.</summary>
    private static ref KeyValuePair<TKey, TValue> Lookup(Node root, TKey key)
    {
        var hash = Hash(key);
        var node = root;
        for (var level = 0; level < Node.CollisionLevel; level++)
        {
            var bit = Node.Bit(hash, level);
            if ((node.DataMap & bit) != 0)
            {
                ref var entry = ref node.Entries[Node.Index(node.DataMap, bit)];
                return ref EqualityComparer<TKey>.Default.Equals(entry.Key, key) ? ref entry : ref Unsafe.NullRef<KeyValuePair<TKey, TValue>>();
            }

            if ((node.NodeMap & bit) == 0)
            {
                return ref Unsafe.NullRef<KeyValuePair<TKey, TValue>>();
            }

            node = node.Children[Node.Index(node.NodeMap, bit)];
        }

        var at = Node.CollisionIndex(node, key);
        return ref at < 0 ? ref Unsafe.NullRef<KeyValuePair<TKey, TValue>>() : ref node.Entries[at];
    }

    /// <summary>What an update did: nothing (the same value was there), replaced a value, or added an entry.</summary>
    internal enum Change
    {
        None,
        Replaced,
        Added,
    }

    /// <summary>
    /// A mutable map made from an immutable one (a transient): the nodes it copied are its own and it changes them in place,
    /// so a bulk build allocates each node about once rather than a path per entry. <see cref="ToImmutable"/> hands them
    /// over; the builder then copies again before it changes anything, so the map it gave stays as it was.
    /// </summary>
    public sealed class Builder : IEnumerable<KeyValuePair<TKey, TValue>>
    {
        private Node _root;
        private object _owner = new();

        internal Builder(Node root, int count)
        {
            _root = root;
            Count = count;
        }

        public int Count { get; private set; }

        public TValue this[TKey key]
        {
            get => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"the key '{key}' is not in the map");
            set
            {
                var change = Change.None;
                _root = Node.Set(_root, new KeyValuePair<TKey, TValue>(key, value), Hash(key), 0, _owner, false, ref change);
                Count += change == Change.Added ? 1 : 0;
            }
        }

        public bool ContainsKey(TKey key) => !Unsafe.IsNullRef(ref Lookup(_root, key));

        public bool TryGetValue(TKey key, [MaybeNullWhen(false)] out TValue value)
        {
            ref var entry = ref Lookup(_root, key);
            if (Unsafe.IsNullRef(ref entry))
            {
                value = default;
                return false;
            }

            value = entry.Value;
            return true;
        }

        /// <exception cref="ArgumentException">the key is there with another value.</exception>
        public void Add(TKey key, TValue value)
        {
            var change = Change.None;
            _root = Node.Set(_root, new KeyValuePair<TKey, TValue>(key, value), Hash(key), 0, _owner, true, ref change);
            Count += change == Change.Added ? 1 : 0;
        }

        public bool Remove(TKey key)
        {
            var removed = false;
            _root = Node.Remove(_root, key, Hash(key), 0, _owner, ref removed);
            Count -= removed ? 1 : 0;
            return removed;
        }

        public PersistentHashMap<TKey, TValue> ToImmutable()
        {
            _owner = new object(); // the nodes made so far now belong to the map: changes after this copy them first
            return Count == 0 ? Empty : new PersistentHashMap<TKey, TValue>(_root, Count);
        }

        public Enumerator GetEnumerator() => new(_root);

        IEnumerator<KeyValuePair<TKey, TValue>> IEnumerable<KeyValuePair<TKey, TValue>>.GetEnumerator() => GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>The entries, each node's own entries before its children's: no order a caller may rely on.</summary>
    public struct Enumerator : IEnumerator<KeyValuePair<TKey, TValue>>
    {
        private readonly Node _root;
        private NodeStack _nodes;
        private PositionStack _positions; // in each node on the stack: next entry, then next child (past the entries)
        private int _depth;
        private KeyValuePair<TKey, TValue> _current;

        internal Enumerator(Node root)
        {
            _root = root;
            Reset();
        }

        public readonly KeyValuePair<TKey, TValue> Current => _current;

        readonly object IEnumerator.Current => _current;

        public bool MoveNext()
        {
            while (_depth >= 0)
            {
                var node = _nodes[_depth];
                var at = _positions[_depth]++;
                if (at < node.Entries.Length)
                {
                    _current = node.Entries[at];
                    return true;
                }

                var child = at - node.Entries.Length;
                if (child < node.Children.Length)
                {
                    _depth++;
                    _nodes[_depth] = node.Children[child];
                    _positions[_depth] = 0;
                    continue;
                }

                _nodes[_depth] = null!;
                _depth--;
            }

            return false;
        }

        public void Reset()
        {
            _nodes = default;
            _positions = default;
            _nodes[0] = _root;
            _depth = 0;
            _current = default;
        }

        public readonly void Dispose()
        {
        }
    }

    [InlineArray(Node.CollisionLevel + 1)]
    private struct NodeStack
    {
        private Node _element;
    }

    [InlineArray(Node.CollisionLevel + 1)]
    private struct PositionStack
    {
        private int _element;
    }

    public readonly struct KeyCollection(PersistentHashMap<TKey, TValue> map) : IReadOnlyCollection<TKey>
    {
        public int Count => map.Count;

        public KeyEnumerator GetEnumerator() => new(map.GetEnumerator());

        IEnumerator<TKey> IEnumerable<TKey>.GetEnumerator() => GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    public struct KeyEnumerator(Enumerator entries) : IEnumerator<TKey>
    {
        private Enumerator _entries = entries;

        public readonly TKey Current => _entries.Current.Key;

        readonly object IEnumerator.Current => Current;

        public bool MoveNext() => _entries.MoveNext();

        public void Reset() => _entries.Reset();

        public readonly void Dispose()
        {
        }
    }

    public readonly struct ValueCollection(PersistentHashMap<TKey, TValue> map) : IReadOnlyCollection<TValue>
    {
        public int Count => map.Count;

        public ValueEnumerator GetEnumerator() => new(map.GetEnumerator());

        IEnumerator<TValue> IEnumerable<TValue>.GetEnumerator() => GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    public struct ValueEnumerator(Enumerator entries) : IEnumerator<TValue>
    {
        private Enumerator _entries = entries;

        public readonly TValue Current => _entries.Current.Value;

        readonly object? IEnumerator.Current => Current;

        public bool MoveNext() => _entries.MoveNext();

        public void Reset() => _entries.Reset();

        public readonly void Dispose()
        {
        }
    }
}

/// <summary>Makers of <see cref="PersistentHashMap{TKey, TValue}"/>, named as ImmutableDictionary's.</summary>
public static class PersistentHashMap
{
    public static PersistentHashMap<TKey, TValue>.Builder CreateBuilder<TKey, TValue>() where TKey : notnull =>
        PersistentHashMap<TKey, TValue>.Empty.ToBuilder();

    /// <summary>The map of these entries, built as a whole (faster than adding them for a large map); the same map as adding them in order.</summary>
    /// <exception cref="ArgumentException">a key twice with different values.</exception>
    public static PersistentHashMap<TKey, TValue> CreateRange<TKey, TValue>(ReadOnlySpan<KeyValuePair<TKey, TValue>> entries)
        where TKey : notnull =>
        PersistentHashMap<TKey, TValue>.Build(entries);

    /// <exception cref="ArgumentException">a key twice with different values.</exception>
    public static PersistentHashMap<TKey, TValue> ToPersistentHashMap<TKey, TValue>(this IEnumerable<KeyValuePair<TKey, TValue>> entries)
        where TKey : notnull =>
        CreateRange<TKey, TValue>(entries.ToArray());

    /// <exception cref="ArgumentException">a key twice with different values.</exception>
    public static PersistentHashMap<TKey, TSource> ToPersistentHashMap<TSource, TKey>(this IEnumerable<TSource> source, Func<TSource, TKey> key)
        where TKey : notnull =>
        source.ToPersistentHashMap(key, s => s);

    /// <exception cref="ArgumentException">a key twice with different values.</exception>
    public static PersistentHashMap<TKey, TValue> ToPersistentHashMap<TSource, TKey, TValue>(this IEnumerable<TSource> source,
        Func<TSource, TKey> key, Func<TSource, TValue> value) where TKey : notnull =>
        CreateRange<TKey, TValue>(source.Select(item => new KeyValuePair<TKey, TValue>(key(item), value(item))).ToArray());
}
