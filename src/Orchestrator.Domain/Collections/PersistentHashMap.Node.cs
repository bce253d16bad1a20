// The trie's nodes and the updates that copy them (or, in a builder, change those it owns in place).
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Orchestrator.Domain.Collections;

public sealed partial class PersistentHashMap<TKey, TValue>
{
    /// <summary>
    /// One node of the trie. Level by level a key's mixed hash picks one of 32 slots from its high bits down (the seventh
    /// level has the last two bits, so four slots); a slot holds an entry (its bit in <see cref="DataMap"/>) or a child
    /// (in <see cref="NodeMap"/>), each array in slot order with no gaps. Below the seventh level every key has the same
    /// hash: a collision node, its entries in a plain list. A child holds two entries or more: one left by a removal
    /// moves up into its parent, so the same entries make the same shape whatever their history.
    /// </summary>
    internal class Node(uint dataMap, uint nodeMap, KeyValuePair<TKey, TValue>[] entries, Node[] children)
    {
        public const int CollisionLevel = 7;

        public static readonly Node EmptyNode = new(0, 0, [], []);

        // Mutable only for the builder that owns the node (Owner is its token); a node a map holds never changes.
        public uint DataMap = dataMap;
        public uint NodeMap = nodeMap;
        public KeyValuePair<TKey, TValue>[] Entries = entries;
        public Node[] Children = children;

        /// <summary>
        /// The token of the builder that made the node and may change it in place; null for a node made by a persistent
        /// update or a whole build. Only a builder's nodes have the field (<see cref="OwnedNode"/>): a million entries are
        /// some 300,000 nodes, 8 bytes each.
        /// </summary>
        public virtual object? Owner => null;

