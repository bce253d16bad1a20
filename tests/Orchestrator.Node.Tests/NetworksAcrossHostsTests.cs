using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Orchestrator.Hypervisor.Networking;
using Xunit.Abstractions;
using static Orchestrator.Node.Tests.GuestNetworkProbes;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Tenant networks across hosts: two hosts in network namespaces of their own (separate machines as far as bridges,
/// taps and QEMUs go), each network joined between them by unicast VXLAN the scheduler programs.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class NetworksAcrossHostsTests(ITestOutputHelper output)
{
    private const string ProberScript = """
        #!/bin/sh
        n=0
        until ping -c 1 -W 2 10.0.0.5 >/dev/null 2>&1 || [ $n -ge 15 ]; do n=$((n + 1)); done
        if ping -c 5 -W 2 10.0.0.5 >/tmp/ping.out 2>&1; then echo "NETTEST peer reached $(tail -n 1 /tmp/ping.out)"; else echo 'NETTEST peer unreached'; fi
        arping -c 3 -w 6 -I eth0 10.0.0.5 2>&1 | sed -n 's/.*reply from [0-9.]* \[\([0-9a-fA-F:]*\)\].*/NETTEST peer-mac \1/p'
        arping -c 3 -w 6 -I eth0 10.0.0.1 2>&1 | sed -n 's/.*reply from [0-9.]* \[\([0-9a-fA-F:]*\)\].*/NETTEST router-mac \1/p'
        echo 'NETTEST done'

        """;

    private const string TwinScript = """
        #!/bin/sh
        if ping -c 3 -W 2 10.0.0.1 >/dev/null 2>&1; then echo 'NETTEST router reached'; else echo 'NETTEST router unreached'; fi

        """;

    [Fact]
    public async Task A_vm_pings_its_tenants_vm_on_another_host_by_dhcp_address_and_another_tenants_vm_with_the_same_ip_never_answers()
    {
        var cluster = await MultiHostCluster.StartAsync(output, new NetworkNamespaces("orcvx", "10.219.73"), hosts: 2);
        var routers = new List<string>();
        try
        {
            await PingAcrossHostsAsync(cluster, routers);
        }
        finally
        {
            await cluster.DisposeAsync();
            RemoveNamespaces(routers, output);
        }
    }

    private async Task PingAcrossHostsAsync(MultiHostCluster cluster, List<string> routers)
    {
        var (h1, h2) = (cluster.Node(1), cluster.Node(2));
        foreach (var host in new[] { "h1", "h2" })
        {
            var labelled = await h1.Http.PostAsJsonAsync($"v1/hosts/{host}/labels", new { set = new Dictionary<string, string> { ["name"] = host } });
            Assert.Equal(HttpStatusCode.OK, labelled.StatusCode);
        }

        using var acme = h1.ClientWith(await h1.TenantKeyAsync("acme"));
        using var bolt = h1.ClientWith(await h1.TenantKeyAsync("bolt"));
        var vnis = new List<int>();
        foreach (var tenant in new[] { acme, bolt })
        {
            var network = await tenant.PostAsJsonAsync("v1/networks", new { name = "net", cidr = "10.0.0.0/24" });
            Assert.Equal(HttpStatusCode.Created, network.StatusCode);
            vnis.Add((int)JsonNode.Parse(await network.Content.ReadAsStringAsync())!["vni"]!);
        }

        routers.AddRange(from node in new[] { h1, h2 } from vni in vnis
            select new HostNetworking(Path.Combine(node.DataDir, "run", "net")).RouterNamespace(vni));

        try
        {
            var target = await CreateAsync(acme, "target", "h2", "10.0.0.5");
            var twin = await CreateAsync(bolt, "twin", "h2", "10.0.0.5", TwinScript);
            var twinConsole = await ConsoleTextAsync(h2, twin, "NETTEST router", TimeSpan.FromSeconds(180));
            Assert.Contains("orchestrator: eth0 10.0.0.5/24", twinConsole);
            Assert.Contains("NETTEST router reached", twinConsole);

            var clock = Stopwatch.StartNew();
            var prober = await CreateAsync(acme, "prober", "h1", "10.0.0.7", ProberScript);
            var reached = await ConsoleTextAsync(h1, prober, "NETTEST peer", TimeSpan.FromSeconds(180));
            output.WriteLine($"create to the first ping answered across hosts: {clock.Elapsed.TotalSeconds:F1} s (TCG)");
            var text = await ConsoleTextAsync(h1, prober, "NETTEST done", TimeSpan.FromSeconds(60));
            output.WriteLine(string.Join('\n', text.Split('\n').Where(l => l.Contains("NETTEST", StringComparison.Ordinal))));
            Assert.Contains("orchestrator: eth0 10.0.0.7/24", text); // its address by DHCP, from its own host
            Assert.Contains("NETTEST peer reached", reached);

            // Only acme's target answers for 10.0.0.5 (bolt's twin has the same address on the same CIDR, on the same host),
            // and only the prober's own host's router for the gateway address every host's router has.
            Assert.Equal([Mac((string)target["nics"]![0]!["mac"]!)], Lines(text, "NETTEST peer-mac ").Select(Mac).Distinct());
            Assert.Single(Lines(text, "NETTEST router-mac ").Select(Mac).Distinct());
        }
        finally
        {
            foreach (var (tenant, vm) in new[] { (acme, "target"), (acme, "prober"), (bolt, "twin") })
            {
                await tenant.DeleteAsync($"v1/vms/{vm}");
            }

            await h1.Eventually(async () =>
                    (await acme.GetStringAsync("v1/vms")).Trim() == "[]" && (await bolt.GetStringAsync("v1/vms")).Trim() == "[]" ? (bool?)true : null,
                TimeSpan.FromSeconds(90), "every VM to be gone");
        }

        // Each host let go of its networks with its last VM on them: no router namespace left behind on either.
        foreach (var router in routers)
        {
            await h1.Eventually(() => Task.FromResult(File.Exists($"/run/netns/{router}") ? null : (bool?)true),
                TimeSpan.FromSeconds(30), $"the router namespace {router} to go");
        }
    }

    private static async Task<JsonObject> CreateAsync(HttpClient tenant, string name, string host, string ip, string? script = null)
    {
        var created = await tenant.PostAsJsonAsync("v1/vms", new
        {
            name, vcpus = 1, memoryMiB = 128, image = "demo", hostSelector = new[] { $"name={host}" },
            userData = script is null ? null : Encoding.UTF8.GetBytes(script), nics = new[] { new { network = "net", ip } },
        });
        var body = await created.Content.ReadAsStringAsync();
        Assert.True(created.StatusCode == HttpStatusCode.Created, $"create {name}: {(int)created.StatusCode} {body}");
        return JsonNode.Parse(body)!.AsObject();
    }

    private static IEnumerable<string> Lines(string text, string prefix) =>
        text.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).Select(l => l[prefix.Length..]);

    /// <summary>A MAC as "02:0a:…" whatever way it was printed (busybox leaves out leading zeros).</summary>
    private static string Mac(string text) =>
        string.Join(':', text.Split(':').Select(b => int.Parse(b, NumberStyles.HexNumber, CultureInfo.InvariantCulture).ToString("x2", CultureInfo.InvariantCulture)));
}
