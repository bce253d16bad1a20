using System.Net;

namespace Orchestrator.Cli.Tests;

public class SecurityGroupCommandTests
{
    private const string Web = """
        {"id":"sg0123456789ab","name":"web","tenant":"acme","rules":[{"id":"r1","protocol":"tcp","portFrom":8000,"portTo":8090,
         "remoteCidr":"10.0.1.0/24","remoteGroup":null,"text":"tcp 8000-8090 from 10.0.1.0/24"}],"createdAt":"2026-12-05T10:00:00Z"}
        """;

    [Fact]
    public async Task Rule_add_sends_the_protocol_the_port_range_and_the_remote_and_remove_names_the_rule()
    {
        var http = new ScriptedHandler()
            .On("POST", "/v1/secgroups/web/rules", HttpStatusCode.Created, Web)
            .On("DELETE", "/v1/secgroups/web/rules/r1", HttpStatusCode.NoContent, "");

        var added = await CliRun.Of(http, null, "secgroup", "rule", "add", "web", "--protocol", "tcp", "--port", "8000-8090", "--remote-cidr", "10.0.1.0/24");
        Assert.Equal(0, added.ExitCode);
        Assert.Equal("""{"protocol":"tcp","portFrom":8000,"portTo":8090,"remoteCidr":"10.0.1.0/24"}""", http.Requests[0].Body);
        Assert.Equal(0, (await CliRun.Of(http, null, "secgroup", "rule", "remove", "web", "r1")).ExitCode);
    }

    [Fact]
    public async Task Set_replaces_a_nics_groups_and_vm_create_puts_the_groups_on_every_nic()
    {
        var http = new ScriptedHandler()
            .On("PUT", "/v1/vms/app/nics/1/secgroups", HttpStatusCode.NoContent, "")
            .On("POST", "/v1/vms", HttpStatusCode.Created, Json.Vm());

        Assert.Equal(0, (await CliRun.Of(http, null, "secgroup", "set", "app", "web", "db", "--nic", "1")).ExitCode);
        Assert.Equal("""{"groups":["web","db"]}""", http.Requests[0].Body);
        var create = await CliRun.Of(http, null, "vm", "create", "app", "--image", "demo", "--network", "net", "--network", "back", "--secgroup", "web");
        Assert.True(create.ExitCode == 0, create.Error.ToString());
        Assert.Contains("""
            "nics":[{"network":"net","securityGroups":["web"]},{"network":"back","securityGroups":["web"]}]
            """.Trim(), http.Requests[1].Body);
    }

    [Fact]
    public async Task A_port_that_is_not_a_number_or_range_is_refused_before_anything_is_sent()
    {
        var http = new ScriptedHandler();

        var run = await CliRun.Of(http, null, "secgroup", "rule", "add", "web", "--protocol", "tcp", "--port", "80:90");

        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("--port", run.Error.ToString());
        Assert.Empty(http.Requests);
    }
}
