// A free-capacity index over the Up hosts, so that a placement decision does not scan every host.
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Placement;

/// <summary>
/// The Up hosts grouped by shape (CPUs, memory, driver) and, within a shape, kept in a persistent B+-tree ordered by
/// (allocated vCPUs, allocated memory, ordinal id) whose nodes know their subtree's ranges. A decision is a
/// branch-and-bound walk of each shape's tree, then <see cref="Placement.ChooseHost"/> over the shapes' winners,
/// so it makes exactly the decisions of the scan (same filters, same weigher, same tie-break) in about
/// O(shapes × log hosts). Immutable: an update copies a leaf and its few ancestors and shares the rest, which suits
/// <see cref="LedgerState"/>, whose speculative states keep their own index for free.
/// </summary>
/// <remarks>
/// Within one shape every host has the same capacities under a policy, so the exact weight
/// (free vCPUs / vCPU capacity + free memory / memory capacity) orders hosts like
/// g = allocated vCPUs × memory capacity + allocated memory × vCPU capacity, reversed: spread wants the least g,
/// pack the greatest, each among the hosts that fit.
/// </remarks>
public sealed partial class CapacityIndex
{
    public static readonly CapacityIndex Empty = new([], 0);

    private readonly Shape[] _shapes;

    private CapacityIndex(Shape[] shapes, int count)
    {
        _shapes = shapes;
        Count = count;
    }

    /// <summary>How many hosts are indexed (the Up ones).</summary>
    public int Count { get; }

    /// <remarks>
    /// Built whole: the Up hosts grouped by shape, each shape's sorted and its tree made bottom-up. A recovery's first
    /// event builds it for every host, and ten thousand inserts, each copying its path, cost about ten times a sort.
    /// </remarks>
    public static CapacityIndex Build(IEnumerable<HostRecord> hosts)
    {
        var shapes = new List<(Shape Shape, List<HostRecord> Hosts)>();
        var count = 0;
        foreach (var host in hosts)
        {
            if (host.State != HostState.Up)
            {
                continue;
            }

            var at = shapes.FindIndex(s => Holds(s.Shape, host));
            if (at < 0)
            {
                shapes.Add((new Shape(host.Cpus, host.MemoryMiB, host.Driver, AcceleratorOf(host), null!) { Labels = host.EffectiveLabels }, []));
                at = shapes.Count - 1;
            }

            shapes[at].Hosts.Add(host);
            count++;
        }

        return new CapacityIndex([.. shapes.Select(s => s.Shape with { Root = Tree.Build(s.Hosts) })], count);
    }

    /// <summary>
    /// The index after <paramref name="before"/> became <paramref name="after"/> (either may be null: a host
    /// registered, or removed). Hosts that are not Up are not indexed, so a state change is an update too.
    /// </summary>
    public CapacityIndex Replace(HostRecord? before, HostRecord? after)
    {
        if (ReferenceEquals(before, after))
        {
            return this;
        }

        var shapes = _shapes;
        var count = Count;
        if (before is { State: HostState.Up })
        {
            var at = Find(shapes, before);
            if (at < 0)
            {
                throw new InvalidOperationException($"host {before.Id} is not in the index as it was given");
            }

            if (after is { State: HostState.Up } && Holds(shapes[at], after))
            {
                // The common case, a host's allocations changed: one new shape and one copy of the array, not two.
                return new CapacityIndex(SetAt(shapes, at, shapes[at] with { Root = Tree.Move(shapes[at].Root, before, after) }), count);
            }

            var root = Tree.Remove(shapes[at].Root, before);
            count--;
            shapes = root is null ? RemoveAt(shapes, at) : SetAt(shapes, at, shapes[at] with { Root = root });
        }

        if (after is { State: HostState.Up })
        {
            var at = Find(shapes, after);
            if (at < 0)
            {
                shapes = [.. shapes, new Shape(after.Cpus, after.MemoryMiB, after.Driver, AcceleratorOf(after), Tree.Insert(null, after))
                {
                    Labels = after.EffectiveLabels,
                }];
            }
            else
            {
                shapes = SetAt(shapes, at, shapes[at] with { Root = Tree.Insert(shapes[at].Root, after) });
            }

            count++;
        }

        return new CapacityIndex(shapes, count);
    }

