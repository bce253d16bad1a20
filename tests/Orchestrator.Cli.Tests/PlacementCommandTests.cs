using System.Net;

namespace Orchestrator.Cli.Tests;

public class PlacementCommandTests
{
    [Fact]
    public async Task Group_create_sends_the_policy_and_shows_the_group()
    {
        var http = new ScriptedHandler().On("POST", "/v1/groups", HttpStatusCode.Created,
            """{"name":"web","policy":"anti-affinity","members":[],"createdAt":"2026-12-05T10:00:00Z"}""");
        var run = await CliRun.Of(http, null, "group", "create", "web", "--policy", "anti-affinity");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("""{"name":"web","policy":"anti-affinity"}""", http.Requests.Single().Body);
        Assert.Matches(@"web\s+anti-affinity", run.Out.ToString());

        var bad = await CliRun.Of(new ScriptedHandler(), null, "group", "create", "web", "--policy", "apart");
        Assert.NotEqual(0, bad.ExitCode);
    }

    [Fact]
    public async Task Host_label_and_unlabel_send_what_to_set_and_what_to_remove()
    {
        const string host = """{"id":"h2","state":"Up","labels":{"ssd":"true","zone":"a"}}""";
        var http = new ScriptedHandler().On("POST", "/v1/hosts/h2/labels", HttpStatusCode.OK, host);
        var run = await CliRun.Of(http, null, "host", "label", "h2", "zone=a", "ssd=true");
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("""{"set":{"zone":"a","ssd":"true"},"remove":[]}""", http.Requests.Single().Body);
        Assert.Contains("h2", run.Out.ToString());

        var again = new ScriptedHandler().On("POST", "/v1/hosts/h2/labels", HttpStatusCode.OK, host);
        Assert.Equal(0, (await CliRun.Of(again, null, "host", "unlabel", "h2", "ssd")).ExitCode);
        Assert.Equal("""{"set":{},"remove":["ssd"]}""", again.Requests.Single().Body);
    }

    [Fact]
    public void Vm_create_takes_host_selectors_and_a_group()
    {
        var a = RecordingActions.Bind<VmCreateArgs>("vm", "create", "web1", "--image", "demo", "--host-label", "zone=a", "--host-label", "!gpu",
            "--group", "web");
        Assert.Equal(["zone=a", "!gpu"], a.HostSelector);
        Assert.Equal("web", a.Group);
        Assert.Null(RecordingActions.Bind<VmCreateArgs>("vm", "create", "web1", "--image", "demo").HostSelector);
    }
}
