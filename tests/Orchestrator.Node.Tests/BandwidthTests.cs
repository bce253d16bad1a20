using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using System.Text.Json.Nodes;
using Orchestrator.Hypervisor.Networking;
using Xunit.Abstractions;
using static Orchestrator.Node.Tests.GuestNetworkProbes;

namespace Orchestrator.Node.Tests;

/// <summary>
/// A VM's network limit through a real node, read back from the kernel: its HTB classes on the host's IFBs and its tap's
/// steering table, changed on the running VM, gone with it. The node runs in a network namespace of the test's own, so its
/// bridges and IFBs meet no other test's. Rates are read from tc, never measured here (bench net measures them).
/// </summary>
[Collection(NodeCollection.Name)]
public sealed partial class BandwidthTests(ITestOutputHelper output)
{
    private const long MiB = 1024 * 1024;
    private const string Prefix = "orcbw";

    [Fact]
    public async Task A_vm_with_a_network_limit_gets_its_classes_a_live_change_moves_them_and_deleting_it_removes_them()
    {
        var hosts = new NetworkNamespaces(Prefix, "10.219.91");
        hosts.Run("down");
        hosts.Run("up", "1");
        NodeProcess? node = null;
        var routers = new List<string>();
        try
        {
            node = await NodeProcess.StartAsync(output, "orchestrator.network.host-bps = 4194304\norchestrator.network.uplink = off\n",
                launcher: hosts.Launcher(1), listen: $"{hosts.Address(1)}:0");
            await LimitAsync(node, hosts, routers);
        }
        finally
        {
            if (node is not null)
            {
                await node.DisposeAsync();
            }

            RemoveNamespaces(routers, output);
            hosts.Run("down");
        }
    }

