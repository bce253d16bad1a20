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
/// NAT out of a gateway network, the host kept from its guests, and port forwards, with one node in a network namespace
/// of the test's (the host) and another namespace joined to it by a veth standing for the internet (its uplink).
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class NatAndForwardTests(ITestOutputHelper output)
{
    private const string Prefix = "orcnat";
    private const string Outside = "orcnat-out";
    private const string UplinkDevice = "orcnat-up";
    private const string HostUplink = "198.51.100.1";
    private const string OutsideAddress = "198.51.100.2";
    private const int OutsidePort = 8000;
    private const int ForwardPort = 20005;

    /// <summary>The internet's one web server: answers who it saw ("seen A.B.C.D"), and 4 MiB on /big.</summary>
    private const string OutsideServer = """
        import http.server
        class Seen(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"x" * (4 << 20) if self.path == "/big" else ("seen " + self.client_address[0] + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        http.server.ThreadingHTTPServer(("198.51.100.2", 8000), Seen).serve_forever()
        """;

    [Fact]
    public async Task A_gateway_guest_reaches_the_outside_masqueraded_a_closed_network_and_the_host_stay_out_of_reach_and_a_forward_reaches_a_guest()
    {
        var hosts = new NetworkNamespaces(Prefix, "10.219.77");
        hosts.Run("down");
        RemoveOutside();
        hosts.Run("up", "1");
        Process? server = null;
        NodeProcess? node = null;
        var routers = new List<string>();
        try
        {
            MakeOutside();
            server = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", Outside, "/usr/bin/python3", "-c", OutsideServer]))!;
            node = await NodeProcess.StartAsync(output, "orchestrator.network.uplink = auto\n", launcher: hosts.Launcher(1), listen: $"{hosts.Address(1)}:0");
            await NatAndForwardsAsync(node, hosts, routers);
        }
        finally
        {
            if (node is not null)
            {
                await node.DisposeAsync();
            }

            if (server is { HasExited: false })
            {
                server.Kill();
                server.WaitForExit();
            }

            RemoveNamespaces(routers, output);
            RemoveOutside();
            hosts.Run("down");
        }
    }

    private async Task NatAndForwardsAsync(NodeProcess node, NetworkNamespaces hosts, List<string> routers)
    {
        var api = node.Http.BaseAddress!;
        using var acme = node.ClientWith(await node.TenantKeyAsync("acme", quota: new { forwardPorts = "20000-20009" }));
        using var bolt = node.ClientWith(await node.TenantKeyAsync("bolt", quota: new { forwardPorts = "20010-20019" }));
        var open = await CreatedAsync(acme, "v1/networks", new { name = "net", cidr = "10.0.0.0/24" });
        var closed = await CreatedAsync(acme, "v1/networks", new { name = "closed", cidr = "10.0.1.0/24", gateway = false });
        await CreatedAsync(bolt, "v1/networks", new { name = "net", cidr = "10.0.0.0/24" });
        routers.AddRange(new[] { open, closed }.Select(n => new HostNetworking(Path.Combine(node.DataDir, "run", "net")).RouterNamespace((int)n["vni"]!)));
        await CreatedAsync(acme, "v1/secgroups", new { name = "web" });
        var rule = (string)(await CreatedAsync(acme, "v1/secgroups/web/rules",
            new { protocol = "tcp", portFrom = 8080, remoteCidr = "198.51.100.0/24" }))["rules"]![0]!["id"]!;
        try
        {
            var clock = Stopwatch.StartNew();
            var web = await CreatedAsync(acme, "v1/vms", new
            {
                name = "web", vcpus = 1, memoryMiB = 128, image = "demo", userData = Encoding.UTF8.GetBytes(GuestScript(api, gateway: true)),
                nics = new[] { new { network = "net", ip = "10.0.0.5", securityGroups = new[] { "web" } } },
            });
            var shut = await CreatedAsync(acme, "v1/vms", new
            {
                name = "shut", vcpus = 1, memoryMiB = 128, image = "demo", userData = Encoding.UTF8.GetBytes(GuestScript(api, gateway: false)),
                nics = new[] { new { network = "closed", ip = "10.0.1.5" } },
            });

            var seen = await ConsoleTextAsync(node, web, "NETTEST outside", TimeSpan.FromSeconds(180));
            output.WriteLine($"create to the guest's first fetch from outside answered: {clock.Elapsed.TotalSeconds:F1} s (TCG)");
            var webText = await ConsoleTextAsync(node, web, "NETTEST done", TimeSpan.FromSeconds(120));
            var shutText = await ConsoleTextAsync(node, shut, "NETTEST done", TimeSpan.FromSeconds(120));
            output.WriteLine(string.Join('\n', (webText + shutText).Split('\n').Where(l => l.Contains("NETTEST", StringComparison.Ordinal))));
            if (!seen.Contains($"NETTEST outside seen {HostUplink}", StringComparison.Ordinal))
            {
                Diagnose(File.ReadAllText(Path.Combine(node.DataDir, "run", "net", ((int)open["vni"]!).ToString("x", CultureInfo.InvariantCulture), "dnsmasq.pid")).Trim());
            }

            Assert.Contains($"NETTEST outside seen {HostUplink}", seen); // masqueraded twice: router, then the host's uplink
            Assert.Contains("NETTEST api unreached", webText);
            Assert.Contains("NETTEST outside failed", shutText);
            Assert.Contains("NETTEST api unreached", shutText);

            await ForwardsAsync(node, acme, bolt, rule);
        }
        finally
        {
            foreach (var vm in new[] { "web", "shut" })
            {
                await acme.DeleteAsync($"v1/vms/{vm}");
            }

            await node.Eventually(async () => (await acme.GetStringAsync("v1/vms")).Trim() == "[]" ? (bool?)true : null,
                TimeSpan.FromSeconds(90), "every VM to be gone");
        }

        Assert.Equal("[]", (await acme.GetStringAsync("v1/networks/net/forwards")).Trim()); // released with the VM
        foreach (var router in routers)
        {
            await node.Eventually(() => Task.FromResult(File.Exists($"/run/netns/{router}") ? null : (bool?)true),
                TimeSpan.FromSeconds(30), $"the router namespace {router} to go");
        }

        Assert.DoesNotContain(": oup", Run("ip", "netns", "exec", $"{Prefix}-h1", "ip", "-o", "link")); // the routers' uplinks went too
    }

    /// <summary>A forward from the host's uplink address reaches the guest's httpd, within its security groups.</summary>
    private async Task ForwardsAsync(NodeProcess node, HttpClient acme, HttpClient bolt, string rule)
    {
        var foreign = await bolt.PostAsJsonAsync("v1/networks/net/forwards", new { hostPort = 20010, vm = "web", port = 8080 });
        Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        var outOfRange = await acme.PostAsJsonAsync("v1/networks/net/forwards", new { hostPort = 20010, vm = "web", port = 8080 });
        Assert.Equal(HttpStatusCode.BadRequest, outOfRange.StatusCode);
        Assert.Contains("hostPort", await outOfRange.Content.ReadAsStringAsync());

        var clock = Stopwatch.StartNew();
        var forward = (string)(await CreatedAsync(acme, "v1/networks/net/forwards", new { hostPort = ForwardPort, vm = "web", port = 8080 }))["id"]!;
        await node.Eventually(() => Task.FromResult(Fetch() ? (bool?)true : null), TimeSpan.FromSeconds(30), "the forward to reach the guest's httpd");
        output.WriteLine($"forward created to answering from outside: {clock.Elapsed.TotalSeconds:F1} s");
        var taken = await acme.PostAsJsonAsync("v1/networks/net/forwards", new { hostPort = ForwardPort, vm = "web", port = 80 });
        Assert.Equal(HttpStatusCode.Conflict, taken.StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await acme.DeleteAsync($"v1/networks/net/forwards/{forward}")).StatusCode);
        await node.Eventually(() => Task.FromResult(Fetch() ? null : (bool?)true), TimeSpan.FromSeconds(30), "the removed forward to close");

        // Forwarded traffic keeps the client's address: the guest's group judges it, and without its rule lets nothing in.
        await CreatedAsync(acme, "v1/networks/net/forwards", new { hostPort = ForwardPort, vm = "web", port = 8080 });
        await node.Eventually(() => Task.FromResult(Fetch() ? (bool?)true : null), TimeSpan.FromSeconds(30), "the forward made again to answer");
        Assert.Equal(HttpStatusCode.NoContent, (await acme.DeleteAsync($"v1/secgroups/web/rules/{rule}")).StatusCode);
        await node.Eventually(() => Task.FromResult(Fetch() ? null : (bool?)true), TimeSpan.FromSeconds(30),
            "the forward to stop answering once the guest's group no longer allows the outside");
    }

    /// <summary>
    /// The guest's probes: the outside's web server (with a gateway it answers who it saw, else the guest even routes via
    /// .1 itself and still gets nothing), its latency and throughput, and the node's API on the host (never reached).
    /// </summary>
    private static string GuestScript(Uri api, bool gateway) => $$"""
        #!/bin/sh
        # busybox's static wget crashes resolving even a numeric address: HTTP by hand over nc.
        get() { printf 'GET %s HTTP/1.0\r\n\r\n' "$3" | nc -w 5 "$1" "$2" 2>/dev/null; }
        mkdir -p /tmp/www && echo 'hello from the guest' >/tmp/www/index.html
        httpd -p 8080 -h /tmp/www && echo 'NETTEST httpd up'
        {{(gateway ? "" : "ip route add default via 10.0.1.1 2>/dev/null || route add default gw 10.0.1.1")}}
        n=0
        until get {{OutsideAddress}} {{OutsidePort}} / | grep seen >/tmp/seen || [ $n -ge {{(gateway ? 15 : 2)}} ]; do n=$((n + 1)); sleep 1; done
        if [ -s /tmp/seen ]; then echo "NETTEST outside $(cat /tmp/seen)"; else echo 'NETTEST outside failed'; fi
        if [ -s /tmp/seen ]; then
            t0=$(cut -d' ' -f1 /proc/uptime)
            for i in 1 2 3 4 5 6 7 8 9 10; do get {{OutsideAddress}} {{OutsidePort}} / >/dev/null; done
            t1=$(cut -d' ' -f1 /proc/uptime)
            bytes=$(get {{OutsideAddress}} {{OutsidePort}} /big | wc -c)
            t2=$(cut -d' ' -f1 /proc/uptime)
            echo "NETTEST timing 10 fetches from $t0 to $t1 s, $bytes bytes from $t1 to $t2 s"
        fi
        if get {{api.Host}} {{api.Port}} /healthz | grep -q '^ok'; then echo 'NETTEST api reached'; else echo 'NETTEST api unreached'; fi
        echo 'NETTEST done'

        """;

    /// <summary>An HTTP GET of the forwarded port on the host's uplink address, from the outside, within 4 s.</summary>
    private bool Fetch()
    {
        var get = $"exec 3<>/dev/tcp/{HostUplink}/{ForwardPort} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";
        var page = Run("ip", "netns", "exec", Outside, "timeout", "4", "bash", "-c", get);
        output.WriteLine($"GET :{ForwardPort} from outside: {page.Trim().Split('\n').LastOrDefault()}");
        return page.Contains("hello from the guest", StringComparison.Ordinal);
    }

    /// <summary>What the host and the network's router (entered by its dnsmasq: its namespace is the node's mount's) hold.</summary>
    private void Diagnose(string dnsmasq)
    {
        string[] router = ["nsenter", "-t", dnsmasq, "-n"];
        var host = $"{Prefix}-h1";
        foreach (var command in new[]
        {
            new[] { "ip", "netns", "exec", host, "nft", "list", "ruleset" },
            ["ip", "netns", "exec", host, "ip", "-o", "addr"],
            ["ip", "netns", "exec", host, "ip", "route"],
            ["ip", "netns", "exec", host, "cat", "/proc/sys/net/ipv4/ip_forward"],
 [.. router, "nft", "list", "ruleset"],
            [.. router, "ip", "-o", "addr"],
            [.. router, "ip", "route"],
            [.. router, "cat", "/proc/sys/net/ipv4/ip_forward"],
            [.. router, "timeout", "4", "bash", "-c", $"exec 3<>/dev/tcp/{OutsideAddress}/{OutsidePort} && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3"],
            ["ip", "netns", "exec", host, "timeout", "4", "bash", "-c", $"exec 3<>/dev/tcp/{OutsideAddress}/{OutsidePort} && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3"],
        })
        {
            output.WriteLine($"$ {string.Join(' ', command)}\n{RunWithErrors(command[0], command[1..])}");
        }
    }

    /// <summary>The outside: a namespace joined to the host's by a veth that is the host's default route (its uplink).</summary>
    private static void MakeOutside()
    {
        var host = $"{Prefix}-h1";
        Run("ip", "netns", "add", Outside);
        Run("ip", "link", "add", UplinkDevice, "netns", host, "type", "veth", "peer", "name", "eth0", "netns", Outside);
        Run("ip", "-n", host, "addr", "add", $"{HostUplink}/24", "dev", UplinkDevice);
        Run("ip", "-n", host, "link", "set", UplinkDevice, "up");
        Run("ip", "-n", host, "route", "add", "default", "via", OutsideAddress);
        Run("ip", "-n", Outside, "addr", "add", $"{OutsideAddress}/24", "dev", "eth0");
        Run("ip", "-n", Outside, "link", "set", "eth0", "up");
        Run("ip", "-n", Outside, "link", "set", "lo", "up");
    }

    private void RemoveOutside() => RemoveNamespaces([Outside], output);

    private static async Task<JsonObject> CreatedAsync(HttpClient client, string path, object body)
    {
        var created = await client.PostAsJsonAsync(path, body);
        var text = await created.Content.ReadAsStringAsync();
        Assert.True(created.StatusCode == HttpStatusCode.Created, $"POST {path}: {(int)created.StatusCode} {text}");
        return JsonNode.Parse(text)!.AsObject();
    }
}