    /// <summary>The host <see cref="Placement.ChooseHost"/> would choose among the indexed hosts, or null.</summary>
    public HostRecord? ChooseHost(ResourceRequest request, PlacementPolicy policy) => ChooseHost(request, policy, exclude: null);

    /// <param name="exclude">hosts not to choose however well they fit (null or empty: none).</param>
    private HostRecord? ChooseHost(ResourceRequest request, PlacementPolicy policy, IReadOnlySet<HostId>? exclude)
    {
        if (exclude is { Count: 0 })
        {
            exclude = null;
        }

        if (_shapes.Length == 1)
        {
            return Serves(_shapes[0], request) ? Best(_shapes[0], request, policy, exclude) : null;
        }

        HostRecord? best = null;
        foreach (var shape in _shapes)
        {
            if (Serves(shape, request)
                && Best(shape, request, policy, exclude) is { } candidate
                && (best is null || Placement.Compare(candidate, best, request, policy) > 0))
            {
                best = candidate;
            }
        }

        return best;
    }

    /// <summary>
    /// How many indexed hosts the selector holds on: the hosts of a shape share their labels, so it is asked once a
    /// shape, and a shape's hosts are counted from its tree (a pending VM's reason says how many hosts it was matched with).
    /// </summary>
    public int CountSelected(IReadOnlyList<HostSelectorTerm> selector)
    {
        var count = 0;
        foreach (var shape in _shapes)
        {
            if (HostSelectors.Hold(selector, shape.Labels))
            {
                count += Tree.Count(shape.Root);
            }
        }

        return count;
    }

    /// <summary>All indexed hosts, in no particular order (for tests and diagnostics).</summary>
    public IEnumerable<HostRecord> Hosts() => _shapes.SelectMany(s => Tree.Enumerate(s.Root));

    private static HostRecord? Best(Shape shape, ResourceRequest request, PlacementPolicy policy, IReadOnlySet<HostId>? exclude)
    {
        var cpuCapacity = Placement.VcpuCapacity(shape.Cpus, policy);
        var memoryCapacity = Placement.MemoryCapacity(shape.MemoryMiB, policy);
        var search = new Search(
            shape.Root,
            cpuCapacity - (long)request.Vcpus,
            memoryCapacity - request.MemoryMiB,
            Math.Max(1, cpuCapacity),
            Math.Max(1, memoryCapacity),
            policy.Strategy == PlacementStrategy.Pack,
            exclude);
        if (search.MaxVcpus < 0 || search.MaxMemory < 0)
        {
            return null;
        }

        search.Run(shape.Root);
        return search.Best;
    }

    private static bool Serves(Shape shape, ResourceRequest request) =>
        (request.Driver is null || request.Driver == shape.Driver) && (request.Accelerator is null || request.Accelerator == shape.Accelerator)
        && (request.Selector is null || HostSelectors.Hold(request.Selector, shape.Labels));

    private static string AcceleratorOf(HostRecord host) => host.Accelerator?.Kind ?? "";