        public static Node Create(uint dataMap, uint nodeMap, KeyValuePair<TKey, TValue>[] entries, Node[] children, object? owner) =>
            owner is null ? new Node(dataMap, nodeMap, entries, children) : new OwnedNode(dataMap, nodeMap, entries, children, owner);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static uint Bit(uint hash, int level) => 1u << (int)(level < 6 ? (hash >> (27 - 5 * level)) & 31 : hash & 3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static int Index(uint map, uint bit) => BitOperations.PopCount(map & (bit - 1));

        public static int CollisionIndex(Node node, TKey key)
        {
            var entries = node.Entries;
            for (var i = 0; i < entries.Length; i++)
            {
                if (EqualityComparer<TKey>.Default.Equals(entries[i].Key, key))
                {
                    return i;
                }
            }

            return -1;
        }

        /// <summary>
        /// The node at <paramref name="level"/> of these distinct entries, sorted by their mixed hashes: in that order a
        /// slot's entries are next to each other, one alone stays in the node and two or more go down into a child.
        /// </summary>
        public static Node Build(ReadOnlySpan<KeyValuePair<TKey, TValue>> entries, ReadOnlySpan<uint> hashes, int level)
        {
            if (level == CollisionLevel)
            {
                return new Node(0, 0, entries.ToArray(), []);
            }

            uint dataMap = 0, nodeMap = 0;
            for (var i = 0; i < entries.Length;)
            {
                var end = SlotEnd(hashes, i, level);
                var bit = Bit(hashes[i], level);
                (dataMap, nodeMap) = end - i == 1 ? (dataMap | bit, nodeMap) : (dataMap, nodeMap | bit);
                i = end;
            }

            var data = dataMap == 0 ? [] : new KeyValuePair<TKey, TValue>[BitOperations.PopCount(dataMap)];
            var children = nodeMap == 0 ? [] : new Node[BitOperations.PopCount(nodeMap)];
            int d = 0, c = 0;
            for (var i = 0; i < entries.Length;)
            {
                var end = SlotEnd(hashes, i, level);
                if (end - i == 1)
                {
                    data[d++] = entries[i];
                }
                else
                {
                    children[c++] = Build(entries[i..end], hashes[i..end], level + 1);
                }

                i = end;
            }

            return new Node(dataMap, nodeMap, data, children);
        }

        /// <summary>Where the run of hashes that share the slot of hash <paramref name="start"/> at this level ends.</summary>
        private static int SlotEnd(ReadOnlySpan<uint> hashes, int start, int level)
        {
            var bit = Bit(hashes[start], level);
            var end = start + 1;
            while (end < hashes.Length && Bit(hashes[end], level) == bit)
            {
                end++;
            }

            return end;
        }

        /// <summary>The node with the entry set (added, or its value replaced); <paramref name="node"/> itself when unchanged.</summary>
        /// <param name="owner">the builder's token: nodes it owns change in place; null for a persistent update.</param>
        /// <param name="add">a key already there with another value throws, as ImmutableDictionary.Add does.</param>
        public static Node Set(Node node, KeyValuePair<TKey, TValue> entry, uint hash, int level, object? owner, bool add, ref Change change)
        {
            if (level == CollisionLevel)
            {
                var i = CollisionIndex(node, entry.Key);
                return i < 0
                    ? With(node, owner, 0, 0, Inserted(node.Entries, node.Entries.Length, entry), node.Children, ref change, Change.Added)
                    : Replace(node, i, entry, owner, add, ref change);
            }

            var bit = Bit(hash, level);
            if ((node.DataMap & bit) != 0)
            {
                var at = Index(node.DataMap, bit);
                var other = node.Entries[at];
                if (EqualityComparer<TKey>.Default.Equals(other.Key, entry.Key))
                {
                    return Replace(node, at, entry, owner, add, ref change);
                }

                // Two keys in one slot: both go down into a new child, as deep as their hashes agree.
                var pair = Pair(other, Hash(other.Key), entry, hash, level + 1, owner);
                return With(node, owner, node.DataMap & ~bit, node.NodeMap | bit, Removed(node.Entries, at),
                    Inserted(node.Children, Index(node.NodeMap, bit), pair), ref change, Change.Added);
            }

            if ((node.NodeMap & bit) != 0)
            {
                var at = Index(node.NodeMap, bit);
                var child = node.Children[at];
                var changed = Set(child, entry, hash, level + 1, owner, add, ref change);
                return ReferenceEquals(changed, child) ? node : WithChild(node, at, changed, owner);
            }

            return With(node, owner, node.DataMap | bit, node.NodeMap, Inserted(node.Entries, Index(node.DataMap, bit), entry), node.Children,
                ref change, Change.Added);
        }

        /// <summary>The node without the key; <paramref name="node"/> itself when the key is not there.</summary>
        public static Node Remove(Node node, TKey key, uint hash, int level, object? owner, ref bool removed)
        {
            var change = Change.None;
            if (level == CollisionLevel)
            {
                var i = CollisionIndex(node, key);
                removed = i >= 0;
                return i < 0 ? node : With(node, owner, 0, 0, Removed(node.Entries, i), node.Children, ref change, Change.None);
            }

            var bit = Bit(hash, level);
            if ((node.DataMap & bit) != 0)
            {
                var at = Index(node.DataMap, bit);
                if (!EqualityComparer<TKey>.Default.Equals(node.Entries[at].Key, key))
                {
                    return node;
                }

                removed = true;
                return With(node, owner, node.DataMap & ~bit, node.NodeMap, Removed(node.Entries, at), node.Children, ref change, Change.None);
            }

            if ((node.NodeMap & bit) != 0)
            {
                var at = Index(node.NodeMap, bit);
                var child = node.Children[at];
                var changed = Remove(child, key, hash, level + 1, owner, ref removed);
                if (!removed)
                {
                    return node;
                }

                if (changed.NodeMap == 0 && changed.Entries.Length == 1)
                {
                    // One entry left below: it moves up into this node's slot, so the trie keeps no chain to a lone entry.
                    return With(node, owner, node.DataMap | bit, node.NodeMap & ~bit, Inserted(node.Entries, Index(node.DataMap, bit), changed.Entries[0]),
                        Removed(node.Children, at), ref change, Change.None);
                }

                return ReferenceEquals(changed, child) ? node : WithChild(node, at, changed, owner);
            }

            return node;
        }

        private static Node Replace(Node node, int at, KeyValuePair<TKey, TValue> entry, object? owner, bool add, ref Change change)
        {
            var old = node.Entries[at];
            if (EqualityComparer<TValue>.Default.Equals(old.Value, entry.Value))
            {
                return node;
            }

            if (add)
            {
                throw new ArgumentException($"An element with the same key but a different value already exists. Key: '{entry.Key}'", "key");
            }

            change = Change.Replaced;
            if (owner is not null && ReferenceEquals(node.Owner, owner))
            {
                node.Entries[at] = entry;
                return node;
            }

            var entries = Copy(node.Entries);
            entries[at] = entry;
            return With(node, owner, node.DataMap, node.NodeMap, entries, node.Children, ref change, Change.Replaced);
        }

        private static Node WithChild(Node node, int at, Node child, object? owner)
        {
            if (owner is not null && ReferenceEquals(node.Owner, owner))
            {
                node.Children[at] = child;
                return node;
            }

            var children = Copy(node.Children);
            children[at] = child;
            var change = Change.None;
            return With(node, owner, node.DataMap, node.NodeMap, node.Entries, children, ref change, Change.None);
        }

        /// <summary>Two entries of different keys in a new node at <paramref name="level"/>, or deeper while their hashes agree.</summary>
        private static Node Pair(KeyValuePair<TKey, TValue> a, uint aHash, KeyValuePair<TKey, TValue> b, uint bHash, int level, object? owner)
        {
            if (level == CollisionLevel)
            {
                return Create(0, 0, [a, b], [], owner);
            }

            var aBit = Bit(aHash, level);
            var bBit = Bit(bHash, level);
            return aBit == bBit
                ? Create(0, aBit, [], [Pair(a, aHash, b, bHash, level + 1, owner)], owner)
                : Create(aBit | bBit, 0, aBit < bBit ? [a, b] : [b, a], [], owner);
        }

        /// <summary>
        /// The node with these maps and arrays: changed in place when the builder owns it, else a new node. A new node a
        /// builder will own gets its own copy of an array it would otherwise share with the node it replaces.
        /// </summary>
        private static Node With(Node node, object? owner, uint dataMap, uint nodeMap, KeyValuePair<TKey, TValue>[] entries, Node[] children,
            ref Change change, Change made)
        {
            change = made == Change.None ? change : made;
            if (owner is not null && ReferenceEquals(node.Owner, owner))
            {
                (node.DataMap, node.NodeMap, node.Entries, node.Children) = (dataMap, nodeMap, entries, children);
                return node;
            }

            if (owner is not null)
            {
                entries = ReferenceEquals(entries, node.Entries) && entries.Length > 0 ? Copy(entries) : entries;
                children = ReferenceEquals(children, node.Children) && children.Length > 0 ? Copy(children) : children;
            }

            return Create(dataMap, nodeMap, entries, children, owner);
        }

        // Span copies: Array.Copy's checks cost more than the copy itself at these sizes (a node holds 32 items at most), and
        // Array.Clone is MemberwiseClone, which takes the runtime's slow allocation path (a quarter of a replayed event's
        // Apply at a million VMs went there).
        private static T[] Copy<T>(T[] items)
        {
            var copy = new T[items.Length];
            items.AsSpan().CopyTo(copy);
            return copy;
        }

        private static T[] Inserted<T>(T[] items, int at, T item)
        {
            var result = new T[items.Length + 1];
            items.AsSpan(0, at).CopyTo(result);
            result[at] = item;
            items.AsSpan(at).CopyTo(result.AsSpan(at + 1));
            return result;
        }

        private static T[] Removed<T>(T[] items, int at)
        {
            if (items.Length == 1)
            {
                return [];
            }

            var result = new T[items.Length - 1];
            items.AsSpan(0, at).CopyTo(result);
            items.AsSpan(at + 1).CopyTo(result.AsSpan(at));
            return result;
        }
    }

    /// <summary>A node a builder made: it may change it in place while <see cref="Owner"/> is the builder's token.</summary>
    private sealed class OwnedNode(uint dataMap, uint nodeMap, KeyValuePair<TKey, TValue>[] entries, Node[] children, object owner)
        : Node(dataMap, nodeMap, entries, children)
    {
        public override object? Owner { get; } = owner;
    }
}
