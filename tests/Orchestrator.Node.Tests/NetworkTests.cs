using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>Tenant networks end to end: the API, the ledger's addresses, the host's bridge and DHCP, real guests pinging.</summary>
[Collection(NodeCollection.Name)]
public sealed class NetworkTests(ITestOutputHelper output) : IAsyncLifetime
{
    private NodeProcess _node = null!;

    public async Task InitializeAsync() => _node = await NodeProcess.StartAsync(output);

    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task Two_vms_on_a_network_get_their_ledger_addresses_by_dhcp_and_ping_each_other_and_the_network_goes_with_them()
    {
        var created = await _node.Http.PostAsJsonAsync("v1/networks", new { name = "net", cidr = "10.0.0.0/24" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var vni = (int)JsonNode.Parse(await created.Content.ReadAsStringAsync())!["vni"]!;
        var bridge = $"/sys/class/net/obr{vni:x}";
        try
        {
            var target = await _node.Http.PostAsJsonAsync("v1/vms",
                new { name = "target", vcpus = 1, memoryMiB = 128, image = "demo", nics = new[] { new { network = "net" } } });
            Assert.Equal(HttpStatusCode.Created, target.StatusCode);
            Assert.Equal("10.0.0.2", (string?)JsonNode.Parse(await target.Content.ReadAsStringAsync())!["nics"]![0]!["ip"]);
            await _node.WaitForVmAsync("target", "Ready");

            var script = "#!/bin/sh\nif ping -c 3 -W 2 10.0.0.2 >/dev/null 2>&1; then echo 'NETTEST peer reached'; else echo 'NETTEST peer unreached'; fi\n";
            var clock = Stopwatch.StartNew();
            var prober = await _node.Http.PostAsJsonAsync("v1/vms", new
            {
                name = "prober", vcpus = 1, memoryMiB = 128, image = "demo", userData = Encoding.UTF8.GetBytes(script),
                nics = new[] { new { network = "net", ip = "10.0.0.7" } },
            });
            Assert.Equal(HttpStatusCode.Created, prober.StatusCode);
            var id = (string)JsonNode.Parse(await prober.Content.ReadAsStringAsync())!["id"]!;
            var console = Path.Combine(_node.RunDir, "vms", id, "console.log");
            await _node.Eventually(async () => File.Exists(console) && (await File.ReadAllTextAsync(console)).Contains("NETTEST peer") ? (bool?)true : null,
                TimeSpan.FromSeconds(120), "the prober's ping result on its console");
            output.WriteLine($"create to a guest answering ping: {clock.Elapsed.TotalSeconds:F1} s (TCG)");
            var text = await File.ReadAllTextAsync(console);
            Assert.Contains("orchestrator: eth0 10.0.0.7/24", text);
            Assert.Contains("NETTEST peer reached", text);
            Assert.True(Directory.Exists(bridge), $"no bridge {bridge} while the network's VMs run");

            var busy = await _node.Http.DeleteAsync("v1/networks/net");
            Assert.Equal(HttpStatusCode.Conflict, busy.StatusCode);
            var taken = await _node.Http.PostAsJsonAsync("v1/vms",
                new { name = "copycat", vcpus = 1, memoryMiB = 128, image = "demo", nics = new[] { new { network = "net", ip = "10.0.0.7" } } });
            Assert.Equal(HttpStatusCode.Conflict, taken.StatusCode);
            Assert.Contains("nics[0].ip", await taken.Content.ReadAsStringAsync());
        }
        finally
        {
            foreach (var vm in new[] { "target", "prober" })
            {
                await _node.Http.DeleteAsync($"v1/vms/{vm}");
            }

            await _node.Eventually(async () => await _node.GetVmAsync("target") is null && await _node.GetVmAsync("prober") is null ? (bool?)true : null,
                TimeSpan.FromSeconds(60), "both VMs to be gone");
            await _node.Eventually(() => Task.FromResult<bool?>(Directory.Exists(bridge) ? null : true), TimeSpan.FromSeconds(30),
                $"the bridge {bridge} to go with the network's last VM on this host");
        }

        Assert.Equal(HttpStatusCode.NoContent, (await _node.Http.DeleteAsync("v1/networks/net")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _node.Http.GetAsync("v1/networks/net")).StatusCode);
    }

    [Fact]
    public async Task Another_tenant_neither_sees_nor_uses_a_network_and_may_reuse_its_name_and_cidr()
    {
        using var acme = _node.ClientWith(await _node.TenantKeyAsync("acme"));
        using var bolt = _node.ClientWith(await _node.TenantKeyAsync("bolt"));
        Assert.Equal(HttpStatusCode.Created, (await acme.PostAsJsonAsync("v1/networks", new { name = "net", cidr = "10.0.0.0/24" })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bolt.GetAsync("v1/networks/net")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bolt.DeleteAsync("v1/networks/net")).StatusCode);
        Assert.Equal("[]", (await bolt.GetStringAsync("v1/networks")).Trim());
        var intruder = await bolt.PostAsJsonAsync("v1/vms",
            new { name = "x", vcpus = 1, memoryMiB = 128, image = "demo", nics = new[] { new { network = "net" } } });
        Assert.Equal(HttpStatusCode.BadRequest, intruder.StatusCode);
        Assert.Contains("nics[0].network", await intruder.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Created, (await bolt.PostAsJsonAsync("v1/networks", new { name = "net", cidr = "10.0.0.0/24" })).StatusCode);
        var bad = await bolt.PostAsJsonAsync("v1/networks", new { name = "other", cidr = "10.0.0.1/24" });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("cidr", await bad.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Concurrent_creates_never_get_one_address_twice_nor_more_than_the_address_quota_or_the_range_holds()
    {
        using var carl = _node.ClientWith(await _node.TenantKeyAsync("carl", quota: new { addresses = 4 }));
        // A /29: guests get .2 to .6 (.1 is the router). The VMs wait Pending (no host has the label), so nothing boots.
        Assert.Equal(HttpStatusCode.Created, (await carl.PostAsJsonAsync("v1/networks", new { name = "small", cidr = "10.9.0.0/29" })).StatusCode);
        Task<HttpResponseMessage[]> Race(string prefix, int count) => Task.WhenAll(Enumerable.Range(0, count).Select(i => carl.PostAsJsonAsync("v1/vms",
            new { name = $"{prefix}{i}", vcpus = 1, memoryMiB = 64, image = "demo", hostSelector = new[] { "zone=nowhere" }, nics = new[] { new { network = "small" } } })));

        var first = await Race("a", 10);
        Assert.Equal(4, first.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.Equal(6, first.Count(r => r.StatusCode == HttpStatusCode.Forbidden)); // quota exceeded: 4 of 4 addresses in use

        Assert.Equal(HttpStatusCode.OK, (await _node.Http.PatchAsJsonAsync("v1/tenants/carl", new { quota = new { addresses = (int?)null } })).StatusCode);
        var second = await Race("b", 6);
        Assert.Equal(1, second.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.Equal(5, second.Count(r => r.StatusCode == HttpStatusCode.Conflict)); // the range is full

        var addresses = JsonNode.Parse(await carl.GetStringAsync("v1/vms"))!.AsArray().Select(v => (string)v!["nics"]![0]!["ip"]!).ToList();
        Assert.Equal(["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"], addresses.Order(StringComparer.Ordinal));
        Assert.Equal(5, (int)JsonNode.Parse(await carl.GetStringAsync("v1/tenant"))!["usage"]!["addresses"]!);
    }
}