    private static int Find(Shape[] shapes, HostRecord host)
    {
        for (var i = 0; i < shapes.Length; i++)
        {
            if (Holds(shapes[i], host))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Whether the host is of this shape (and so belongs in its tree).</summary>
    private static bool Holds(Shape shape, HostRecord host) =>
        shape.Cpus == host.Cpus && shape.MemoryMiB == host.MemoryMiB && shape.Driver == host.Driver
        && shape.Accelerator == AcceleratorOf(host) && Vms.VmLabels.Same(shape.Labels, host.EffectiveLabels);

    private static Shape[] SetAt(Shape[] shapes, int at, Shape shape)
    {
        // Not Array.Clone: that is MemberwiseClone, which takes the runtime's slow allocation path at every host update.
        var copy = new Shape[shapes.Length];
        shapes.AsSpan().CopyTo(copy);
        copy[at] = shape;
        return copy;
    }

    private static Shape[] RemoveAt(Shape[] shapes, int at) => [.. shapes[..at], .. shapes[(at + 1)..]];

    // Hosts of one shape share a driver, an accelerator and their labels too, so that a VM that names either, or selects
    // hosts by label, skips the other shapes whole: the index by label that selectors use.
    private sealed record Shape(int Cpus, long MemoryMiB, string Driver, string Accelerator, Tree.Node Root)
    {
        public IReadOnlyDictionary<string, string> Labels { get; init; } = Vms.VmLabels.None;
    }

    /// <summary>Branch and bound over one shape's tree; ties on g go to the least ordinal id.</summary>
    /// <param name="exclude">hosts skipped as if they did not fit (the bounds stay valid: they only over-promise).</param>
    private struct Search(Tree.Node root, long maxVcpus, long maxMemory, long cpuCapacity, long memoryCapacity, bool pack, IReadOnlySet<HostId>? exclude)
    {
        public readonly long MaxVcpus = maxVcpus;
        public readonly long MaxMemory = maxMemory;
        public HostRecord? Best;
        private Int128 _bestG;

        public void Run(Tree.Node node)
        {
            if (node.MinVcpus > MaxVcpus || node.MinMemory > MaxMemory)
            {
                return; // nothing below fits
            }

            if (Best is not null)
            {
                // The best g any host below could have, given what fits.
                var bound = pack
                    ? G(Math.Min(node.MaxVcpus, MaxVcpus), Math.Min(node.MaxMemory, MaxMemory))
                    : G(node.MinVcpus, node.MinMemory);
                var worse = pack ? bound < _bestG : bound > _bestG;
                if (worse || (bound == _bestG && string.CompareOrdinal(node.MinId, Best.Id.Value) >= 0))
                {
                    return;
                }
            }

            if (node is Tree.Leaf leaf)
            {
                Scan(leaf);
                return;
            }

            // Children in key order, so their least vCPUs never decrease: those past the first that is too full are
            // too full too. Pack starts left of them, spread stops at them.
            var children = ((Tree.Inner)node).Children;
            if (pack)
            {
                for (var i = LastWithin(children); i >= 0; i--)
                {
                    Run(children[i]);
                }
            }
            else
            {
                foreach (var child in children)
                {
                    if (child.MinVcpus > MaxVcpus)
                    {
                        break;
                    }

                    Run(child);
                }
            }
        }

        /// <summary>The last child whose least vCPUs fit (-1 when none).</summary>
        private readonly int LastWithin(Tree.Node[] children)
        {
            int lo = 0, hi = children.Length;
            while (lo < hi)
            {
                var mid = (lo + hi) >>> 1;
                if (children[mid].MinVcpus <= MaxVcpus)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid;
                }
            }

            return lo - 1;
        }

        private void Scan(Tree.Leaf leaf)
        {
            // Hosts in key order: vCPUs never decrease, so the hosts still to come can do no better than the one in hand
            // with the leaf's best memory; once that is worse than the best found, none of them can win (equal still may:
            // a lesser id).
            var hosts = leaf.Hosts;
            if (pack)
            {
                var memory = Math.Min(leaf.MaxMemory, MaxMemory);
                for (var i = hosts.Length - 1; i >= 0; i--)
                {
                    var host = hosts[i];
                    if (host.AllocatedVcpus > MaxVcpus)
                    {
                        continue;
                    }

                    if (Best is not null && G(host.AllocatedVcpus, memory) < _bestG)
                    {
                        return;
                    }

                    Visit(host);
                }
            }
            else
            {
                foreach (var host in hosts)
                {
                    if (host.AllocatedVcpus > MaxVcpus || (Best is not null && G(host.AllocatedVcpus, leaf.MinMemory) > _bestG))
                    {
                        return;
                    }

                    Visit(host);
                }
            }
        }

        private void Visit(HostRecord host)
        {
            if (host.AllocatedVcpus > MaxVcpus || host.AllocatedMemoryMiB > MaxMemory || exclude?.Contains(host.Id) == true)
            {
                return;
            }

            var g = G(host.AllocatedVcpus, host.AllocatedMemoryMiB);
            var better = Best is null || (pack ? g > _bestG : g < _bestG)
                || (g == _bestG && string.CompareOrdinal(host.Id.Value, Best.Id.Value) < 0);
            if (better)
            {
                _bestG = g;
                // Pack walks from the right: jump to the least id of this (vCPUs, memory) group at once rather
                // than improving on the tie one host at a time (thousands of empty hosts tie), past excluded hosts.
                Best = !pack ? host
                    : exclude is null ? Tree.First(root, host.AllocatedVcpus, host.AllocatedMemoryMiB)
                    : Tree.FirstAdmitted(root, host.AllocatedVcpus, host.AllocatedMemoryMiB, exclude) ?? host;
            }
        }

        private readonly Int128 G(long vcpus, long memory) => (Int128)vcpus * memoryCapacity + (Int128)memory * cpuCapacity;
    }

    /// <summary>
    /// A persistent B+-tree of hosts keyed by (allocated vCPUs, allocated memory, ordinal id): leaves hold up to
    /// <see cref="MaxEntries"/> hosts in key order, inner nodes as many children, and every node the ranges of its
    /// subtree. Wide nodes rather than a binary tree: an update copies a few small arrays instead of a path of a dozen
    /// nodes, and the whole tree is a few hundred objects, which is what the garbage collector pays for (a persistent
    /// tree's newest nodes are the ones that survive a collection).
    /// </summary>
    internal static class Tree
    {
        /// <summary>
        /// At 10,000 hosts, 32 makes a tree three levels deep rather than four: a move copies one node less on each of
        /// its two paths, for arrays twice as long. Measured on the bench's workload (choose, then move): an update took
        /// 0.83-0.93 µs at 32, 1.00-1.21 at 16, 1.5-1.6 at 64 and 1.8-1.9 at 8.
        /// </summary>
        public const int MaxEntries = 32;

        /// <summary>A node with fewer entries (not the root) merges with a neighbour.</summary>
        public const int MinEntries = MaxEntries / 4;

        internal abstract class Node
        {
            private string? _minId;

            /// <summary>The least and the greatest host of the subtree (null in an empty leaf, which only a root can be).</summary>
            public HostRecord First { get; protected set; } = null!;

            public HostRecord Last { get; protected set; } = null!;

            public int MinVcpus { get; protected set; }
            public int MaxVcpus { get; protected set; }
            public long MinMemory { get; protected set; } = long.MaxValue;
            public long MaxMemory { get; protected set; } = long.MinValue;

            /// <summary>Hosts in a leaf, children in an inner node.</summary>
            public abstract int Entries { get; }

            /// <summary>
            /// The least ordinal id below, for ties in the search. Computed when first asked (most nodes never are, and
            /// string comparisons are what an update would otherwise spend); a race computes the same string twice.
            /// </summary>
            public string MinId => _minId ??= ComputeMinId();

            protected abstract string ComputeMinId();

            protected void SetRange(HostRecord first, HostRecord last)
            {
                First = first;
                Last = last;
                MinVcpus = first.AllocatedVcpus;
                MaxVcpus = last.AllocatedVcpus;
            }
        }

        internal sealed class Leaf : Node
        {
            /// <summary>A leaf whose memory range is known already (it saves a pass over every host record).</summary>
            public Leaf(HostRecord[] hosts, long minMemory, long maxMemory)
            {
                Hosts = hosts;
                SetRange(hosts[0], hosts[^1]);
                MinMemory = minMemory;
                MaxMemory = maxMemory;
            }

            public Leaf(HostRecord[] hosts)
            {
                Hosts = hosts;
                if (hosts.Length == 0)
                {
                    return;
                }

                SetRange(hosts[0], hosts[^1]);
                long min = long.MaxValue, max = long.MinValue;
                foreach (var host in hosts)
                {
                    min = Math.Min(min, host.AllocatedMemoryMiB);
                    max = Math.Max(max, host.AllocatedMemoryMiB);
                }

                MinMemory = min;
                MaxMemory = max;
            }

            /// <summary>In key order.</summary>
            public HostRecord[] Hosts { get; }

            public override int Entries => Hosts.Length;

            protected override string ComputeMinId()
            {
                var min = Hosts[0].Id.Value;
                for (var i = 1; i < Hosts.Length; i++)
                {
                    if (string.CompareOrdinal(Hosts[i].Id.Value, min) < 0)
                    {
                        min = Hosts[i].Id.Value;
                    }
                }

                return min;
            }
        }

        internal sealed class Inner : Node
        {
            public Inner(Node[] children)
            {
                Children = children;
                SetRange(children[0].First, children[^1].Last);
                long min = long.MaxValue, max = long.MinValue;
                foreach (var child in children)
                {
                    min = Math.Min(min, child.MinMemory);
                    max = Math.Max(max, child.MaxMemory);
                }

                MinMemory = min;
                MaxMemory = max;
            }

            /// <summary>In key order, all of the same depth.</summary>
            public Node[] Children { get; }

            public override int Entries => Children.Length;

            protected override string ComputeMinId()
            {
                var min = Children[0].MinId;
                for (var i = 1; i < Children.Length; i++)
                {
                    if (string.CompareOrdinal(Children[i].MinId, min) < 0)
                    {
                        min = Children[i].MinId;
                    }
                }

                return min;
            }
        }

        public static int Compare(HostRecord a, HostRecord b)
        {
            var c = a.AllocatedVcpus.CompareTo(b.AllocatedVcpus);
            if (c != 0)
            {
                return c;
            }

            c = a.AllocatedMemoryMiB.CompareTo(b.AllocatedMemoryMiB);
            return c != 0 ? c : string.CompareOrdinal(a.Id.Value, b.Id.Value);
        }

        /// <summary>Compares a host's allocations (not its id) with these.</summary>
        private static int CompareAllocations(HostRecord host, int vcpus, long memory) =>
            host.AllocatedVcpus != vcpus ? host.AllocatedVcpus.CompareTo(vcpus) : host.AllocatedMemoryMiB.CompareTo(memory);

        /// <summary>The first host not less than <paramref name="host"/> (the length when none).</summary>
        private static int Position(HostRecord[] hosts, HostRecord host)
        {
            int lo = 0, hi = hosts.Length;
            while (lo < hi)
            {
                var mid = (lo + hi) >>> 1;
                if (Compare(hosts[mid], host) < 0)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid;
                }
            }

            return lo;
        }

        /// <summary>The child whose range holds <paramref name="host"/>'s place: the first that ends at or after it, else the last.</summary>
        private static int Route(Node[] children, HostRecord host)
        {
            int lo = 0, hi = children.Length - 1;
            while (lo < hi)
            {
                var mid = (lo + hi) >>> 1;
                if (Compare(children[mid].Last, host) < 0)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid;
                }
            }

            return lo;
        }

