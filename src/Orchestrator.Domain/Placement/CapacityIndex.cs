// A free-capacity index over the Up hosts, so that a placement decision does not scan every host.
using Orchestrator.Domain.Ledger;

namespace Orchestrator.Domain.Placement;

/// <summary>
/// The Up hosts grouped by shape (CPUs, memory, driver) and, within a shape, kept in a persistent AVL tree ordered by
/// (allocated vCPUs, allocated memory, ordinal id) whose nodes know their subtree's ranges. A decision is a
/// branch-and-bound walk of each shape's tree, then <see cref="Placement.ChooseHost"/> over the shapes' winners,
/// so it makes exactly the decisions of the scan (same filters, same weigher, same tie-break) in about
/// O(shapes × log hosts). Immutable: an update copies one path (O(log hosts)) and shares the rest, which suits
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

    public static CapacityIndex Build(IEnumerable<HostRecord> hosts)
    {
        var index = Empty;
        foreach (var host in hosts)
        {
            index = index.Replace(null, host);
        }

        return index;
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
            if (at < 0 || !Tree.Contains(shapes[at].Root, before))
            {
                throw new InvalidOperationException($"host {before.Id} is not in the index as it was given");
            }

            if (after is { State: HostState.Up } && Holds(shapes[at], after))
            {
                // The common case, a host's allocations changed: one new shape and one copy of the array, not two, and
                // the path the host's old and new places share copied once.
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

    /// <summary>All indexed hosts, in no particular order (for tests and diagnostics).</summary>
    public IEnumerable<HostRecord> Hosts() => _shapes.SelectMany(s => Tree.Enumerate(s.Root));

    private static HostRecord? Best(Shape shape, ResourceRequest request, PlacementPolicy policy, IReadOnlySet<HostId>? exclude)
    {
        var cpuCapacity = Placement.VcpuCapacity(shape.Cpus, policy);
        var memoryCapacity = Placement.MemoryCapacity(shape.MemoryMiB, policy);
        var search = new Search(
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

        search.Run(shape.Root, shape.Root);
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
    private struct Search(long maxVcpus, long maxMemory, long cpuCapacity, long memoryCapacity, bool pack, IReadOnlySet<HostId>? exclude)
    {
        public readonly long MaxVcpus = maxVcpus;
        public readonly long MaxMemory = maxMemory;
        public HostRecord? Best;
        private Int128 _bestG;

        public void Run(Tree.Node root, Tree.Node? node)
        {
            if (node is null || node.MinVcpus > MaxVcpus || node.MinMemory > MaxMemory)
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

            if (pack)
            {
                Run(root, node.Right);
                Visit(root, node);
                Run(root, node.Left);
            }
            else
            {
                Run(root, node.Left);
                Visit(root, node);
                Run(root, node.Right);
            }
        }

        private void Visit(Tree.Node root, Tree.Node node)
        {
            var host = node.Host;
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

    /// <summary>A persistent AVL tree of hosts keyed by (allocated vCPUs, allocated memory, ordinal id).</summary>
    internal static class Tree
    {
        internal sealed class Node
        {
            public Node(HostRecord host, Node? left, Node? right)
            {
                Host = host;
                Left = left;
                Right = right;
                Height = Math.Max(left?.Height ?? 0, right?.Height ?? 0) + 1;
                MinVcpus = left?.MinVcpus ?? host.AllocatedVcpus;
                MaxVcpus = right?.MaxVcpus ?? host.AllocatedVcpus;
                MinMemory = Math.Min(host.AllocatedMemoryMiB, Math.Min(left?.MinMemory ?? long.MaxValue, right?.MinMemory ?? long.MaxValue));
                MaxMemory = Math.Max(host.AllocatedMemoryMiB, Math.Max(left?.MaxMemory ?? long.MinValue, right?.MaxMemory ?? long.MinValue));
                var minId = host.Id.Value;
                if (left is not null && string.CompareOrdinal(left.MinId, minId) < 0)
                {
                    minId = left.MinId;
                }

                if (right is not null && string.CompareOrdinal(right.MinId, minId) < 0)
                {
                    minId = right.MinId;
                }

                MinId = minId;
            }

            public HostRecord Host { get; }
            public Node? Left { get; }
            public Node? Right { get; }
            public int Height { get; }
            public int MinVcpus { get; }
            public int MaxVcpus { get; }
            public long MinMemory { get; }
            public long MaxMemory { get; }
            public string MinId { get; }
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

        /// <summary>The least host with exactly these allocations (there is at least one).</summary>
        public static HostRecord First(Node root, int vcpus, long memory)
        {
            HostRecord? found = null;
            Node? node = root;
            while (node is not null)
            {
                var h = node.Host;
                var c = h.AllocatedVcpus != vcpus ? h.AllocatedVcpus.CompareTo(vcpus) : h.AllocatedMemoryMiB.CompareTo(memory);
                if (c >= 0)
                {
                    if (c == 0)
                    {
                        found = h;
                    }

                    node = node.Left;
                }
                else
                {
                    node = node.Right;
                }
            }

            return found!;
        }

        /// <summary>The least host with exactly these allocations that is not excluded, or null.</summary>
        public static HostRecord? FirstAdmitted(Node? node, int vcpus, long memory, IReadOnlySet<HostId> exclude)
        {
            if (node is null)
            {
                return null;
            }

            var h = node.Host;
            var c = h.AllocatedVcpus != vcpus ? h.AllocatedVcpus.CompareTo(vcpus) : h.AllocatedMemoryMiB.CompareTo(memory);
            if (c != 0)
            {
                return FirstAdmitted(c < 0 ? node.Right : node.Left, vcpus, memory, exclude);
            }

            return FirstAdmitted(node.Left, vcpus, memory, exclude)
                   ?? (exclude.Contains(h.Id) ? FirstAdmitted(node.Right, vcpus, memory, exclude) : h);
        }

        public static bool Contains(Node? node, HostRecord host)
        {
            while (node is not null)
            {
                var c = Compare(host, node.Host);
                if (c == 0)
                {
                    return true;
                }

                node = c < 0 ? node.Left : node.Right;
            }

            return false;
        }

        public static Node Insert(Node? node, HostRecord host)
        {
            if (node is null)
            {
                return new Node(host, null, null);
            }

            var c = Compare(host, node.Host);
            if (c == 0)
            {
                return new Node(host, node.Left, node.Right);
            }

            return c < 0
                ? Balance(node.Host, Insert(node.Left, host), node.Right)
                : Balance(node.Host, node.Left, Insert(node.Right, host));
        }

        /// <summary>
        /// The tree with <paramref name="before"/> (which it holds) replaced by <paramref name="after"/>: as Remove then
        /// Insert, but the nodes above the point where the two places part are copied once, not twice.
        /// </summary>
        public static Node Move(Node node, HostRecord before, HostRecord after)
        {
            var cb = Compare(before, node.Host);
            var ca = Compare(after, node.Host);
            if (cb < 0 && ca < 0)
            {
                return Balance(node.Host, Move(node.Left!, before, after), node.Right);
            }

            if (cb > 0 && ca > 0)
            {
                return Balance(node.Host, node.Left, Move(node.Right!, before, after));
            }

            // The places part here (or the host is this node): within this subtree its height changes by at most one, so
            // the ancestors' Balance still holds.
            return Insert(Remove(node, before), after);
        }

        public static Node? Remove(Node? node, HostRecord host)
        {
            if (node is null)
            {
                return null;
            }

            var c = Compare(host, node.Host);
            if (c < 0)
            {
                return Balance(node.Host, Remove(node.Left, host), node.Right);
            }

            if (c > 0)
            {
                return Balance(node.Host, node.Left, Remove(node.Right, host));
            }

            if (node.Left is null)
            {
                return node.Right;
            }

            if (node.Right is null)
            {
                return node.Left;
            }

            var successor = node.Right;
            while (successor.Left is not null)
            {
                successor = successor.Left;
            }

            return Balance(successor.Host, node.Left, Remove(node.Right, successor.Host));
        }

        public static IEnumerable<HostRecord> Enumerate(Node? node)
        {
            var stack = new Stack<Node>();
            while (node is not null || stack.Count > 0)
            {
                while (node is not null)
                {
                    stack.Push(node);
                    node = node.Left;
                }

                node = stack.Pop();
                yield return node.Host;
                node = node.Right;
            }
        }

        private static int Height(Node? node) => node?.Height ?? 0;

        private static Node Balance(HostRecord host, Node? left, Node? right)
        {
            var diff = Height(left) - Height(right);
            if (diff > 1)
            {
                if (Height(left!.Left) >= Height(left.Right))
                {
                    return new Node(left.Host, left.Left, new Node(host, left.Right, right));
                }

                var pivot = left.Right!;
                return new Node(pivot.Host, new Node(left.Host, left.Left, pivot.Left), new Node(host, pivot.Right, right));
            }

            if (diff < -1)
            {
                if (Height(right!.Right) >= Height(right.Left))
                {
                    return new Node(right.Host, new Node(host, left, right.Left), right.Right);
                }

                var pivot = right.Left!;
                return new Node(pivot.Host, new Node(host, left, pivot.Left), new Node(right.Host, pivot.Right, right.Right));
            }

            return new Node(host, left, right);
        }
    }
}
