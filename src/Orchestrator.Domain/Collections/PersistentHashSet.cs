using System.Collections;
using System.Runtime.CompilerServices;

namespace Orchestrator.Domain.Collections;

/// <summary>
/// An immutable hash set on <see cref="PersistentHashMap{TKey, TValue}"/> (each item a key with an empty value), with
/// ImmutableHashSet's method names. Compares by reference, as ImmutableHashSet does.
/// </summary>
[CollectionBuilder(typeof(PersistentHashSet), nameof(PersistentHashSet.Create))]
public sealed class PersistentHashSet<T> : IReadOnlyCollection<T> where T : notnull
{
    public static readonly PersistentHashSet<T> Empty = new(PersistentHashMap<T, Nothing>.Empty);

    private readonly PersistentHashMap<T, Nothing> _items;

    private PersistentHashSet(PersistentHashMap<T, Nothing> items) => _items = items;

    public int Count => _items.Count;

    public bool IsEmpty => _items.IsEmpty;

    public bool Contains(T item) => _items.ContainsKey(item);

    /// <summary>The set with the item; this very set when it has it already.</summary>
    public PersistentHashSet<T> Add(T item) => Of(_items.SetItem(item, default));

    /// <summary>The set without the item; this very set when it does not have it.</summary>
    public PersistentHashSet<T> Remove(T item) => Of(_items.Remove(item));

    public Builder ToBuilder() => new(_items.ToBuilder());

    public Enumerator GetEnumerator() => new(_items.GetEnumerator());

    IEnumerator<T> IEnumerable<T>.GetEnumerator() => GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private PersistentHashSet<T> Of(PersistentHashMap<T, Nothing> items) =>
        ReferenceEquals(items, _items) ? this : items.IsEmpty ? Empty : new PersistentHashSet<T>(items);

    /// <summary>The value of every entry: a set's map has keys only.</summary>
    internal readonly record struct Nothing;

    public sealed class Builder : IEnumerable<T>
    {
        private readonly PersistentHashMap<T, Nothing>.Builder _items;

        internal Builder(PersistentHashMap<T, Nothing>.Builder items) => _items = items;

        public int Count => _items.Count;

        public bool Contains(T item) => _items.ContainsKey(item);

        /// <returns>whether the item was not there before.</returns>
        public bool Add(T item)
        {
            var before = _items.Count;
            _items[item] = default;
            return _items.Count > before;
        }

        public bool Remove(T item) => _items.Remove(item);

        public PersistentHashSet<T> ToImmutable() => _items.Count == 0 ? Empty : new PersistentHashSet<T>(_items.ToImmutable());

        public Enumerator GetEnumerator() => new(_items.GetEnumerator());

        IEnumerator<T> IEnumerable<T>.GetEnumerator() => GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    public struct Enumerator : IEnumerator<T>
    {
        private PersistentHashMap<T, Nothing>.Enumerator _entries;

        internal Enumerator(PersistentHashMap<T, Nothing>.Enumerator entries) => _entries = entries;

        public readonly T Current => _entries.Current.Key;

        readonly object IEnumerator.Current => Current;

        public bool MoveNext() => _entries.MoveNext();

        public void Reset() => _entries.Reset();

        public readonly void Dispose()
        {
        }
    }
}

/// <summary>Makers of <see cref="PersistentHashSet{T}"/>, named as ImmutableHashSet's.</summary>
public static class PersistentHashSet
{
    public static PersistentHashSet<T> Create<T>(ReadOnlySpan<T> items) where T : notnull
    {
        var builder = PersistentHashSet<T>.Empty.ToBuilder();
        foreach (var item in items)
        {
            builder.Add(item);
        }

        return builder.ToImmutable();
    }

    public static PersistentHashSet<T>.Builder CreateBuilder<T>() where T : notnull => PersistentHashSet<T>.Empty.ToBuilder();

    public static PersistentHashSet<T> ToPersistentHashSet<T>(this IEnumerable<T> items) where T : notnull
    {
        var builder = CreateBuilder<T>();
        foreach (var item in items)
        {
            builder.Add(item);
        }

        return builder.ToImmutable();
    }
}
