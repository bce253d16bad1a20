using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;

namespace Orchestrator.Simulation;

/// <summary>Where the simulator asks for a host: the real Domain placement, or the first-fit baseline.</summary>
internal interface IPlacer
{
    string Name { get; }

    /// <summary>The host (0-based) the VM was placed on, or -1 when none has room.</summary>
    int Place(int vcpus, long memoryMiB);

    void Release(int host, int vcpus, long memoryMiB);
}

/// <summary>Simulated hosts (in memory only): ids that sort ordinally in creation order.</summary>
public static class SimulatedHosts
{
    public const string Driver = "simulated";

    public static HostId Id(int i) => new($"sim-{i:D6}");
}

/// <summary>
/// The real scheduler's placement: <see cref="CapacityIndex"/> (the filters and weigher of <see cref="Placement"/>,
/// same decisions as the scan) over simulated host records, updated at every placement and release.
/// </summary>
internal sealed class IndexPlacer : IPlacer
{
    private readonly HostRecord[] _hosts;
    private readonly Dictionary<HostId, int> _numbers;
    private readonly PlacementPolicy _policy;
    private CapacityIndex _index;

    public IndexPlacer(int hosts, int cpus, long memoryMiB, PlacementPolicy policy)
    {
        _policy = policy;
        _hosts = new HostRecord[hosts];
        _numbers = new Dictionary<HostId, int>(hosts);
        for (var i = 0; i < hosts; i++)
        {
            _hosts[i] = new HostRecord(SimulatedHosts.Id(i), cpus, memoryMiB, SimulatedHosts.Driver, HostState.Up, 0, 0, 0);
            _numbers[_hosts[i].Id] = i;
        }

        _index = CapacityIndex.Build(_hosts);
    }

    public string Name => _policy.Strategy.ToString().ToLowerInvariant();

    public int Place(int vcpus, long memoryMiB)
    {
        var chosen = _index.ChooseHost(new ResourceRequest(vcpus, memoryMiB), _policy);
        if (chosen is null)
        {
            return -1;
        }

        var n = _numbers[chosen.Id];
        Set(n, chosen with
        {
            AllocatedVcpus = chosen.AllocatedVcpus + vcpus,
            AllocatedMemoryMiB = chosen.AllocatedMemoryMiB + memoryMiB,
            VmCount = chosen.VmCount + 1,
        });
        return n;
    }

    public void Release(int host, int vcpus, long memoryMiB)
    {
        var h = _hosts[host];
        Set(host, h with
        {
            AllocatedVcpus = h.AllocatedVcpus - vcpus,
            AllocatedMemoryMiB = h.AllocatedMemoryMiB - memoryMiB,
            VmCount = h.VmCount - 1,
        });
    }

    private void Set(int n, HostRecord after)
    {
        _index = _index.Replace(_hosts[n], after);
        _hosts[n] = after;
    }
}

/// <summary>
/// The baseline: plain first fit, the lowest-numbered host with room. A segment tree of the largest free vCPUs and
/// memory below each node finds it in about O(log hosts).
/// </summary>
internal sealed class FirstFitPlacer : IPlacer
{
    private readonly int _size;
    private readonly long[] _cpu;
    private readonly long[] _memory;
    private readonly int _hosts;

    public FirstFitPlacer(int hosts, int cpus, long memoryMiB)
    {
        _hosts = hosts;
        _size = 1;
        while (_size < Math.Max(1, hosts))
        {
            _size *= 2;
        }

        _cpu = new long[2 * _size];
        _memory = new long[2 * _size];
        Array.Fill(_cpu, -1);
        Array.Fill(_memory, -1);
        for (var i = 0; i < hosts; i++)
        {
            _cpu[_size + i] = cpus;
            _memory[_size + i] = memoryMiB;
        }

        for (var i = _size - 1; i >= 1; i--)
        {
            Pull(i);
        }
    }

    public string Name => "first-fit";

    public int Place(int vcpus, long memoryMiB)
    {
        var host = Find(1, vcpus, memoryMiB);
        if (host >= 0)
        {
            Add(host, -vcpus, -memoryMiB);
        }

        return host;
    }

    public void Release(int host, int vcpus, long memoryMiB) => Add(host, vcpus, memoryMiB);

    private int Find(int node, int vcpus, long memory)
    {
        if (_cpu[node] < vcpus || _memory[node] < memory)
        {
            return -1; // necessary, not sufficient: the two maxima may be on different hosts
        }

        if (node >= _size)
        {
            var host = node - _size;
            return host < _hosts ? host : -1;
        }

        var left = Find(2 * node, vcpus, memory);
        return left >= 0 ? left : Find(2 * node + 1, vcpus, memory);
    }

    private void Add(int host, long vcpus, long memory)
    {
        var node = _size + host;
        _cpu[node] += vcpus;
        _memory[node] += memory;
        for (node /= 2; node >= 1; node /= 2)
        {
            Pull(node);
        }
    }

    private void Pull(int node)
    {
        _cpu[node] = Math.Max(_cpu[2 * node], _cpu[2 * node + 1]);
        _memory[node] = Math.Max(_memory[2 * node], _memory[2 * node + 1]);
    }
}