        /// <summary>The least host with exactly these allocations (there is at least one).</summary>
        public static HostRecord First(Node node, int vcpus, long memory)
        {
            while (node is Inner inner)
            {
                var children = inner.Children;
                var i = 0;
                while (i < children.Length - 1 && CompareAllocations(children[i].Last, vcpus, memory) < 0)
                {
                    i++;
                }

                node = children[i];
            }

            var hosts = ((Leaf)node).Hosts;
            var at = 0;
            while (CompareAllocations(hosts[at], vcpus, memory) < 0)
            {
                at++;
            }

            return hosts[at];
        }

        /// <summary>The least host with exactly these allocations that is not excluded, or null.</summary>
        public static HostRecord? FirstAdmitted(Node node, int vcpus, long memory, IReadOnlySet<HostId> exclude)
        {
            if (CompareAllocations(node.First, vcpus, memory) > 0 || CompareAllocations(node.Last, vcpus, memory) < 0)
            {
                return null;
            }

            if (node is Leaf leaf)
            {
                foreach (var host in leaf.Hosts)
                {
                    if (CompareAllocations(host, vcpus, memory) == 0 && !exclude.Contains(host.Id))
                    {
                        return host;
                    }
                }

                return null;
            }

            foreach (var child in ((Inner)node).Children)
            {
                if (FirstAdmitted(child, vcpus, memory, exclude) is { } found)
                {
                    return found;
                }
            }

            return null;
        }

