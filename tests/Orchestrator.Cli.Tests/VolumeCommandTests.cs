using System.Net;

namespace Orchestrator.Cli.Tests;

public class VolumeCommandTests
{
    private const string Data1 = """
        {"id":"0123456789abcdef0123456789abcdef","name":"data1","tenant":"acme","sizeGiB":5,"pool":"nfs","host":null,"attachedTo":"web",
         "createdAt":"2026-12-05T10:00:00Z"}
        """;

    [Fact]
    public async Task Volume_create_sends_name_size_and_pool_and_shows_the_volume()
    {
        var http = new ScriptedHandler().On("POST", "/v1/volumes", HttpStatusCode.Created, Data1);

        var run = await CliRun.Of(http, null, "volume", "create", "data1", "--size-gib", "5", "--pool", "nfs");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("""{"name":"data1","sizeGiB":5,"pool":"nfs"}""", http.Requests.Single().Body);
        Assert.Matches(@"data1\s+5\s+nfs\s+-?\s*web", run.Out.ToString());
    }

    [Fact]
    public async Task Vm_attach_and_detach_name_the_vm_and_the_volume_in_the_path_and_resize_sends_the_new_size()
    {
        var http = new ScriptedHandler()
            .On("POST", "/v1/vms/web/volumes/data1", HttpStatusCode.OK, Data1)
            .On("DELETE", "/v1/vms/web/volumes/data1", HttpStatusCode.OK, Data1)
            .On("POST", "/v1/volumes/data1/resize", HttpStatusCode.OK, Data1);

        Assert.Equal(0, (await CliRun.Of(http, null, "vm", "attach", "web", "data1")).ExitCode);
        Assert.Equal(0, (await CliRun.Of(http, null, "vm", "detach", "web", "data1")).ExitCode);
        Assert.Equal(0, (await CliRun.Of(http, null, "volume", "resize", "data1", "--size-gib", "8")).ExitCode);

        Assert.Equal([HttpMethod.Post, HttpMethod.Delete, HttpMethod.Post], http.Requests.Select(r => r.Method));
        Assert.Equal("""{"sizeGiB":8}""", http.Requests[2].Body);
    }

    [Fact]
    public async Task Vm_delete_with_volumes_asks_for_them_to_go_too_and_plain_delete_does_not()
    {
        var http = new ScriptedHandler()
            .On("DELETE", "/v1/vms/web1", HttpStatusCode.Accepted, Json.Vm(state: "Deleting"))
            .On("DELETE", "/v1/vms/web1", HttpStatusCode.Accepted, Json.Vm(state: "Deleting"));

        Assert.Equal(0, (await CliRun.Of(http, null, "vm", "delete", "web1", "--with-volumes")).ExitCode);
        Assert.Equal(0, (await CliRun.Of(http, null, "vm", "delete", "web1")).ExitCode);

        Assert.Equal("?withVolumes=true", http.Requests[0].Query);
        Assert.Equal("", http.Requests[1].Query);
    }

    [Fact]
    public async Task Volume_create_without_a_size_is_refused_before_anything_is_sent()
    {
        var http = new ScriptedHandler();

        var run = await CliRun.Of(http, null, "volume", "create", "data1");

        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("--size-gib", run.Error.ToString());
        Assert.Empty(http.Requests);
    }
}
