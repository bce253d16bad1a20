using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Collections;

namespace Orchestrator.Domain.Tests;

public class PersistentHashMapTests
{
    /// <summary>A key whose hash the test chooses: equal hashes for different keys reach the trie's collision nodes.</summary>
    private readonly record struct Key(int Id, int Hash)
    {
        public override int GetHashCode() => Hash;
    }

    [Fact]
    public void The_empty_map_has_nothing()
    {
        var map = PersistentHashMap<string, int>.Empty;
        Assert.True(map.IsEmpty);
        Assert.Empty(map);
        Assert.False(map.ContainsKey("a"));
        Assert.False(map.TryGetValue("a", out _));
        Assert.Equal(0, map.GetValueOrDefault("a"));
        Assert.Equal(7, map.GetValueOrDefault("a", 7));
        Assert.Throws<KeyNotFoundException>(() => map["a"]);
        Assert.Same(map, map.Remove("a"));
    }

    [Fact]
    public void Set_add_and_remove_answer_as_ImmutableDictionary_does()
    {
        var one = PersistentHashMap<string, int>.Empty.Add("a", 1);
        Assert.Equal(1, one["a"]);
        Assert.Same(one, one.Add("a", 1)); // the same entry again: no change, as ImmutableDictionary
        Assert.Throws<ArgumentException>(() => one.Add("a", 2));
        Assert.Same(one, one.SetItem("a", 1));

        var two = one.SetItem("a", 2).SetItem("b", 3);
        Assert.Equal(2, two.Count);
        Assert.Equal((2, 3), (two["a"], two["b"]));
        Assert.Equal(1, one["a"]); // the old version as it was
        Assert.Single(one);

        var back = two.Remove("b").Remove("a");
        Assert.Same(PersistentHashMap<string, int>.Empty, back);
        Assert.Equal(2, two.Count);
    }

    [Fact]
    public void Keys_values_and_entries_each_come_once()
    {
        var map = Enumerable.Range(0, 5000).ToPersistentHashMap(i => i, i => -i);
        Assert.Equal(5000, map.Count);
        Assert.Equal(Enumerable.Range(0, 5000), map.Keys.Order());
        Assert.Equal(Enumerable.Range(0, 5000).Select(i => -i).Order(), map.Values.Order());
        Assert.All(map, kv => Assert.Equal(-kv.Key, kv.Value));
        IReadOnlyDictionary<int, int> readOnly = map;
        Assert.Equal(5000, readOnly.Keys.Count());
        Assert.Equal(-42, readOnly[42]);
    }

    [Fact]
    public void Keys_with_one_hash_are_all_kept_and_found()
    {
        var map = PersistentHashMap<Key, int>.Empty;
        for (var i = 0; i < 100; i++)
        {
            map = map.Add(new Key(i, 12345), i);
        }

        Assert.Equal(100, map.Count);
        Assert.All(Enumerable.Range(0, 100), i => Assert.Equal(i, map[new Key(i, 12345)]));
        Assert.False(map.ContainsKey(new Key(100, 12345)));
        for (var i = 0; i < 100; i += 2)
        {
            map = map.Remove(new Key(i, 12345));
        }

        Assert.Equal(Enumerable.Range(0, 50).Select(i => 2 * i + 1), map.Keys.Select(k => k.Id).Order());
    }

    [Fact]
    public void A_builder_makes_the_map_the_updates_make_and_leaves_its_source_alone()
    {
        var random = new Random(23);
        var keys = Enumerable.Range(0, 100_000).Select(_ => Guid.NewGuid()).ToList();
        var source = keys.Take(1000).ToPersistentHashMap(k => k, k => 0);

        var builder = source.ToBuilder();
        foreach (var key in keys)
        {
            builder[key] = 1;
        }

        foreach (var key in keys.Where(_ => random.Next(3) == 0))
        {
            builder.Remove(key);
        }

        var built = builder.ToImmutable();
        builder[keys[0]] = 2; // after ToImmutable the builder copies before it changes
        Assert.Equal(1000, source.Count);
        Assert.All(source, kv => Assert.Equal(0, kv.Value));
        Assert.Equal(builder.Count, built.Count + (built.ContainsKey(keys[0]) ? 0 : 1));
        Assert.NotEqual(2, built.GetValueOrDefault(keys[0]));

        var updated = PersistentHashMap<Guid, int>.Empty;
        foreach (var (key, value) in built)
        {
            updated = updated.Add(key, value);
        }

        Assert.Equal(built.Count, updated.Count);
        Assert.All(updated, kv => Assert.Equal(kv.Value, built[kv.Key]));
        foreach (var key in keys)
        {
            updated = updated.Remove(key);
        }

        Assert.True(updated.IsEmpty);
    }

