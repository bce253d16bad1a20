// `events` and the event-driven `--wait` against a scripted node: parsing, the query sent, lines printed, resuming.
using System.IO.Pipelines;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Orchestrator.Cli.Tests;

public class EventsCommandTests
{
    private const string Web1 = "0f8fad5bd9cb469fa16570867728950e";
    private const string Web2 = "7c9e6679742540de944be07fc1f90ae7";

    private static string Sse(long id, string type, string json) => $"id: {id}\nevent: {type}\ndata: {json}\n\n";

    private static string Event(long id, string type, string? vmId, string data, string at = "2025-01-01T12:00:02.84+00:00") =>
        Sse(id, type, $$"""{"id":{{id}},"type":"{{type}}","tenant":"system","vmId":{{(vmId is null ? "null" : $"\"{vmId}\"")}},"at":"{{at}}","data":{{data}}}""");

    private static readonly string Stream = string.Concat(
        ": keepalive\n\n",
        Event(7, "VmRequested", Web2, $$$"""{"vmId":"{{{Web2}}}","tenant":"system","spec":{"name":"web2","vcpus":2,"memoryMiB":512,"image":"demo"}}"""),
        Event(8, "VmPlaced", Web2, $$"""{"vmId":"{{Web2}}","hostId":"host-a","epoch":1}"""),
        Event(9, "VmReady", Web1, $$"""{"vmId":"{{Web1}}","epoch":3,"at":"2025-01-01T12:00:02.84+00:00"}"""),
        Event(10, "VmFailed", Web1, $$"""{"vmId":"{{Web1}}","epoch":3,"reason":"qemu exited\u001b[2J with code 1"}"""),
        Event(11, "HostRegistered", null, """{"hostId":"host-b","cpus":8,"memoryMiB":16384,"driver":"kvm"}"""));

    [Fact]
    public void Events_binds_follow_types_vm_and_after()
    {
        var a = RecordingActions.Bind<EventsArgs>("events", "--follow", "--type", "VmReady,VmFailed", "--type", "VmStopped,VmReady",
            "--vm", "web1", "--after", "12", "-o", "json");

        Assert.True(a.Follow);
        Assert.Equal(["VmReady", "VmFailed", "VmStopped"], a.Types);
        Assert.Equal(("web1", 12L, OutputFormat.Json), (a.Vm, a.After, a.Client.Output));
    }

    [Fact]
    public void Events_defaults_to_everything_from_the_first_event_without_following()
    {
        var a = RecordingActions.Bind<EventsArgs>("events");

        Assert.False(a.Follow);
        Assert.Empty(a.Types);
        Assert.Equal((null, null, OutputFormat.Table), (a.Vm, a.After, a.Client.Output));
    }

    [Fact]
    public async Task A_negative_after_is_a_usage_error()
    {
        var http = new ScriptedHandler();
        var run = await CliRun.Of(http, null, "events", "--after", "-1");

        Assert.Equal(OrchestratorCli.ExitUsage, run.ExitCode);
        Assert.Contains("--after", run.Error.ToString());
        Assert.Empty(http.Requests);
    }

    [Fact]
    public async Task Events_sends_the_filters_escaped_and_prints_one_line_per_event()
    {
        var http = new ScriptedHandler()
            .On("GET", "/v1/vms", HttpStatusCode.OK, $"[{Json.Vm("web1")}]")
            .On("GET", "/v1/events", HttpStatusCode.OK, Stream);

        var run = await CliRun.Of(http, null, "events", "--type", "VmReady,VmFailed", "--vm", "a b&c", "--after", "6");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("?follow=false&type=VmReady%2CVmFailed&vm=a%20b%26c&after=6", http.Requests.Single(r => r.Path == "/v1/events").Query);
        var lines = run.Out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(6, lines.Length);
        Assert.Matches(@"^\s+ID\s+TIME\s+TYPE\s+VM\s+DETAIL$", lines[0]);
        Assert.Matches(@"^\s+7  2025-01-01T12:00:02\.840Z\s+VmRequested\s+web2\s+tenant system, 2 vCPU, 512 MiB, image demo$", lines[1]);
        Assert.Matches(@"^\s+8 .*VmPlaced\s+web2\s+on host-a, epoch 1$", lines[2]);
        Assert.Matches(@"^\s+9 .*VmReady\s+web1\s+epoch 3$", lines[3]);
        Assert.Matches(@"^\s+10 .*VmFailed\s+web1\s+qemu exited\?\[2J with code 1$", lines[4]); // no escape reaches the terminal
        Assert.Matches(@"^\s+11 .*HostRegistered\s+-\s+host host-b: 8 CPUs, 16384 MiB, kvm$", lines[5]);
    }

