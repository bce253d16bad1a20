// Placement decision rate at 1k/10k/100k hosts: the index against the scan, and the ledger's whole Decide + Apply.
using BenchmarkDotNet.Attributes;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Placement;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Benchmarks;

[MemoryDiagnoser]
public class PlacementBenchmarks
{
    // The Azure V1 flavours (vCPUs, MiB) on 48-vCPU / 384-GiB hosts, as `orchestrator bench placement` uses.
    private static readonly (int Vcpus, long MemoryMiB)[] Flavours =
    [
        (1, 768), (1, 1792), (1, 2048), (16, 114688), (2, 14336), (2, 16384), (2, 3584), (2, 4096),
        (4, 28672), (4, 32768), (4, 7168), (4, 8192), (8, 14336), (8, 16384), (8, 57344), (8, 65536),
    ];

    private readonly PlacementPolicy _policy = new(1.0, 1.0, PlacementStrategy.Pack);
    private readonly LedgerRules _rules = new(new PlacementPolicy(1.0, 1.0, PlacementStrategy.Pack), new VmSpecLimits(64, 0, int.MaxValue), new HashSet<string> { "sim" });
    private HostRecord[] _hosts = [];
    private Dictionary<HostId, int> _numbers = [];
    private CapacityIndex _index = CapacityIndex.Empty;
    private LedgerState _ledger = LedgerState.Empty;
    private ResourceRequest[] _requests = [];
    private int _next;

    [Params(1_000, 10_000, 100_000)]
    public int Hosts { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        _hosts = new HostRecord[Hosts];
        _numbers = new Dictionary<HostId, int>(Hosts);
        _ledger = LedgerState.Empty;
        for (var i = 0; i < Hosts; i++)
        {
            // Hosts about half full, each differently, so the decision has real choices to make.
            var used = random.Next(0, 40);
            _hosts[i] = new HostRecord(new HostId($"sim-{i:D6}"), 48, 384 * 1024, "simulated", HostState.Up, used, used * 4096L, used / 2);
            _numbers[_hosts[i].Id] = i;
            _ledger = _ledger.Apply(new LedgerEvents.HostRegistered(_hosts[i].Id, 48, 384 * 1024, "simulated", DateTimeOffset.UnixEpoch));
        }

        _index = CapacityIndex.Build(_hosts);
        _requests = Enumerable.Range(0, 4096).Select(_ => Flavours[random.Next(Flavours.Length)])
            .Select(f => new ResourceRequest(f.Vcpus, f.MemoryMiB)).ToArray();
    }

    /// <summary>The plain filter + weigher scan over every host (what the index replaces).</summary>
    [Benchmark(Baseline = true)]
    public HostRecord? Scan() => Placement.ChooseHost(_hosts, NextRequest(), _policy);

    /// <summary>One decision through the index, the host's allocation updated, then given back: steady state.</summary>
    [Benchmark]
    public HostRecord? IndexDecideAndUpdate()
    {
        var request = NextRequest();
        var chosen = _index.ChooseHost(request, _policy);
        if (chosen is not null)
        {
            var placed = chosen with
            {
                AllocatedVcpus = chosen.AllocatedVcpus + request.Vcpus,
                AllocatedMemoryMiB = chosen.AllocatedMemoryMiB + request.MemoryMiB,
            };
            _index = _index.Replace(chosen, placed).Replace(placed, chosen);
        }

        return chosen;
    }

    /// <summary>The scheduler's pure step for a creation: validate, place (through the index), events.</summary>
    [Benchmark]
    public int LedgerDecide()
    {
        var request = NextRequest();
        var decision = _ledger.Decide(
            new LedgerCommands.CreateVm(TenantId.System, new VmSpec("vm", request.Vcpus, (int)request.MemoryMiB, "sim"), new VmId(Guid.NewGuid())),
            _rules, DateTimeOffset.UnixEpoch);
        return decision.Events.Count;
    }

    private ResourceRequest NextRequest() => _requests[_next++ & (_requests.Length - 1)];
}
