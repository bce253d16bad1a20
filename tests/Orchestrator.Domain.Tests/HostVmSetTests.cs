using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Tests;

/// <summary>A host's VMs are a sorted array while few and a hash set beyond: both must be the same set.</summary>
public sealed class HostVmSetTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Adds_and_removes_across_the_array_limit_keep_the_same_set_as_a_hash_set(int seed)
    {
        var random = new Random(seed);
        var ids = Enumerable.Range(0, HostVmSet.MostInArray * 2).Select(_ => VmId.New()).ToArray();
        var expected = new HashSet<VmId>();
        var set = HostVmSet.Empty;
        // Grow past the limit, shrink below half of it, and grow again: each representation, and each conversion.
        foreach (var (adds, steps) in new[] { (90, 3000), (10, 3000), (90, 3000) })
        {
            for (var step = 0; step < steps; step++)
            {
                var id = ids[random.Next(ids.Length)];
                var before = set;
                if (random.Next(100) < adds)
                {
                    set = set.Add(id);
                    Assert.Equal(expected.Add(id), !ReferenceEquals(before, set));
                }
                else
                {
                    set = set.Remove(id);
                    Assert.Equal(expected.Remove(id), !ReferenceEquals(before, set));
                }

                Assert.Equal(expected.Count, set.Count);
                Assert.Equal(expected.Contains(id), set.Contains(id));
            }

            Assert.Equal(expected.OrderBy(v => v.Value), set.OrderBy(v => v.Value));
        }
    }

    [Fact]
    public void Few_vms_enumerate_in_id_order_whatever_their_history()
    {
        var ids = Enumerable.Range(0, 50).Select(_ => VmId.New()).ToList();

        var added = ids.Aggregate(HostVmSet.Empty, (set, id) => set.Add(id));
        var built = HostVmSet.Of([.. Enumerable.Reverse(ids)]);

        Assert.Equal(ids.OrderBy(v => v.Value), added);
        Assert.Equal(ids.OrderBy(v => v.Value), built);
        Assert.Same(HostVmSet.Empty, ids.Aggregate(added, (set, id) => set.Remove(id)));
    }
}
