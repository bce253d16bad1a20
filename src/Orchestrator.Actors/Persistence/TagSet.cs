using System.Collections;
using System.Collections.Immutable;

namespace Orchestrator.Actors.Persistence;

/// <summary>
/// An event's few tags as the array they were made in, for <see cref="Akka.Persistence.Journal.Tagged"/>: its other
/// constructor builds an <see cref="ImmutableHashSet{T}"/> of them for every event persisted (a few hundred bytes per
/// event for one or two strings), and <see cref="GroupCommitJournal"/> takes the array back as it is. The rare changes
/// go through an <see cref="ImmutableHashSet{T}"/>.
/// </summary>
public sealed class TagSet : IImmutableSet<string>
{
    public static readonly TagSet Empty = new([]);

    private TagSet(string[] tags) => Tags = tags;

    /// <summary>The tags, each once (the caller must not change the array).</summary>
    internal string[] Tags { get; }

    /// <param name="tags">distinct tags; the set keeps the array itself</param>
    public static TagSet Of(string[] tags)
    {
        if (tags.Length == 0)
        {
            return Empty;
        }

        for (var i = 1; i < tags.Length; i++)
        {
            if (Array.IndexOf(tags, tags[i], 0, i) >= 0)
            {
                throw new ArgumentException($"tag '{tags[i]}' is given twice", nameof(tags));
            }
        }

        return new TagSet(tags);
    }

    public int Count => Tags.Length;

    public bool Contains(string value) => Array.IndexOf(Tags, value) >= 0;

    public IEnumerator<string> GetEnumerator() => ((IEnumerable<string>)Tags).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public bool TryGetValue(string equalValue, out string actualValue)
    {
        var i = Array.IndexOf(Tags, equalValue);
        actualValue = i >= 0 ? Tags[i] : equalValue;
        return i >= 0;
    }

    public IImmutableSet<string> Add(string value) => Hashed.Add(value);

    public IImmutableSet<string> Clear() => Empty;

    public IImmutableSet<string> Except(IEnumerable<string> other) => Hashed.Except(other);

    public IImmutableSet<string> Intersect(IEnumerable<string> other) => Hashed.Intersect(other);

    public IImmutableSet<string> Remove(string value) => Hashed.Remove(value);

    public IImmutableSet<string> SymmetricExcept(IEnumerable<string> other) => Hashed.SymmetricExcept(other);

    public IImmutableSet<string> Union(IEnumerable<string> other) => Hashed.Union(other);

    public bool IsProperSubsetOf(IEnumerable<string> other) => Hashed.IsProperSubsetOf(other);

    public bool IsProperSupersetOf(IEnumerable<string> other) => Hashed.IsProperSupersetOf(other);

    public bool IsSubsetOf(IEnumerable<string> other) => Hashed.IsSubsetOf(other);

    public bool IsSupersetOf(IEnumerable<string> other) => Hashed.IsSupersetOf(other);

    public bool Overlaps(IEnumerable<string> other) => Hashed.Overlaps(other);

    public bool SetEquals(IEnumerable<string> other) => Hashed.SetEquals(other);

    private ImmutableHashSet<string> Hashed => ImmutableHashSet.CreateRange(Tags);
}