        /// <summary>
        /// The tree of <paramref name="hosts"/> (each once), made bottom-up: sorted, cut into leaves three quarters full
        /// (room for the moves that follow before a split), then into their parents the same way, up to one root.
        /// </summary>
        public static Node Build(IEnumerable<HostRecord> hosts)
        {
            var sorted = hosts.ToArray();
            Array.Sort(sorted, Compare);
            Node[] level = [.. Cut(sorted.Length).Select(r => new Leaf(sorted[r.Start..r.End]))];
            while (level.Length > 1)
            {
                var children = level;
                level = [.. Cut(children.Length).Select(r => new Inner(children[r.Start..r.End]))];
            }

            return level.Length == 0 ? new Leaf([]) : level[0];
        }

        /// <summary>
        /// <paramref name="count"/> items cut into the fewest runs of at most three quarters of <see cref="MaxEntries"/>,
        /// even in size: more than one run only when there are more items, so each holds at least
        /// <see cref="MinEntries"/>.
        /// </summary>
        private static IEnumerable<(int Start, int End)> Cut(int count)
        {
            const int perNode = MaxEntries * 3 / 4;
            var runs = (count + perNode - 1) / perNode;
            for (var i = 0; i < runs; i++)
            {
                yield return ((int)((long)i * count / runs), (int)((long)(i + 1) * count / runs));
            }
        }