    [Fact]
    public void A_set_adds_removes_and_keeps_its_old_versions()
    {
        PersistentHashSet<int> empty = [];
        Assert.Same(PersistentHashSet<int>.Empty, empty);
        PersistentHashSet<int> three = [1, 2, 3];
        var four = three.Add(4);
        Assert.Same(four, four.Add(4));
        Assert.Same(four, four.Remove(5));
        Assert.Equal([1, 2, 3], three.Order());
        Assert.Equal([1, 2, 3, 4], four.Order());
        Assert.True(four.Contains(4) && !three.Contains(4));
        Assert.Same(PersistentHashSet<int>.Empty, three.Remove(1).Remove(2).Remove(3));
        var builder = three.ToBuilder();
        Assert.False(builder.Add(1));
        Assert.True(builder.Add(9));
        Assert.Equal([1, 2, 3, 9], builder.ToImmutable().Order());
        Assert.Equal(3, three.Count);
    }

    /// <summary>
    /// The map against Dictionary on random SetItem, Add and Remove sequences, persistent and through a builder, with keys
    /// from a few hashes (collision nodes, pairs pushed down) or many; every version made along the way is checked at the
    /// end, unchanged by what came after it.
    /// </summary>
    [Theory]
    [InlineData(0, 1000)]
    [InlineData(1, 1000)]
    [InlineData(2, 50_000)]
    [InlineData(3, 20_000, 64)] // sorted by radix, keys of one hash many: the sort must keep their order
    public void A_map_built_as_a_whole_is_the_map_its_entries_make_one_by_one(int seed, int count, int distinctHashes = 0)
    {
        // Few distinct hashes among many keys at the small size: collision nodes, and slots shared to the last level.
        var random = new Random(seed);
        var hashes = distinctHashes > 0 ? distinctHashes : count > 1000 ? int.MaxValue : 64;
        var entries = Enumerable.Range(0, count).Select(i => KeyValuePair.Create(new Key(i, random.Next(hashes)), i)).ToList();
        entries.AddRange(entries.Take(count / 10).ToList()); // the same entry twice counts once, as Add does

        var whole = PersistentHashMap.CreateRange<Key, int>(entries.ToArray());
        var builder = PersistentHashMap.CreateBuilder<Key, int>();
        foreach (var (key, value) in entries)
        {
            builder.Add(key, value);
        }

        var oneByOne = builder.ToImmutable();
        Assert.Equal(count, whole.Count);
        Assert.Equal(oneByOne, whole); // the same entries in the same order: the same trie
        Assert.All(entries, e => Assert.Equal(e.Value, whole[e.Key]));
        Assert.Equal(oneByOne.Remove(entries[3].Key).Add(new Key(-1, 5), 5), whole.Remove(entries[3].Key).Add(new Key(-1, 5), 5));
        Assert.Same(PersistentHashMap<Key, int>.Empty, PersistentHashMap.CreateRange<Key, int>([]));
        Assert.Throws<ArgumentException>(() => PersistentHashMap.CreateRange<Key, int>([.. entries, KeyValuePair.Create(entries[7].Key, -7)]));
    }