    private async Task LimitAsync(NodeProcess node, NetworkNamespaces hosts, List<string> routers)
    {
        var created = await node.Http.PostAsJsonAsync("v1/networks", new { name = "net", cidr = "10.0.0.0/24" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var vni = (int)JsonNode.Parse(await created.Content.ReadAsStringAsync())!["vni"]!;
        var networking = new HostNetworking(Path.Combine(node.RunDir, "net"));
        routers.Add(networking.RouterNamespace(vni));
        var (up, down) = networking.ShapingDevices;
        string Tc(params string[] args) => Run("ip", ["netns", "exec", $"{Prefix}-h1", "tc", .. args]);

        var vm = await node.Http.PostAsJsonAsync("v1/vms", new
        {
            name = "shaped", vcpus = 1, memoryMiB = 128, image = "demo", netBps = 1 * MiB, netShares = 200, nics = new[] { new { network = "net" } },
        });
        Assert.Equal(HttpStatusCode.Created, vm.StatusCode);
        var ready = await node.WaitForVmAsync("shaped", "Ready");
        var tap = NetworkDeviceNames.Tap(new Domain.VmId(Guid.Parse((string)ready["id"]!)), 0);

        // Alone on a 4 MiB/s host with a 1 MiB/s limit: guaranteed and capped at its limit, in both directions.
        foreach (var device in new[] { up, down })
        {
            var leaf = await node.Eventually(() => Task.FromResult(LeafClass(Tc("class", "show", "dev", device))), TimeSpan.FromSeconds(30),
                $"the VM's class on {device}");
            AssertRate(1 * MiB, leaf!.Value.Rate, $"{device} rate");
            AssertRate(1 * MiB, leaf!.Value.Ceil, $"{device} ceil");
        }

        await AssertEntitledAsync(node, 1 * MiB, 1 * MiB);

        var table = Run("ip", "netns", "exec", $"{Prefix}-h1", "nft", "list", "tables", "netdev");
        var steering = Assert.Single(table.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.EndsWith(tap, StringComparison.Ordinal)).Split(' ')[2];
        var rules = Run("ip", "netns", "exec", $"{Prefix}-h1", "nft", "list", "table", "netdev", steering);
        Assert.Contains($"fwd to \"{up}\"", rules);
        Assert.Contains($"fwd to \"{down}\"", rules);
        // The guest's DHCP went through its class: what it sends is steered there.
        await node.Eventually(() => Task.FromResult(SentBytes(Tc("-s", "class", "show", "dev", up)) > 0 ? (bool?)true : null),
            TimeSpan.FromSeconds(60), $"bytes through the VM's class on {up}");

        var patched = await node.Http.PatchAsync("v1/vms/shaped/resources", JsonContent.Create(new { netBps = 2 * MiB }));
        Assert.Equal(HttpStatusCode.Accepted, patched.StatusCode);
        Assert.Equal(2 * MiB, (long)(await node.GetVmAsync("shaped"))!["resources"]!["netBps"]!);
        foreach (var device in new[] { up, down })
        {
            await node.Eventually(() => Task.FromResult(LeafClass(Tc("class", "show", "dev", device)) is { } leaf
                    && Math.Abs(leaf.Ceil - 2 * MiB) < 2 * MiB / 100 ? (bool?)true : null),
                TimeSpan.FromSeconds(30), $"the VM's class on {device} at the new limit");
        }

        await AssertEntitledAsync(node, 2 * MiB, 2 * MiB);

        await node.Http.DeleteAsync("v1/vms/shaped");
        await node.Eventually(async () => await node.GetVmAsync("shaped") is null ? (bool?)true : null, TimeSpan.FromSeconds(60), "the VM to be gone");
        await node.Eventually(() => Task.FromResult(Run("ip", "netns", "exec", $"{Prefix}-h1", "ip", "-o", "link", "show") is var links
                && !links.Contains(up, StringComparison.Ordinal) && !links.Contains(down, StringComparison.Ordinal) ? (bool?)true : null),
            TimeSpan.FromSeconds(30), "the IFBs to go with the last shaped VM");
        Assert.DoesNotContain(steering, Run("ip", "netns", "exec", $"{Prefix}-h1", "nft", "list", "tables", "netdev"));
    }

    /// <summary>What the VM's details show its host holds its NICs to (alone on the host: its limit, guaranteed and ceiling).</summary>
    private static Task AssertEntitledAsync(NodeProcess node, long guaranteed, long ceiling) =>
        node.Eventually(async () => (await node.GetVmAsync("shaped"))!["resources"] is { } r
                && (long?)r["entitledNetBps"] == guaranteed && (long?)r["entitledNetCeilingBps"] == ceiling ? (bool?)true : null,
            TimeSpan.FromSeconds(30), $"vm show to say {guaranteed} bytes/s guaranteed, up to {ceiling}");

    /// <summary>The one VM class (a leaf under the host's class 1) in <c>tc class show</c>: its rate and ceil in bytes per second.</summary>
    private static (double Rate, double Ceil)? LeafClass(string classes)
    {
        var leaves = RateLine().Matches(classes).Where(m => m.Groups["parent"].Success).ToList();
        return leaves.Count == 1 ? (Bytes(leaves[0].Groups["rate"].Value), Bytes(leaves[0].Groups["ceil"].Value)) : null;
    }

    private static long SentBytes(string classes) =>
        SentLine().Matches(classes).Select(m => long.Parse(m.Groups["bytes"].Value, CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();

    /// <summary>tc's "8388Kbit": bits with an SI prefix, in bytes.</summary>
    private static double Bytes(string bits)
    {
        var match = BitsText().Match(bits);
        var scale = match.Groups["unit"].Value switch { "K" => 1e3, "M" => 1e6, "G" => 1e9, _ => 1 };
        return double.Parse(match.Groups["n"].Value, CultureInfo.InvariantCulture) * scale / 8;
    }

    private static void AssertRate(long expected, double actual, string what) =>
        Assert.True(Math.Abs(actual - expected) < expected / 100.0, $"{what}: {actual} bytes/s where {expected} was set");

    [GeneratedRegex(@"class htb \S+ (?:parent (?<parent>1:1|2:1) )?(?:root )?(?:leaf \S+ )?prio \d+ rate (?<rate>\S+) ceil (?<ceil>\S+)")]
    private static partial Regex RateLine();

    [GeneratedRegex(@"class htb [12]:(?!1 )[0-9a-f]+ parent [12]:1 .*\n\s*Sent (?<bytes>\d+) bytes")]
    private static partial Regex SentLine();

    [GeneratedRegex(@"^(?<n>[0-9.]+)(?<unit>[KMG]?)bit$")]
    private static partial Regex BitsText();
}