        /// <summary>The tree with <paramref name="host"/> added (or put in place of the host with its key).</summary>
        public static Node Insert(Node? root, HostRecord host)
        {
            if (root is null || root.Entries == 0)
            {
                return new Leaf([host]);
            }

            var left = Insert(root, host, out var right);
            return right is null ? left : new Inner([left, right]);
        }

        /// <summary>The tree without <paramref name="host"/>, which it must hold; null when that was the last.</summary>
        public static Node? Remove(Node root, HostRecord host)
        {
            var node = RemoveFrom(root, host);
            while (node is Inner { Children.Length: 1 } inner)
            {
                node = inner.Children[0];
            }

            return node.Entries == 0 ? null : node;
        }

        /// <summary>The tree with <paramref name="before"/> (which it holds) replaced by <paramref name="after"/>.</summary>
        public static Node Move(Node root, HostRecord before, HostRecord after)
        {
            var node = Move(root, before, after, out var split);
            if (split is not null)
            {
                return new Inner([node, split]);
            }

            while (node is Inner { Children.Length: 1 } inner)
            {
                node = inner.Children[0];
            }

            return node;
        }

        private static Node Insert(Node node, HostRecord host, out Node? split)
        {
            if (node is Leaf leaf)
            {
                var hosts = leaf.Hosts;
                var at = Position(hosts, host);
                if (at < hosts.Length && Compare(hosts[at], host) == 0)
                {
                    split = null;
                    return LeafAfter(With(hosts, at, host), leaf, hosts[at], host);
                }

                var next = Inserted(hosts, at, host);
                if (next.Length <= MaxEntries)
                {
                    split = null;
                    return LeafAfter(next, leaf, null, host);
                }

                return SplitIfFull(next, out split);
            }

            var children = ((Inner)node).Children;
            var i = Route(children, host);
            var child = Insert(children[i], host, out var extra);
            if (extra is null)
            {
                split = null;
                return new Inner(With(children, i, child));
            }

            var grown = Inserted(children, i + 1, extra);
            grown[i] = child;
            return SplitIfFull(grown, out split);
        }