    [Property(MaxTest = 400)]
    public Property The_map_answers_as_a_Dictionary_and_old_versions_stay_as_they_were() =>
        Prop.ForAll(
            Gen.Choose(1, 4).Zip(Gen.ListOf(Gen.Choose(0, 2).Zip(Gen.Choose(0, 80)).Zip(Gen.Choose(0, 3)))).Zip(Gen.Choose(0, 1)).ToArbitrary(),
            input =>
            {
                var ((spread, ops), viaBuilder) = input;
                Key KeyOf(int id) => new(id, spread switch { 1 => id % 3, 2 => id * 0x01000193, 3 => id >> 2, _ => id });
                var map = PersistentHashMap<Key, int>.Empty;
                var builder = viaBuilder == 1 ? map.ToBuilder() : null;
                var model = new Dictionary<Key, int>();
                var versions = new List<(PersistentHashMap<Key, int> Map, Dictionary<Key, int> Model)>();
                foreach (var ((op, id), value) in ops)
                {
                    var key = KeyOf(id);
                    switch (op)
                    {
                        case 0:
                            model[key] = value;
                            if (builder is null) { map = map.SetItem(key, value); } else { builder[key] = value; }
                            break;
                        case 1:
                            model.Remove(key);
                            if (builder is null) { map = map.Remove(key); } else { builder.Remove(key); }
                            break;
                        default:
                            var clash = model.TryGetValue(key, out var held) && held != value;
                            model.TryAdd(key, value);
                            try
                            {
                                if (builder is null) { map = map.Add(key, value); } else { builder.Add(key, value); }
                                if (clash)
                                {
                                    return false.Label($"Add of {key} over another value did not throw");
                                }
                            }
                            catch (ArgumentException) when (clash)
                            {
                            }

                            break;
                    }

                    if (builder is not null && id % 5 == 0)
                    {
                        map = builder.ToImmutable(); // a version from the middle of a builder's life
                    }

                    if (builder is null || id % 5 == 0)
                    {
                        versions.Add((map, new Dictionary<Key, int>(model)));
                    }
                }

                if (builder is not null)
                {
                    versions.Add((builder.ToImmutable(), new Dictionary<Key, int>(model)));
                }

                foreach (var (version, expected) in versions)
                {
                    var entries = version.ToList();
                    var same = version.Count == expected.Count && entries.Count == expected.Count
                        && entries.All(kv => expected.TryGetValue(kv.Key, out var v) && v == kv.Value)
                        && expected.All(kv => version.TryGetValue(kv.Key, out var v) && v == kv.Value && version[kv.Key] == kv.Value)
                        && Enumerable.Range(0, 81).Select(KeyOf).All(k => version.ContainsKey(k) == expected.ContainsKey(k));
                    if (!same)
                    {
                        return false.Label($"a version of {version.Count} differs from its model of {expected.Count}");
                    }
                }

                return true.ToProperty();
            });

    [Property(MaxTest = 300)]
    public Property Changed_keys_turn_the_older_version_into_the_newer_and_name_no_key_that_stayed() =>
        Prop.ForAll(
            Gen.Choose(1, 4).Zip(Gen.Choose(0, 300)).Zip(Gen.ListOf(Gen.Choose(0, 2).Zip(Gen.Choose(0, 400)).Zip(Gen.Choose(0, 3)))).ToArbitrary(),
            input =>
            {
                var ((spread, size), ops) = input;
                Key KeyOf(int id) => new(id, spread switch { 1 => id % 3, 2 => id * 0x01000193, 3 => id >> 2, _ => id });
                var older = Enumerable.Range(0, size).ToPersistentHashMap(KeyOf, i => i % 4);
                var newer = older;
                foreach (var ((op, id), value) in ops)
                {
                    newer = op == 1 ? newer.Remove(KeyOf(id)) : newer.SetItem(KeyOf(id), value);
                }

                var changed = new HashSet<Key>();
                newer.AddChangedKeys(older, changed);
                var rebuilt = older;
                foreach (var key in changed)
                {
                    rebuilt = newer.TryGetValue(key, out var value) ? rebuilt.SetItem(key, value) : rebuilt.Remove(key);
                }

                var exact = changed.All(k => older.ContainsKey(k) != newer.ContainsKey(k) || older.GetValueOrDefault(k) != newer.GetValueOrDefault(k));
                var same = rebuilt.Count == newer.Count && newer.All(kv => rebuilt.TryGetValue(kv.Key, out var v) && v == kv.Value);
                return (same && exact).Label($"{changed.Count} changed: rebuilt {rebuilt.Count} of {newer.Count}; exact {exact}");
            });

    [Fact]
    public void Versions_that_share_everything_have_no_changed_key()
    {
        var map = Enumerable.Range(0, 10_000).ToPersistentHashMap(i => i, i => i);
        var changed = new List<int>();
        map.AddChangedKeys(map, changed);
        Assert.Empty(changed);
        map.SetItem(77, -1).Remove(5).SetItem(9, 9).AddChangedKeys(map, changed);
        Assert.Equal([5, 77], changed.Order());
        var all = new List<int>();
        map.AddChangedKeys(PersistentHashMap<int, int>.Empty, all);
        PersistentHashMap<int, int>.Empty.AddChangedKeys(map, all);
        Assert.Equal(20_000, all.Count);
    }
}
