// Which keys changed between two versions of a map, found by walking only the nodes they do not share.
namespace Orchestrator.Domain.Collections;

public sealed partial class PersistentHashMap<TKey, TValue>
{
    /// <summary>
    /// Adds to <paramref name="keys"/> every key whose entry differs between <paramref name="older"/> and this map: added,
    /// removed, or holding another value. The trie's shape depends only on its entries and a version shares every node an
    /// update did not copy, so the walk skips whatever the two share: its cost follows the change, not the map (one
    /// command's change to a million VMs is a few nodes on one path).
    /// </summary>
    public void AddChangedKeys(PersistentHashMap<TKey, TValue> older, ICollection<TKey> keys) => Diff(older._root, _root, 0, keys);

    private static void Diff(Node older, Node newer, int level, ICollection<TKey> keys)
    {
        if (ReferenceEquals(older, newer))
        {
            return;
        }

        if (level == Node.CollisionLevel)
        {
            DiffEntries(older.Entries, newer.Entries, keys);
            return;
        }

        var slots = older.DataMap | older.NodeMap | newer.DataMap | newer.NodeMap;
        while (slots != 0)
        {
            var bit = slots & (~slots + 1);
            slots &= slots - 1;
            if ((older.DataMap & bit) != 0 && (newer.DataMap & bit) != 0)
            {
                var was = older.Entries[Node.Index(older.DataMap, bit)];
                var now = newer.Entries[Node.Index(newer.DataMap, bit)];
                if (!EqualityComparer<TKey>.Default.Equals(was.Key, now.Key))
                {
                    keys.Add(was.Key);
                    keys.Add(now.Key);
                }
                else if (!Same(was.Value, now.Value))
                {
                    keys.Add(now.Key);
                }
            }
            else if ((older.NodeMap & bit) != 0 && (newer.NodeMap & bit) != 0)
            {
                Diff(older.Children[Node.Index(older.NodeMap, bit)], newer.Children[Node.Index(newer.NodeMap, bit)], level + 1, keys);
            }
            else
            {
                // An entry on one side and a child or nothing on the other: whatever the slot holds on each side, compared.
                DiffEntries(SlotEntries(older, bit), SlotEntries(newer, bit), keys);
            }
        }
    }

    private static KeyValuePair<TKey, TValue>[] SlotEntries(Node node, uint bit)
    {
        if ((node.DataMap & bit) != 0)
        {
            return [node.Entries[Node.Index(node.DataMap, bit)]];
        }

        if ((node.NodeMap & bit) == 0)
        {
            return [];
        }

        var entries = new List<KeyValuePair<TKey, TValue>>();
        var all = new Enumerator(node.Children[Node.Index(node.NodeMap, bit)]);
        while (all.MoveNext())
        {
            entries.Add(all.Current);
        }

        return [.. entries];
    }

    private static void DiffEntries(KeyValuePair<TKey, TValue>[] older, KeyValuePair<TKey, TValue>[] newer, ICollection<TKey> keys)
    {
        var before = new Dictionary<TKey, TValue>(older.Length);
        foreach (var (key, value) in older)
        {
            before[key] = value;
        }

        foreach (var (key, value) in newer)
        {
            if (!before.Remove(key, out var was) || !Same(was, value))
            {
                keys.Add(key);
            }
        }

        foreach (var key in before.Keys)
        {
            keys.Add(key);
        }
    }

    private static bool Same(TValue a, TValue b) => ReferenceEquals(a, b) || EqualityComparer<TValue>.Default.Equals(a, b);
}