        // The subtree without the host; it may be left with too few entries (its parent merges it) or, as a root, with one
        // child (Remove collapses it) or none.
        private static Node RemoveFrom(Node node, HostRecord host)
        {
            if (node is Leaf leaf)
            {
                var hosts = leaf.Hosts;
                var at = Find(hosts, host);
                var next = Removed(hosts, at);
                return next.Length == 0 ? new Leaf(next) : LeafAfter(next, leaf, host, null);
            }

            var children = ((Inner)node).Children;
            var i = Route(children, host);
            return Rebuild(With(children, i, RemoveFrom(children[i], host)), i, out _); // fewer entries: never splits
        }

        // The subtree with before replaced by after, both of whose places are in it. It holds as many hosts as before but may
        // come back split in two, or with too few entries (its parent merges it). Where the two places part, the host
        // leaves one child and joins another, and this node is copied once for both.
        private static Node Move(Node node, HostRecord before, HostRecord after, out Node? split)
        {
            if (node is Leaf leaf)
            {
                split = null;
                return LeafAfter(Moved(leaf.Hosts, before, after), leaf, before, after);
            }

            var children = ((Inner)node).Children;
            var from = Route(children, before);
            var to = Route(children, after);
            if (from == to)
            {
                var child = Move(children[from], before, after, out var extra);
                if (extra is null)
                {
                    return Rebuild(With(children, from, child), from, out split);
                }

                var grown = Inserted(children, from + 1, extra);
                grown[from] = child;
                return SplitIfFull(grown, out split);
            }

            var left = RemoveFrom(children[from], before);
            var joined = Insert(children[to], after, out var added);
            Node[] next;
            if (added is null)
            {
                next = With(children, from, left);
                next[to] = joined;
            }
            else
            {
                next = Inserted(children, to + 1, added);
                next[to] = joined;
                from = from < to ? from : from + 1;
                next[from] = left;
            }

            return Rebuild(next, from, out split);
        }

        /// <summary>Where the host is in the leaf; it must be there.</summary>
        private static int Find(HostRecord[] hosts, HostRecord host)
        {
            var at = Position(hosts, host);
            if (at == hosts.Length || Compare(hosts[at], host) != 0)
            {
                throw new InvalidOperationException($"host {host.Id} is not in the index as it was given");
            }

            return at;
        }

        /// <summary>The hosts with <paramref name="before"/> taken out and <paramref name="after"/> put in its place in key order.</summary>
        private static HostRecord[] Moved(HostRecord[] hosts, HostRecord before, HostRecord after)
        {
            var from = Find(hosts, before);
            var to = Position(hosts, after);
            var next = new HostRecord[hosts.Length];
            if (to <= from)
            {
                hosts.AsSpan(0, to).CopyTo(next);
                next[to] = after;
                hosts.AsSpan(to, from - to).CopyTo(next.AsSpan(to + 1));
            }
            else
            {
                hosts.AsSpan(0, from).CopyTo(next);
                hosts.AsSpan(from + 1, to - from - 1).CopyTo(next.AsSpan(from));
                next[to - 1] = after;
                hosts.AsSpan(to).CopyTo(next.AsSpan(to));
                return next;
            }

            hosts.AsSpan(from + 1).CopyTo(next.AsSpan(from + 1));
            return next;
        }