    [Fact]
    public async Task Events_with_json_output_prints_each_events_json_on_its_own_line()
    {
        var http = new ScriptedHandler().On("GET", "/v1/events", HttpStatusCode.OK, Stream);

        var run = await CliRun.Of(http, null, "events", "-o", "json");

        Assert.Equal(0, run.ExitCode);
        var lines = run.Out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal([7L, 8, 9, 10, 11], lines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("id").GetInt64()));
        Assert.Equal("/v1/events", Assert.Single(http.Requests).Path);
    }

    [Fact]
    public async Task A_refused_filter_prints_the_problem_and_exits_1()
    {
        var http = new ScriptedHandler().On("GET", "/v1/events", HttpStatusCode.BadRequest,
            """{"title":"invalid request","status":400,"detail":"type unknown event type 'VmExploded'","errors":{"type":["unknown event type 'VmExploded'"]}}""");

        var run = await CliRun.Of(http, null, "events", "--type", "VmExploded", "-o", "json");

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("error: invalid request: type unknown event type 'VmExploded'", run.Error.ToString());
    }

    [Fact]
    public async Task A_followed_stream_that_drops_resumes_after_the_last_event_it_printed()
    {
        var http = new ScriptedHandler()
            .On("GET", "/v1/events", HttpStatusCode.OK, Stream + "id: 12\nevent: VmReady\ndata: {\"cut\":") // dropped mid-event
            .On("GET", "/v1/events", HttpStatusCode.Unauthorized, """{"title":"unauthorized","status":401}""");

        var run = await CliRun.Of(http, null, "events", "--follow", "-o", "json");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal(5, run.Out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // not the cut one
        Assert.Contains("resuming after event 11", run.Error.ToString());
        Assert.Equal(["?follow=true", "?follow=true&after=11"], http.Requests.Select(r => r.Query));
    }

    [Fact]
    public async Task Wait_looks_at_the_vm_again_at_each_of_its_events_instead_of_polling()
    {
        var events = new Pipe();
        var http = new ScriptedHandler()
            .On("GET", "/v1/events", HttpStatusCode.OK, Event(41, "VmReady", Web2, "{}"))
            .On("GET", "/v1/events", events.Reader.AsStream())
            .On("POST", "/v1/vms/web1/start", HttpStatusCode.Accepted, Json.Vm(state: "Starting"))
            .On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm(state: "Starting"));
        int Looks() => http.Requests.Count(r => r.Path == "/v1/vms/web1");

        var running = CliRun.Of(http, null, "vm", "start", "web1", "--wait");
        await Until(() => Looks() == 1);
        await Task.Delay(300); // a client polling every 5 ms would look many times meanwhile
        Assert.Equal(1, Looks());

        http.On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm(state: "Ready"));
        await Write(events, ": keepalive\n\n" + Event(44, "VmReady", Web1, "{}"));
        var run = await running;

        Assert.Equal(0, run.ExitCode);
        Assert.Matches(@"State\s+Ready", run.Out.ToString());
        Assert.Equal(
            [
                ("/v1/events", "?follow=false&last=1"),
                ("/v1/vms/web1/start", ""),
                ("/v1/events", "?follow=true&vm=web1&after=41"),
                ("/v1/vms/web1", ""), // Starting
                ("/v1/vms/web1", ""), // Starting still: the VM's VmReady came before the node's answer caught up
                ("/v1/vms/web1", ""), // Ready
            ],
            http.Requests.Select(r => (r.Path, r.Query)));
    }

    [Fact]
    public async Task Wait_polls_when_the_vms_stream_ends()
    {
        var http = new ScriptedHandler()
            .On("GET", "/v1/events", HttpStatusCode.OK, "")
            .On("GET", "/v1/events", HttpStatusCode.OK, Event(1, "VmPlaced", Web1, "{}")) // then the stream ends
            .On("DELETE", "/v1/vms/web1", HttpStatusCode.Accepted, Json.Vm(state: "Deleting"))
            .On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm(state: "Deleting"))
            .On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm(state: "Deleting"))
            .On("GET", "/v1/vms/web1", HttpStatusCode.NotFound, """{"title":"not found","status":404}""");

        var run = await CliRun.Of(http, null, "vm", "delete", "web1", "--wait");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("web1 deleted", run.Out.ToString().Trim());
        Assert.Equal("?follow=true&vm=web1&after=0", http.Requests[2].Query);
    }

    [Fact]
    public void An_unknown_event_type_shows_its_data()
    {
        var e = ApiEvent.Parse("""{"id":3,"type":"RuleFired","tenant":"a","vmId":null,"at":null,"data":{"rule":"r1"}}""");

        Assert.Equal("""{"rule":"r1"}""", EventRendering.Detail(e));
        Assert.Matches(@"^\s+3  -\s+RuleFired\s+-\s+\{""rule"":""r1""\}$", EventRendering.Line(e, new Dictionary<string, string>()));
    }

    private static async Task Write(Pipe pipe, string text)
    {
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes(text));
        await pipe.Writer.FlushAsync();
    }

    private static async Task Until(Func<bool> condition)
    {
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            await Task.Delay(10, patience.Token);
        }
    }
}
