using System.Text.Json.Nodes;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Hosts as they are deployed across machines: each node in a network namespace of its own, all journaling to one
/// PostgreSQL that listens only on the namespaces' bridge, each with its own data dir. The one thing shared through
/// the filesystem is the storage pool, a dir standing for the NFS export every host mounts (VMs' disks are there, so
/// a lost host's VMs restart elsewhere on their own disks). Every host's processes are in a freezer group of their
/// own, and a sampler watches all hosts' QEMU processes for a VM running twice. Disposing ends every process and
/// removes every namespace, the bridge, the cgroups and the database.
/// </summary>
public sealed class MultiHostCluster : IAsyncDisposable
{
    private readonly string _shared = Directory.CreateTempSubdirectory("orc").FullName;
    private readonly List<NodeProcess> _nodes = [];
    private readonly List<HostFreezer> _freezers = [];
    private PostgresServer? _postgres;

    private MultiHostCluster(NetworkNamespaces network) => Network = network;

    public NetworkNamespaces Network { get; }

    public DoubleRunSampler Sampler { get; private set; } = null!;

    /// <summary>Host <paramref name="host"/>'s node (1-based, as the host ids h1, h2 …).</summary>
    public NodeProcess Node(int host) => _nodes[host - 1];

    public HostFreezer Freezer(int host) => _freezers[host - 1];

    /// <param name="extraConfig">HOCON every host's node gets besides the cluster's (e.g. NAT on: each host is a namespace of its own).</param>
    public static async Task<MultiHostCluster> StartAsync(ITestOutputHelper output, NetworkNamespaces network, int hosts, string? extraConfig = null)
    {
        var cluster = new MultiHostCluster(network);
        try
        {
            await cluster.StartHostsAsync(output, hosts, extraConfig);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private async Task StartHostsAsync(ITestOutputHelper output, int hosts, string? extraConfig)
    {
        Network.Run("down");
        Network.Run("up", hosts.ToString(System.Globalization.CultureInfo.InvariantCulture));
        _postgres = await PostgresServer.StartAsync(Network.Underlay, clients: $"{Network.Subnet}.0/24");
        var seeds = Enumerable.Range(1, hosts).SelectMany(h => new[] { "--seed", $"akka.tcp://orchestrator@{Network.Address(h)}:4053" }).ToList();

        Task<NodeProcess> StartHost(int host)
        {
            List<string> args =
            [
                "--config", Path.Combine(Checkout.Root(), "cluster", "cluster.conf"),
                "--config", Path.Combine(Checkout.Root(), "config", "persistence-postgres.conf"),
                "--set", $"orchestrator.host-id=h{host}",
                .. seeds,
            ];
            if (host == 1)
            {
                args.Add("--bootstrap");
            }

            var freezer = _freezers[host - 1];
            return NodeProcess.StartAsync(output, $"""
                orchestrator.cluster.hostname = "{Network.Address(host)}"
                orchestrator.cluster.port = 4053
                orchestrator.persistence.postgres-connection = "{_postgres.ConnectionString}"
                orchestrator.host.fence-after = 3s
                orchestrator.storage.pools.shared.path = "{_shared}/pool"
                orchestrator.storage.pools.shared.shared = on
                """ + "\n" + extraConfig, extraArgs: args, launcher: [.. freezer.Launcher, .. Network.Launcher(host)], listen: $"{Network.Address(host)}:0");
        }

        _freezers.AddRange(Enumerable.Range(1, hosts).Select(host => new HostFreezer($"{Network.Prefix}-h{host}")));
        // The first host forms the cluster; the others start side by side and join it.
        _nodes.Add(await StartHost(1));
        var joining = Enumerable.Range(2, hosts - 1).Select(StartHost).ToList();
        try
        {
            await Task.WhenAll(joining);
        }
        finally
        {
            _nodes.AddRange(joining.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result));
        }

        await Node(1).Eventually(async () =>
            JsonNode.Parse(await Node(1).Http.GetStringAsync("v1/hosts"))!.AsArray().Count(h => (string?)h!["state"] == "Up") == hosts
                ? true : (bool?)null, TimeSpan.FromSeconds(90), $"{hosts} hosts Up");
        Sampler = new DoubleRunSampler(_nodes.Select(n => n.RunDir).ToList());
    }

    /// <summary>Every VM as <paramref name="via"/> lists it.</summary>
    public static async Task<List<JsonObject>> VmsAsync(NodeProcess via) =>
        JsonNode.Parse(await via.Http.GetStringAsync("v1/vms"))!.AsArray().Select(v => v!.AsObject()).ToList();

    /// <summary>Creates <paramref name="count"/> VMs (restart always) through <paramref name="via"/> and waits until all are Ready.</summary>
    public static async Task<List<JsonObject>> CreateReadyVmsAsync(NodeProcess via, string prefix, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await via.CreateVmAsync($"{prefix}{i}", restartPolicy: "always");
        }

        return await WaitForVmsAsync(via, vms => vms.Count(v => ((string)v["name"]!).StartsWith(prefix, StringComparison.Ordinal)) == count &&
            vms.All(v => (string?)v["state"] == "Ready"), TimeSpan.FromSeconds(180), $"{count} VMs Ready");
    }

    /// <summary>
    /// Waits until the VM list <paramref name="via"/> answers satisfies <paramref name="done"/>; an answer that fails
    /// (503 while the scheduler moves) is asked again.
    /// </summary>
    public static Task<List<JsonObject>> WaitForVmsAsync(NodeProcess via, Func<List<JsonObject>, bool> done, TimeSpan timeout, string what) =>
        via.Eventually(async () =>
        {
            var vms = await VmsAsync(via);
            return done(vms) ? vms : null;
        }, timeout, what);

    /// <summary>Every VM Ready, none on <paramref name="lost"/>: what a client sees once a host's loss is repaired.</summary>
    public static Func<List<JsonObject>, bool> AllReadyAwayFrom(string lost, int count) =>
        vms => vms.Count == count && vms.All(v => (string?)v["state"] == "Ready" && (string?)v["host"] != lost);

    public async ValueTask DisposeAsync()
    {
        if (Sampler is not null)
        {
            await Sampler.DisposeAsync();
        }

        foreach (var freezer in _freezers)
        {
            freezer.Thaw();
        }

        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }

        foreach (var freezer in _freezers)
        {
            freezer.Dispose();
        }

        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }

        Network.Run("down");
        Directory.Delete(_shared, recursive: true);
    }
}