        /// <summary>
        /// The leaf of <paramref name="hosts"/>, which are <paramref name="old"/>'s less <paramref name="gone"/> and plus
        /// <paramref name="come"/> (either may be null): its memory range follows from the old one unless the host that
        /// left held an end of it.
        /// </summary>
        private static Leaf LeafAfter(HostRecord[] hosts, Leaf old, HostRecord? gone, HostRecord? come)
        {
            if (gone is not null && (gone.AllocatedMemoryMiB <= old.MinMemory || gone.AllocatedMemoryMiB >= old.MaxMemory))
            {
                return new Leaf(hosts);
            }

            var min = old.MinMemory;
            var max = old.MaxMemory;
            if (come is not null)
            {
                min = Math.Min(min, come.AllocatedMemoryMiB);
                max = Math.Max(max, come.AllocatedMemoryMiB);
            }

            return new Leaf(hosts, min, max);
        }

        /// <summary>The inner node of <paramref name="children"/>, the one at <paramref name="changed"/> merged with a neighbour when it has too few entries.</summary>
        private static Node Rebuild(Node[] children, int changed, out Node? split)
        {
            if (children.Length > 1 && children[changed].Entries < MinEntries)
            {
                // Merge with a neighbour, and split the two evenly again when they are too many for one.
                var left = changed > 0 ? changed - 1 : changed;
                var merged = Merge(children[left], children[left + 1], out var rest);
                var next = new Node[children.Length - (rest is null ? 1 : 0)];
                children.AsSpan(0, left).CopyTo(next);
                next[left] = merged;
                if (rest is not null)
                {
                    next[left + 1] = rest;
                }

                children.AsSpan(left + 2).CopyTo(next.AsSpan(left + (rest is null ? 1 : 2)));
                children = next;
            }

            return SplitIfFull(children, out split);
        }

        private static Node Merge(Node a, Node b, out Node? rest) => a is Leaf left
            ? SplitIfFull([.. left.Hosts, .. ((Leaf)b).Hosts], out rest)
            : SplitIfFull([.. ((Inner)a).Children, .. ((Inner)b).Children], out rest);

        private static Node SplitIfFull(HostRecord[] hosts, out Node? rest)
        {
            if (hosts.Length <= MaxEntries)
            {
                rest = null;
                return new Leaf(hosts);
            }

            var half = hosts.Length / 2;
            rest = new Leaf(hosts[half..]);
            return new Leaf(hosts[..half]);
        }

        private static Node SplitIfFull(Node[] children, out Node? rest)
        {
            if (children.Length <= MaxEntries)
            {
                rest = null;
                return new Inner(children);
            }

            var half = children.Length / 2;
            rest = new Inner(children[half..]);
            return new Inner(children[..half]);
        }

        private static T[] With<T>(T[] items, int at, T item)
        {
            // Not Array.Clone: that is MemberwiseClone, which takes the runtime's slow allocation path.
            var copy = new T[items.Length];
            items.AsSpan().CopyTo(copy);
            copy[at] = item;
            return copy;
        }

        private static T[] Inserted<T>(T[] items, int at, T item)
        {
            var copy = new T[items.Length + 1];
            items.AsSpan(0, at).CopyTo(copy);
            copy[at] = item;
            items.AsSpan(at).CopyTo(copy.AsSpan(at + 1));
            return copy;
        }

        private static T[] Removed<T>(T[] items, int at)
        {
            var copy = new T[items.Length - 1];
            items.AsSpan(0, at).CopyTo(copy);
            items.AsSpan(at + 1).CopyTo(copy.AsSpan(at));
            return copy;
        }

        /// <summary>The hosts under the node.</summary>
        public static int Count(Node node)
        {
            if (node is Leaf leaf)
            {
                return leaf.Hosts.Length;
            }

            var count = 0;
            foreach (var child in ((Inner)node).Children)
            {
                count += Count(child);
            }

            return count;
        }

        public static IEnumerable<HostRecord> Enumerate(Node? node) => node switch
        {
            null => [],
            Leaf leaf => leaf.Hosts,
            _ => ((Inner)node).Children.SelectMany(Enumerate),
        };
    }
}
