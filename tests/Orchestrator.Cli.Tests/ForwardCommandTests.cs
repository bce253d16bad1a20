using System.Net;

namespace Orchestrator.Cli.Tests;

public class ForwardCommandTests
{
    private const string Forward = """
        {"id":"f01234567","network":"net","protocol":"tcp","hostPort":20000,"vm":"web","port":80,"ip":"10.0.0.5","createdAt":"2026-12-05T10:00:00Z"}
        """;

    [Fact]
    public async Task Forward_sends_the_host_port_the_vm_and_its_port_and_unforward_names_the_forward()
    {
        var http = new ScriptedHandler()
            .On("POST", "/v1/networks/net/forwards", HttpStatusCode.Created, Forward)
            .On("GET", "/v1/networks/net/forwards", HttpStatusCode.OK, $"[{Forward}]")
            .On("DELETE", "/v1/networks/net/forwards/f01234567", HttpStatusCode.NoContent, "");

        var added = await CliRun.Of(http, null, "network", "forward", "net", "--host-port", "20000", "--to", "web:80");
        Assert.True(added.ExitCode == 0, added.Error.ToString());
        Assert.Equal("""{"hostPort":20000,"vm":"web","port":80,"protocol":"tcp"}""", http.Requests[0].Body);
        var listed = await CliRun.Of(http, null, "network", "forwards", "net");
        Assert.Contains("f01234567", listed.Out.ToString());
        Assert.Equal(0, (await CliRun.Of(http, null, "network", "unforward", "net", "f01234567")).ExitCode);
    }

    [Fact]
    public async Task A_target_that_is_not_vm_colon_port_is_refused_before_anything_is_sent()
    {
        var http = new ScriptedHandler();

        var run = await CliRun.Of(http, null, "network", "forward", "net", "--host-port", "20000", "--to", "web");

        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("--to", run.Error.ToString());
        Assert.Empty(http.Requests);
    }

    [Fact]
    public async Task Tenant_set_forward_ports_keeps_the_rest_of_the_quota()
    {
        var http = new ScriptedHandler()
            .On("GET", "/v1/tenants/acme", HttpStatusCode.OK,
                """{"id":"acme","disabled":false,"quota":{"vms":5,"vcpus":null,"memoryMiB":null},"usage":{"vms":0,"vcpus":0,"memoryMiB":0},"keys":[],"pool":null}""")
            .On("PATCH", "/v1/tenants/acme", HttpStatusCode.OK,
                """{"id":"acme","disabled":false,"quota":{"vms":5,"vcpus":null,"memoryMiB":null,"forwardPorts":"20000-20099"},"usage":{"vms":0,"vcpus":0,"memoryMiB":0},"keys":[],"pool":null}""");

        var run = await CliRun.Of(http, null, "tenant", "set", "acme", "--forward-ports", "20000-20099");

        Assert.True(run.ExitCode == 0, run.Error.ToString());
        Assert.Contains("\"vms\":5", http.Requests[1].Body);
        Assert.Contains("\"forwardPorts\":\"20000-20099\"", http.Requests[1].Body);
        Assert.Contains("20000-20099", run.Out.ToString());
    }
}
