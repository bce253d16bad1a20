using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Orchestrator.Hypervisor.Networking;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>Security groups on a real guest: its port is closed to everything outside its network until a rule opens it.</summary>
[Collection(NodeCollection.Name)]
public sealed class SecurityGroupTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string HttpdScript = """
        #!/bin/sh
        mkdir -p /tmp/www && echo 'hello from the guest' >/tmp/www/index.html
        httpd -p 8080 -h /tmp/www && echo 'NETTEST httpd up'

        """;

    private NodeProcess _node = null!;

    public async Task InitializeAsync() => _node = await NodeProcess.StartAsync(output);

    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task A_guests_port_is_closed_to_the_outside_until_a_rule_of_its_group_opens_it_and_closed_again_when_the_rule_goes()
    {
        var created = await _node.Http.PostAsJsonAsync("v1/networks", new { name = "net", cidr = "10.0.0.0/24" });
        var vni = (int)JsonNode.Parse(await created.Content.ReadAsStringAsync())!["vni"]!;
        Assert.Equal(HttpStatusCode.Created, (await _node.Http.PostAsJsonAsync("v1/secgroups", new { name = "web" })).StatusCode);
        var bad = await _node.Http.PostAsJsonAsync("v1/secgroups/web/rules", new { protocol = "tcp", portFrom = 8080, portTo = 80 });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("portTo", await bad.Content.ReadAsStringAsync());

        // "The outside": the network's router namespace on this host, whose address (.1) is not a guest's of the network.
        var router = new HostNetworking(Path.Combine(_node.DataDir, "run", "net")).RouterNamespace(vni);
        try
        {
            var vm = await _node.Http.PostAsJsonAsync("v1/vms", new
            {
                name = "web", vcpus = 1, memoryMiB = 128, image = "demo", userData = Encoding.UTF8.GetBytes(HttpdScript),
                nics = new[] { new { network = "net", ip = "10.0.0.5", securityGroups = new[] { "web" } } },
            });
            Assert.Equal(HttpStatusCode.Created, vm.StatusCode);
            var id = (string)JsonNode.Parse(await vm.Content.ReadAsStringAsync())!["id"]!;
            var console = Path.Combine(_node.RunDir, "vms", id, "console.log");
            await _node.Eventually(async () => File.Exists(console) && (await File.ReadAllTextAsync(console)).Contains("NETTEST httpd up") ? (bool?)true : null,
                TimeSpan.FromSeconds(120), "the guest's httpd to be up");

            Assert.False(Fetch(router), "the guest's port answered the outside with no rule allowing it");

            var opened = await _node.Http.PostAsJsonAsync("v1/secgroups/web/rules", new { protocol = "tcp", portFrom = 8080, remoteCidr = "10.0.0.1/32" });
            Assert.Equal(HttpStatusCode.Created, opened.StatusCode);
            var rule = (string)JsonNode.Parse(await opened.Content.ReadAsStringAsync())!["rules"]![0]!["id"]!;
            await _node.Eventually(() => Task.FromResult(Fetch(router) ? (bool?)true : null), TimeSpan.FromSeconds(30),
                "the guest's port to answer once a rule allows tcp/8080 from the router");

            Assert.Equal(HttpStatusCode.NoContent, (await _node.Http.DeleteAsync($"v1/secgroups/web/rules/{rule}")).StatusCode);
            await _node.Eventually(() => Task.FromResult(Fetch(router) ? null : (bool?)true), TimeSpan.FromSeconds(30),
                "the guest's port to close again once the rule is gone");
            Assert.Equal(HttpStatusCode.Conflict, (await _node.Http.DeleteAsync("v1/secgroups/web")).StatusCode); // still on the NIC
        }
        finally
        {
            await _node.Http.DeleteAsync("v1/vms/web");
            await _node.Eventually(async () => await _node.GetVmAsync("web") is null ? (bool?)true : null, TimeSpan.FromSeconds(60), "the VM to be gone");
        }

        Assert.Equal(HttpStatusCode.NoContent, (await _node.Http.DeleteAsync("v1/secgroups/web")).StatusCode);
    }

    /// <summary>
    /// Whether an HTTP GET of the guest's port from <paramref name="ns"/> gets the page within 4 s (bash's /dev/tcp: the
    /// static busybox's wget crashes resolving inside a namespace).
    /// </summary>
    private bool Fetch(string ns)
    {
        const string get = "exec 3<>/dev/tcp/10.0.0.5/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";
        using var wget = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", ns, "timeout", "4", "bash", "-c", get])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var page = wget.StandardOutput.ReadToEnd();
        wget.StandardError.ReadToEnd();
        wget.WaitForExit();
        output.WriteLine($"GET from {ns}: exit {wget.ExitCode} {page.Trim()}");
        return wget.ExitCode == 0 && page.Contains("hello from the guest", StringComparison.Ordinal);
    }
}
