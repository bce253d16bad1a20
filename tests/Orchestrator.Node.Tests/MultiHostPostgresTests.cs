using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Orchestrator.Hypervisor.Networking;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;
using static Orchestrator.Node.Tests.GuestNetworkProbes;

namespace Orchestrator.Node.Tests;

/// <summary>
/// The cluster as it is deployed across machines (<see cref="MultiHostCluster"/>: a network namespace per host, one
/// PostgreSQL on the underlay, host leases on): a partition, the scheduler's node lost (a host loss too), and a whole host
/// frozen and thawed. Each test prints how long the cluster took from the fault to every VM Ready again.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class MultiHostPostgresTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int VmCount = 4; // spread over three hosts: every host runs one or two
    private const int ForwardPort = 20005;
    private MultiHostCluster _cluster = null!;

    /// <summary>
    /// Each host's network state directory of a test's network: its dnsmasq outlives a killed node, and the nodes are
    /// killed with their VMs still on it.
    /// </summary>
    private readonly List<string> _networkDirectories = [];

    /// <summary>The router namespaces of a test's network on each host, left by the nodes killed with it.</summary>
    private readonly List<string> _routers = [];

    public async Task InitializeAsync() =>
        // NAT on (each host is a namespace of its own): a gateway network's forwards are programmed only where it has an uplink.
        _cluster = await MultiHostCluster.StartAsync(output, new NetworkNamespaces("orcmh", "10.236.0"), hosts: 3, "orchestrator.network.uplink = auto\n");

    public async Task DisposeAsync()
    {
        // Read before the nodes go (their data dirs with them); the routers' dnsmasqs are ended once the nodes are gone.
        var dnsmasqs = _networkDirectories.Select(d => Path.Combine(d, "dnsmasq.pid")).Where(File.Exists)
            .Select(f => int.Parse(File.ReadAllText(f).Trim(), System.Globalization.CultureInfo.InvariantCulture)).ToList();
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        foreach (var pid in dnsmasqs.Where(p => File.Exists($"/proc/{p}/comm") && File.ReadAllText($"/proc/{p}/comm").Trim() == "dnsmasq"))
        {
            output.WriteLine($"ending the dnsmasq {pid} a node left");
            NodeProcess.Signal(pid, "KILL");
        }

        RemoveNamespaces(_routers, output);

        // And their static entries, which each node keeps under /run by a digest of its state directory.
        foreach (var state in _networkDirectories.Select(Path.GetDirectoryName).Distinct())
        {
            var scope = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(state!))))[..16];
            if (Directory.Exists($"/run/orchestrator/dhcp-hosts/{scope}"))
            {
                Directory.Delete($"/run/orchestrator/dhcp-hosts/{scope}", recursive: true);
            }
        }
    }

    private void AssertNoDoubleRun()
    {
        Assert.True(_cluster.Sampler.DoubleRuns == 0, _cluster.Sampler.Describe());
        output.WriteLine($"samples: {_cluster.Sampler.Samples}, max processes per VM: {_cluster.Sampler.MaxPerVm}");
    }

    [Fact]
    public async Task A_partitioned_host_is_fenced_its_vms_run_on_the_majority_and_it_leaves_after_the_heal()
    {
        var majority = _cluster.Node(1);
        await MultiHostCluster.CreateReadyVmsAsync(majority, "svc", VmCount);
        var stale = _cluster.Node(3).QemuProcesses().Values.ToList();
        Assert.NotEmpty(stale);

        var clock = Stopwatch.StartNew();
        _cluster.Network.Run("partition", "3"); // cut off from the other hosts and from PostgreSQL alike
        await MultiHostCluster.WaitForVmsAsync(majority, MultiHostCluster.AllReadyAwayFrom("h3", VmCount),
            TimeSpan.FromSeconds(120), "the cut-off host's VMs Ready on the majority");
        output.WriteLine($"failover: partition of h3 → all {VmCount} VMs Ready on the majority: {clock.Elapsed.TotalSeconds:F1} s");
        Assert.All(stale, pid => Assert.False(ProcessTable.IsAlive(pid), $"QEMU {pid} on the cut-off host still runs"));

        _cluster.Network.Run("heal", "3");
        var minority = _cluster.Node(3);
        await majority.Eventually(() => Task.FromResult<bool?>(minority.HasExited), TimeSpan.FromSeconds(60), "the minority node to leave");
        Assert.Empty(minority.QemuProcesses());
        Assert.Equal(VmCount, (await MultiHostCluster.VmsAsync(majority)).Count);
        AssertNoDoubleRun();
    }

    [Fact]
    public async Task Killing_the_scheduler_s_node_moves_the_scheduler_loses_no_vm_and_its_vms_keep_their_mac_ip_peers_and_forwards()
    {
        var client = _cluster.Node(2);
        using var acme = client.ClientWith(await client.TenantKeyAsync("acme", quota: new { forwardPorts = $"{ForwardPort}-{ForwardPort}" }));
        var vni = (int)(await CreatedAsync(acme, "v1/networks", new { name = "net", cidr = "10.0.0.0/24" }))["vni"]!;
        _networkDirectories.AddRange(Enumerable.Range(1, 3).Select(h => NetworkDirectory(_cluster.Node(h), vni)));
        _routers.AddRange(Enumerable.Range(1, 3).Select(h => new HostNetworking(Path.Combine(_cluster.Node(h).RunDir, "net")).RouterNamespace(vni)));
        for (var i = 0; i < VmCount; i++)
        {
            await CreatedAsync(acme, "v1/vms", new
            {
                name = $"db{i}", vcpus = 1, memoryMiB = 128, image = "demo", restartPolicy = "always",
                userData = Encoding.UTF8.GetBytes(PeerWatcher(Address(i))), nics = new[] { new { network = "net", ip = Address(i) } },
            });
        }

        var before = await WaitForVmsAsync(client, acme, vms => vms.Count == VmCount && vms.All(v => (string?)v["state"] == "Ready"),
            TimeSpan.FromSeconds(180), $"{VmCount} VMs Ready");
        var moved = before.Where(v => (string?)v["host"] == "h1").Select(v => (string)v["name"]!).ToList();
        Assert.NotEmpty(moved);
        // Every guest reaches every other one, across the three hosts, before the loss.
        foreach (var vm in before)
        {
            await ConsoleWithAsync(HostOf(vm), vm, before.Where(p => p != vm).Select(p => $"NETTEST peer {Ip(p)} up"), TimeSpan.FromSeconds(120));
        }

        var forwarded = before.Single(v => (string)v["name"]! == moved[0]);
        await CreatedAsync(acme, "v1/networks/net/forwards", new { hostPort = ForwardPort, vm = moved[0], port = 8080 });
        await AwaitForwardAsync(forwarded, vni);
        var consolesAtKill = before.Where(v => (string?)v["host"] != "h1").ToDictionary(v => (string)v["name"]!, v => ConsoleText(HostOf(v), v).Length);
        var stale = _cluster.Node(1).QemuProcesses().Values.ToList();

        var clock = Stopwatch.StartNew();
        _cluster.Node(1).Kill(); // the oldest member: the singleton lives there, and so do some of the VMs
        var after = await WaitForVmsAsync(client, acme, MultiHostCluster.AllReadyAwayFrom("h1", VmCount),
            TimeSpan.FromSeconds(150), "the scheduler to move and h1's VMs to be Ready elsewhere");
        output.WriteLine($"failover: kill -9 of the scheduler's node h1 → all {VmCount} VMs Ready ({moved.Count} moved): {clock.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(before.Select(v => (string)v["id"]!).Order(), after.Select(v => (string)v["id"]!).Order());
        Assert.All(after.Where(v => moved.Contains((string)v["name"]!)), vm => Assert.Equal(2, (long)vm["epoch"]!));
        Assert.All(stale, pid => Assert.False(ProcessTable.IsAlive(pid), $"QEMU {pid} of the killed host still runs"));

        foreach (var vm in after.Where(v => moved.Contains((string)v["name"]!)))
        {
            // The same MAC and IP from the ledger, and the guest got that IP by DHCP from its new host (a static entry by MAC).
            var was = before.Single(v => (string)v["id"]! == (string)vm["id"]!);
            Assert.Equal((string)was["nics"]![0]!["mac"]!, (string)vm["nics"]![0]!["mac"]!);
            Assert.Equal(Ip(was), Ip(vm));
            var host = HostOf(vm);
            await ConsoleWithAsync(host, vm, [$"orchestrator: eth0 {Ip(vm)}/24"], TimeSpan.FromSeconds(120));

            // A peer on the third host, over VXLAN: the moved guest reaches it, and the peer (which saw it go) reaches it again.
            var peer = after.First(v => (string?)v["host"] != (string?)vm["host"] && !moved.Contains((string)v["name"]!));
            await ConsoleWithAsync(host, vm, [$"NETTEST peer {Ip(peer)} up"], TimeSpan.FromSeconds(120));
            await HostOf(peer).Eventually(() => Task.FromResult(ConsoleText(HostOf(peer), peer)[consolesAtKill[(string)peer["name"]!]..] is var since
                    && since.IndexOf($"NETTEST peer {Ip(vm)} down", StringComparison.Ordinal) is >= 0 and var down
                    && since.IndexOf($"NETTEST peer {Ip(vm)} up", down, StringComparison.Ordinal) > down ? (bool?)true : null),
                TimeSpan.FromSeconds(120), $"{peer["name"]} on {peer["host"]} to lose {vm["name"]} and reach it again on {vm["host"]}");
            output.WriteLine($"{vm["name"]} ({Ip(vm)}, {vm["nics"]![0]!["mac"]}) moved to {vm["host"]}: pings {peer["name"]} on {peer["host"]} and back");
        }

        // Its port forward followed it: the new host sends the port to its router, and the router to the guest.
        var newHome = after.Single(v => (string)v["id"]! == (string)forwarded["id"]!);
        await AwaitForwardAsync(newHome, vni);

        await client.CreateVmAsync("after-failover");
        await client.WaitForVmAsync("after-failover", "Ready");
        AssertNoDoubleRun();
    }

    [Fact]
    public async Task A_whole_host_frozen_past_the_replacement_delay_kills_its_stale_guests_when_it_thaws()
    {
        var majority = _cluster.Node(1);
        var frozenNode = _cluster.Node(3);
        var before = await MultiHostCluster.CreateReadyVmsAsync(majority, "app", VmCount);
        var stale = frozenNode.QemuProcesses().Values.ToList();
        Assert.NotEmpty(stale);
        var freezer = _cluster.Freezer(3);
        Assert.All(stale, pid => Assert.Contains(pid, freezer.Pids)); // the guests froze with their host, not just its node

        await freezer.FreezeAsync();
        var thawed = false;
        TimeSpan samplerThaw = default, staleGoneOnSampler = default;
        try
        {
            // The majority re-places the frozen host's VMs (its lease expired and was revoked) while they still exist
            // there, frozen.
            await MultiHostCluster.WaitForVmsAsync(majority, vms => vms.All(v => (string?)v["host"] != "h3"),
                TimeSpan.FromSeconds(120), "the frozen host's VMs re-placed");
            await majority.CreateVmAsync("during-freeze", restartPolicy: "always"); // acknowledged while h3 is frozen
            output.WriteLine($"while frozen: {await HoldWhileReplacedCopiesStartAsync(majority, stale.Count)}");

            var thawedAt = DateTime.UtcNow;
            var thawedOnSampler = _cluster.Sampler.Now;
            var clock = Stopwatch.StartNew();
            freezer.Thaw();
            thawed = true;
            while (stale.Any(ProcessTable.IsAlive) && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                Thread.Sleep(1);
            }

            var overlap = clock.Elapsed;
            staleGoneOnSampler = _cluster.Sampler.Now;
            samplerThaw = thawedOnSampler;
            Assert.All(stale, pid => Assert.False(ProcessTable.IsAlive(pid), $"stale QEMU {pid} still runs 30 s after its host thawed"));
            output.WriteLine($"overlap: the stale guests ran {overlap.TotalMilliseconds:F1} ms after the thaw before all {stale.Count} were dead");
            output.WriteLine("guard: " + string.Join("\n  ", File.ReadLines(Path.Combine(frozenNode.RunDir, "guard.log"))
                .Where(line => line.Contains("fencing", StringComparison.Ordinal) || line.Contains("killed", StringComparison.Ordinal))));
            output.WriteLine($"thawed at {thawedAt:HH:mm:ss.fff}Z");
        }
        finally
        {
            if (!thawed)
            {
                freezer.Thaw();
            }
        }

        var after = await MultiHostCluster.WaitForVmsAsync(majority, MultiHostCluster.AllReadyAwayFrom("h3", VmCount + 1),
            TimeSpan.FromSeconds(120), "every VM Ready away from the thawed host");
        Assert.Equal(before.Select(v => (string)v["id"]!).Order(), after.Where(v => (string)v["name"]! != "during-freeze").Select(v => (string)v["id"]!).Order());
        await majority.Eventually(() => Task.FromResult<bool?>(frozenNode.HasExited), TimeSpan.FromSeconds(60), "the thawed node to leave");
        Assert.Empty(frozenNode.QemuProcesses());
        // A VM may have run twice only in the overlap, between the thaw and its stale copy's death: never after.
        var sampler = _cluster.Sampler;
        Assert.True(sampler.DoubleRuns == 0 || sampler.LastDoubleRunAt <= staleGoneOnSampler && sampler.FirstDoubleRunAt >= samplerThaw,
            sampler.Describe());
        output.WriteLine($"samples: {sampler.Samples}, with a VM running twice (in the overlap): {sampler.DoubleRuns}");
    }

    private static string Address(int i) => $"10.0.0.{10 + i}";

    private static string Ip(JsonObject vm) => (string)vm["nics"]![0]!["ip"]!;

    private NodeProcess HostOf(JsonObject vm) => _cluster.Node(int.Parse(((string)vm["host"]!)[1..], System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>
    /// A guest that pings every other VM of the test once a second or so, for as long as it runs, and says on its console
    /// whenever one of them comes up or goes down (in the background: the boot goes on to its ready banner).
    /// </summary>
    private static string PeerWatcher(string self) => $$"""
        #!/bin/sh
        (while true; do
            for ip in {{string.Join(' ', Enumerable.Range(0, VmCount).Select(Address).Where(a => a != self))}}; do
                if ping -c 1 -W 1 $ip >/dev/null 2>&1; then s=up; else s=down; fi
                if [ "$(cat /tmp/peer.$ip 2>/dev/null)" != $s ]; then echo $s >/tmp/peer.$ip; echo "NETTEST peer $ip $s"; fi
            done
            sleep 1
        done) &

        """;

    /// <summary>Waits until the VM's host has the test's forward: the host sends the port to its router, the router to the guest.</summary>
    private async Task AwaitForwardAsync(JsonObject vm, int vni)
    {
        var hostRules = "";
        var routerRules = "";
        // The router namespace is the node's mount namespace's (the node runs under "ip netns exec"): entered by its dnsmasq.
        var dnsmasq = Path.Combine(NetworkDirectory(HostOf(vm), vni), "dnsmasq.pid");
        bool Programmed()
        {
            hostRules = Run("ip", "netns", "exec", $"{_cluster.Network.Prefix}-{vm["host"]}", "nft", "list", "ruleset");
            routerRules = File.Exists(dnsmasq) ? Run("nsenter", "-t", File.ReadAllText(dnsmasq).Trim(), "-n", "nft", "list", "ruleset") : "";
            return hostRules.Contains($"dport {ForwardPort} dnat to", StringComparison.Ordinal)
                && routerRules.Contains($"dport {ForwardPort} dnat to {Ip(vm)}:8080", StringComparison.Ordinal);
        }

        try
        {
            await HostOf(vm).Eventually(() => Task.FromResult<bool?>(Programmed() ? true : null), TimeSpan.FromSeconds(60),
                $"the forward of port {ForwardPort} to {vm["name"]} on {vm["host"]}");
        }
        catch (TimeoutException timeout)
        {
            Assert.Fail($"{timeout.Message.Split('\n')[0]}; host:\n{hostRules}\nrouter:\n{routerRules}");
        }
    }

    /// <summary>The node's state directory of network <paramref name="vni"/> (dnsmasq's pid file and leases).</summary>
    private static string NetworkDirectory(NodeProcess node, int vni) =>
        Path.Combine(node.RunDir, "net", vni.ToString("x", System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The VM's console on its host so far ("" before it has one).</summary>
    private static string ConsoleText(NodeProcess host, JsonObject vm) =>
        Path.Combine(host.RunDir, "vms", (string)vm["id"]!, "console.log") is var path && File.Exists(path) ? File.ReadAllText(path) : "";

    /// <summary>The VM's console once it holds every one of <paramref name="lines"/>.</summary>
    private static Task<string> ConsoleWithAsync(NodeProcess host, JsonObject vm, IEnumerable<string> lines, TimeSpan timeout)
    {
        var wanted = lines.ToList();
        return host.Eventually(() => Task.FromResult(ConsoleText(host, vm) is var text && wanted.All(l => text.Contains(l, StringComparison.Ordinal)) ? text : null),
            timeout, $"{string.Join(", ", wanted)} on {vm["name"]}'s console");
    }

    /// <summary>The tenant's VMs once they satisfy <paramref name="done"/>, asked through <paramref name="node"/> (again after a 503).</summary>
    private static Task<List<JsonObject>> WaitForVmsAsync(NodeProcess node, HttpClient tenant, Func<List<JsonObject>, bool> done, TimeSpan timeout, string what) =>
        node.Eventually(async () => JsonNode.Parse(await tenant.GetStringAsync("v1/vms"))!.AsArray().Select(v => v!.AsObject()).ToList() is var vms && done(vms)
            ? vms : null, timeout, what);

    private static async Task<JsonObject> CreatedAsync(HttpClient client, string path, object body)
    {
        var created = await client.PostAsJsonAsync(path, body);
        var text = await created.Content.ReadAsStringAsync();
        Assert.True(created.StatusCode == HttpStatusCode.Created, $"POST {path}: {(int)created.StatusCode} {text}");
        return JsonNode.Parse(text)!.AsObject();
    }

    /// <summary>
    /// Keeps the host frozen while the re-placed copies try to start elsewhere, until they are all Ready or 20 s
    /// passed: on a shared pool a frozen copy still holds its disk's lock, so its new copy cannot open the disk yet.
    /// Says what it saw.
    /// </summary>
    private async Task<string> HoldWhileReplacedCopiesStartAsync(NodeProcess majority, int moved)
    {
        var clock = Stopwatch.StartNew();
        var states = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            var replaced = (await MultiHostCluster.VmsAsync(majority)).Where(v => (long)v["epoch"]! > 1).ToList();
            states = string.Join(", ", replaced.Select(v => $"{v["name"]} {v["state"]} on {v["host"]}"));
            if (replaced.Count == moved && replaced.All(v => (string?)v["state"] == "Ready"))
            {
                break;
            }

            await Task.Delay(500);
        }

        return $"{states} after {clock.Elapsed.TotalSeconds:F1} s";
    }
}
