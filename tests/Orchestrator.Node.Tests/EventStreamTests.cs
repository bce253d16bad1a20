// GET /v1/events against a real node: resuming, tenant scope, filters, and the end of a non-following stream.
using System.Net;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <remarks>
/// The tests share one node: each reads the events of its own VMs and tenants, or compares two reads of the whole
/// stream with each other, so another test's events in the stream change nothing.
/// </remarks>
[Collection(NodeCollection.Name)]
public sealed class EventStreamTests(SharedNode fixture, ITestOutputHelper output) : IClassFixture<SharedNode>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    private readonly NodeProcess _node = fixture.Node;

    [Fact]
    public async Task A_stream_cut_off_and_resumed_with_Last_Event_ID_has_no_gaps_and_no_repeats()
    {
        var vmId = (string)(await _node.CreateVmAsync("resumed"))["id"]!;

        // Cut off while the VM boots (events still being written), then resume from the last id seen.
        var before = await Sse.ReadUntilAsync(_node, "v1/events", lastEventId: null, e => e.VmId == vmId && e.Type == "VmPlaced");
        var after = await Sse.ReadUntilAsync(_node, "v1/events", before[^1].Id, e => e.VmId == vmId && e.Type == "VmReady");
        var resumed = before.Concat(after).ToList();

        var whole = (await Sse.ReadAllAsync(_node, "v1/events?follow=false")).Where(e => e.Id <= resumed[^1].Id).ToList();
        Assert.Equal(whole.Select(e => (e.Id, e.Type, e.Data)), resumed.Select(e => (e.Id, e.Type, e.Data)));
        Sse.AssertIncreasing(resumed);
        Sse.AssertInOrder(resumed, vmId, "VmRequested", "VmPlaced", "VmStarted", "VmReady");
    }

    [Fact]
    public async Task An_admin_reading_one_tenant_sees_only_that_tenants_events()
    {
        var a = await CreateForAsync("a", "alpha");
        var b = await CreateForAsync("b", "beta");
        var vmIds = new[] { a, b };

        var ofA = await Sse.ReadAllAsync(_node, "v1/events?tenant=a&follow=false");
        Assert.Contains(ofA, e => e.VmId == a && e.Type == "VmRequested");
        Assert.Contains(ofA, e => e.VmId == a && e.Type == "VmPlaced");
        Assert.All(ofA, e => Assert.Equal("a", (string?)e.Json["tenant"]));
        Assert.All(ofA.Where(e => e.VmId is not null), e => Assert.Equal(a, e.VmId));
        Assert.Contains(ofA, e => e.Type == "TenantCreated");

        var ofB = await Sse.ReadAllAsync(_node, "v1/events?tenant=b&follow=false");
        Assert.Equal([b], ofB.Where(e => e.VmId is not null).Select(e => e.VmId!).Distinct());

        // Unscoped, an admin reads every tenant's events and the operator's own (a host's have no tenant).
        var all = await Sse.ReadAllAsync(_node, "v1/events?follow=false");
        Assert.Contains(all, e => e.Type == "HostRegistered" && e.Json["tenant"] is null);
        Assert.All(vmIds, id => Assert.Contains(all, e => e.VmId == id));
        Sse.AssertIncreasing(all);
    }

    [Fact]
    public async Task Type_and_vm_filters_narrow_the_stream_and_a_vm_is_its_id_not_its_name()
    {
        var first = (string)(await _node.CreateVmAsync("twice"))["id"]!;
        Assert.Equal(HttpStatusCode.Accepted, (await _node.Http.DeleteAsync("v1/vms/twice")).StatusCode);
        await _node.Eventually(async () => await _node.GetVmAsync("twice") is null ? true : (bool?)null, Patience, "twice to be gone");
        var second = (string)(await _node.CreateVmAsync("twice"))["id"]!;

        var ofTwice = await Sse.ReadAllAsync(_node, "v1/events?vm=twice&follow=false");
        Assert.Contains(ofTwice, e => e.Type == "VmRequested");
        Assert.All(ofTwice, e => Assert.Equal(second, e.VmId));

        var typed = await Sse.ReadAllAsync(_node, "v1/events?type=VmRequested,VmReleased&follow=false");
        Assert.All(typed, e => Assert.Contains(e.Type, new[] { "VmRequested", "VmReleased" }));
        Assert.Equal(
            new[] { ("VmRequested", first), ("VmReleased", first), ("VmRequested", second) },
            typed.Where(e => e.VmId == first || e.VmId == second).Select(e => (e.Type, e.VmId!)).ToList());
        Assert.All(typed, e => Assert.Equal(e.Type, (string?)e.Json["type"]));

        var problem = await ProblemAsync("v1/events?type=VmReady,NoSuchEvent,AlsoNot", HttpStatusCode.BadRequest);
        Assert.Contains("NoSuchEvent", (string?)problem["detail"]);
        Assert.Contains("AlsoNot", (string?)problem["detail"]);
        Assert.DoesNotContain("'VmReady'", (string?)problem["detail"]);
        Assert.NotNull(problem["errors"]!["type"]);

        await ProblemAsync("v1/events?vm=nobody", HttpStatusCode.NotFound);
        await ProblemAsync("v1/events?after=-1", HttpStatusCode.BadRequest);
        await ProblemAsync("v1/events?follow=maybe", HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task With_300_streams_open_requests_are_answered_and_every_stream_gets_each_new_event_once()
    {
        using var client = new HttpClient { BaseAddress = _node.Http.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        client.DefaultRequestHeaders.Authorization = _node.Http.DefaultRequestHeaders.Authorization;
        using var stop = new CancellationTokenSource(Patience);
        var seen = new List<Sse.SseEvent>[300];
        var open = 0;
        var readers = Enumerable.Range(0, seen.Length).Select(i => Task.Run(async () =>
        {
            seen[i] = [];
            // Half resume from an old offset (their past read from the journal), half start from the newest event.
            var path = i % 2 == 0 ? "v1/events?type=TenantCreated" : "v1/events?type=TenantCreated&last=1";
            var response = await client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, stop.Token);
            while (response.StatusCode == HttpStatusCode.TooManyRequests) // the admin's request budget: 300 opens take a few seconds
            {
                response.Dispose();
                await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1), stop.Token);
                response = await client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, stop.Token);
            }

            using var _ = response;
            response.EnsureSuccessStatusCode();
            Interlocked.Increment(ref open);
            await foreach (var e in Sse.Events(await response.Content.ReadAsStreamAsync(stop.Token), stop.Token))
            {
                lock (seen[i])
                {
                    seen[i].Add(e);
                }

                if ((string?)e.Json["data"]?["tenant"] == "late-2")
                {
                    return;
                }
            }
        })).ToList();
        await _node.Eventually(() => Task.FromResult(Volatile.Read(ref open) == seen.Length ? "open" : null), Patience, "300 streams to open");

        await Task.Delay(TimeSpan.FromSeconds(2)); // the admin's budget, spent on opening, refills
        Assert.Equal(HttpStatusCode.OK, (await _node.Http.GetAsync("v1/vms")).StatusCode);
        await _node.TenantKeyAsync("late-1");
        await _node.TenantKeyAsync("late-2");
        await Task.WhenAll(readers).WaitAsync(Patience);

        Assert.All(seen, events =>
        {
            var tenants = events.Select(e => (string?)e.Json["data"]?["tenant"]).ToList();
            Assert.Equal(1, tenants.Count(t => t == "late-1"));
            Assert.Equal("late-2", tenants[^1]);
            Sse.AssertIncreasing(events);
        });
    }

    [Fact]
    public async Task Without_follow_the_stream_ends_after_the_events_written_so_far()
    {
        await _node.CreateVmAsync("brief");

        using var response = await _node.Http.GetAsync("v1/events?follow=false", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var ends = new CancellationTokenSource(Patience);
        var text = await response.Content.ReadAsStringAsync(ends.Token); // returns only because the server ended it
        var events = Sse.Parse(text);
        Assert.Contains(events, e => e.Type == "VmRequested");
        Assert.DoesNotContain(": keepalive", text);

        var latest = events[^1].Id;
        var rest = await Sse.ReadAllAsync(_node, $"v1/events?follow=false&after={latest}");
        Assert.All(rest, e => Assert.True(e.Id > latest));
        var last = await Sse.ReadAllAsync(_node, "v1/events?follow=false&last=1");
        Assert.True(last.Count >= 1 && last[0].Id >= latest, "last=1 starts at the newest event");
    }

    [Fact]
    public async Task The_cli_waits_on_a_vms_events_and_prints_them()
    {
        var looks = new CountingHandler("/v1/vms/cli1");
        var (created, createdOut) = await RunCliAsync(looks, "vm", "create", "cli1", "--vcpus", "1", "--memory", "256", "--image", "demo", "--wait");
        Assert.True(created == 0, createdOut);
        Assert.Contains("cli1 ready in", createdOut);

        var (listed, lines) = await RunCliAsync(null, "events", "--vm", "cli1");
        Assert.Equal(0, listed);
        foreach (var type in new[] { "VmRequested", "VmPlaced", "VmStarted", "VmReady" })
        {
            Assert.Matches($@"\n\s+\d+  \S+Z\s+{type}\s+cli1\b", lines);
        }

        // Each of the VM's events is one more look at most (and one to start, one if the answer lagged the event);
        // polling every 200 ms through a boot under TCG would look many more times.
        var vmEvents = (await Sse.ReadAllAsync(_node, "v1/events?vm=cli1&follow=false")).Count;
        output.WriteLine($"--wait looked at cli1 {looks.Count} times; cli1 has {vmEvents} events");
        Assert.InRange(looks.Count, 1, vmEvents + 2);

        var (stopped, stoppedOut) = await RunCliAsync(null, "vm", "stop", "cli1", "--wait");
        Assert.True(stopped == 0, stoppedOut);
        var (_, json) = await RunCliAsync(null, "events", "--vm", "cli1", "--type", "VmStopped", "-o", "json");
        var line = Assert.Single(json.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("VmStopped", (string?)JsonNode.Parse(line)!["type"]);
    }

    /// <summary>The CLI in this process, finding the node through its data dir.</summary>
    private async Task<(int ExitCode, string Output)> RunCliAsync(HttpMessageHandler? handler, params string[] args)
    {
        var stdout = new StringWriter();
        var context = new Cli.CliContext
        {
            Out = stdout,
            Error = stdout,
            GetEnvironmentVariable = name => name == "ORCHESTRATOR_DATA" ? _node.DataDir : null,
            HttpHandler = handler,
        };
        using var patience = new CancellationTokenSource(Patience);
        var exit = await Cli.OrchestratorCli.RunAsync(args, context, patience.Token);
        output.WriteLine($"$ orchestrator {string.Join(' ', args)} → {exit}\n{stdout}");
        return (exit, stdout.ToString());
    }

    private sealed class CountingHandler(string path) : DelegatingHandler(new SocketsHttpHandler())
    {
        private int _count;

        public int Count => _count;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri!.AbsolutePath == path)
            {
                Interlocked.Increment(ref _count);
            }

            return base.SendAsync(request, cancellationToken);
        }
    }

    private async Task<string> CreateForAsync(string tenant, string name)
    {
        await _node.Http.PostAsJsonAsync("v1/tenants", new { id = tenant }); // 201, or 409 when it exists
        var response = await _node.Http.PostAsJsonAsync($"v1/vms?tenant={tenant}", new { name, vcpus = 1, memoryMiB = 256, image = "demo" });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        var vm = JsonNode.Parse(body)!;
        Assert.Equal(tenant, (string?)vm["tenant"]);
        return (string)vm["id"]!;
    }

    private async Task<JsonNode> ProblemAsync(string path, HttpStatusCode status)
    {
        using var response = await _node.Http.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{path}: {(int)response.StatusCode} {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonNode.Parse(body)!;
    }
}

/// <summary>The same read side on PostgreSQL (persistence-postgres.conf): a stream resumed mid-way misses nothing.</summary>
[Collection(NodeCollection.Name)]
public sealed class EventStreamOnPostgresTests(ITestOutputHelper output) : IAsyncLifetime
{
    private PostgresServer _postgres = null!;
    private NodeProcess _node = null!;

    public async Task InitializeAsync()
    {
        _postgres = await PostgresServer.StartAsync();
        _node = await NodeProcess.StartAsync(output, $"""orchestrator.persistence.postgres-connection = "{_postgres.ConnectionString}" """,
            extraArgs: ["--config", Path.Combine(Checkout.Root(), "config", "persistence-postgres.conf")]);
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        await _postgres.DisposeAsync();
    }

    [Fact]
    public async Task A_tenant_stream_on_postgres_cut_off_and_resumed_has_no_gaps_and_no_repeats()
    {
        var vmId = (string)(await _node.CreateVmAsync("pg1"))["id"]!;

        var before = await Sse.ReadUntilAsync(_node, "v1/events?tenant=system", lastEventId: null, e => e.VmId == vmId && e.Type == "VmPlaced");
        var after = await Sse.ReadUntilAsync(_node, "v1/events?tenant=system", before[^1].Id, e => e.VmId == vmId && e.Type == "VmReady");
        var resumed = before.Concat(after).ToList();

        var whole = (await Sse.ReadAllAsync(_node, "v1/events?tenant=system&follow=false")).Where(e => e.Id <= resumed[^1].Id).ToList();
        Assert.Equal(whole.Select(e => (e.Id, e.Type, e.Data)), resumed.Select(e => (e.Id, e.Type, e.Data)));
        Sse.AssertIncreasing(resumed);
        Sse.AssertInOrder(resumed, vmId, "VmRequested", "VmPlaced", "VmStarted", "VmReady");
        Assert.All(resumed, e => Assert.Equal("system", (string?)e.Json["tenant"]));
    }
}

/// <summary>One event's frame, without a node: what may never leave it, and one line per event.</summary>
public sealed class EventFrameTests
{
    private sealed record KeyIssued(string KeyId, string SecretHash, KeySecrets Inner, IReadOnlyList<KeySecrets> History, string Reason)
        : Domain.Ledger.ILedgerEvent;

    private sealed record KeySecrets(string Secret, string Label);

    [Fact]
    public void No_property_naming_a_secret_is_sent_at_any_depth_and_each_event_is_one_data_line()
    {
        var evt = new KeyIssued("k1", "sha256:abc", new KeySecrets("s3cr3t", "inner"), [new KeySecrets("old", "older")], "line one\nline two\r");
        var frame = Api.EventStream.Frame(new Akka.Persistence.Query.EventEnvelope(
            Akka.Persistence.Query.Offset.Sequence(42), "keys", 7, evt, new DateTime(2025, 1, 1, 12, 0, 0, DateTimeKind.Utc).Ticks, ["tenant:a"]));

        var lines = frame.Split('\n');
        Assert.Equal(["id: 42", "event: KeyIssued"], lines[..2]);
        Assert.StartsWith("data: ", lines[2]);
        Assert.Equal(["", ""], lines[3..]); // the blank line that ends the event
        Assert.DoesNotContain("secret", frame, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("s3cr3t", frame);
        Assert.DoesNotContain("sha256", frame);

        var json = JsonNode.Parse(lines[2]["data: ".Length..])!;
        Assert.Equal(("a", "2025-01-01T12:00:00+00:00"), ((string?)json["tenant"], (string?)json["at"]));
        Assert.Equal("k1", (string?)json["data"]!["keyId"]);
        Assert.Equal("inner", (string?)json["data"]!["inner"]!["label"]);
        Assert.Equal("older", (string?)json["data"]!["history"]![0]!["label"]);
        Assert.Equal("line one\nline two\r", (string?)json["data"]!["reason"]);
    }

    [Fact]
    public void A_vms_user_data_never_leaves_the_node_in_an_event_but_its_hostname_does()
    {
        var userData = "#!/bin/sh\necho token=hunter2\n"u8.ToArray();
        var spec = new Domain.Vms.VmSpec("web1", 1, 128, "demo", Bootstrap: new Domain.Vms.VmBootstrap("web1.example.org", null, userData));
        var evt = new Domain.Ledger.LedgerEvents.VmRequested(Domain.VmId.New(), new Domain.TenantId("a"), spec, DateTimeOffset.UnixEpoch);
        var frame = Api.EventStream.Frame(new Akka.Persistence.Query.EventEnvelope(
            Akka.Persistence.Query.Offset.Sequence(1), "ledger", 1, evt, 0, ["tenant:a"]));

        Assert.DoesNotContain("userData", frame, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Convert.ToBase64String(userData), frame);
        Assert.Contains("web1.example.org", frame);
    }
}

/// <summary>Reading /v1/events as a browser's EventSource would, with a parser of the tests' own.</summary>
internal static class Sse
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    public static async Task<List<SseEvent>> ReadAllAsync(NodeProcess node, string path)
    {
        using var ends = new CancellationTokenSource(Patience);
        return Parse(await node.Http.GetStringAsync(path, ends.Token));
    }

    /// <summary>Follows the stream until an event matches, then hangs up (the server sees the client go).</summary>
    public static async Task<List<SseEvent>> ReadUntilAsync(NodeProcess node, string path, long? lastEventId, Func<SseEvent, bool> last)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (lastEventId is { } id)
        {
            request.Headers.Add("Last-Event-ID", id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        using var patience = new CancellationTokenSource(Patience);
        using var response = await node.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, patience.Token);
        response.EnsureSuccessStatusCode();
        var seen = new List<SseEvent>();
        try
        {
            await foreach (var e in Sse.Events(await response.Content.ReadAsStreamAsync(patience.Token), patience.Token))
            {
                seen.Add(e);
                if (last(e))
                {
                    return seen;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        throw new Xunit.Sdk.XunitException(
            $"the stream ended or went quiet before the awaited event; it sent {string.Join(", ", seen.Select(e => $"{e.Id} {e.Type}"))}. Node log:\n{node.Log}");
    }

    public static void AssertIncreasing(IReadOnlyList<SseEvent> events)
    {
        for (var i = 1; i < events.Count; i++)
        {
            Assert.True(events[i].Id > events[i - 1].Id, $"id {events[i].Id} follows {events[i - 1].Id}");
        }
    }

    public static void AssertInOrder(IReadOnlyList<SseEvent> events, string vmId, params string[] types)
    {
        var positions = types.Select(t => events.ToList().FindIndex(e => e.VmId == vmId && e.Type == t)).ToList();
        Assert.DoesNotContain(-1, positions);
        Assert.Equal(positions.Order(), positions);
    }

    public sealed record SseEvent(long Id, string Type, string Data)
    {
        public JsonNode Json { get; } = JsonNode.Parse(Data)!;

        public string? VmId => (string?)Json["vmId"];
    }

    public static List<SseEvent> Parse(string text)
    {
        var events = new List<SseEvent>();
        using var reader = new StringReader(text);
        var lines = new List<string>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length > 0)
            {
                lines.Add(line);
                continue;
            }

            if (ToEvent(lines) is { } e)
            {
                events.Add(e);
            }

            lines.Clear();
        }

        return events;
    }

    internal static async IAsyncEnumerable<SseEvent> Events(Stream stream, [EnumeratorCancellation] CancellationToken ct)
    {
        using var reader = new StreamReader(stream);
        var lines = new List<string>();
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            if (line.Length > 0)
            {
                lines.Add(line);
                continue;
            }

            if (ToEvent(lines) is { } e)
            {
                yield return e;
            }

            lines.Clear();
        }
    }

    /// <summary>One event's lines (a comment-only block, the heartbeat, is none). Each field once: the server's format.</summary>
    private static SseEvent? ToEvent(List<string> lines)
    {
        string? Field(string name) => lines.Where(l => l.StartsWith(name + ": ", StringComparison.Ordinal)).Select(l => l[(name.Length + 2)..]).SingleOrDefault();
        if (Field("data") is not { } data)
        {
            Assert.All(lines, l => Assert.StartsWith(":", l));
            return null;
        }

        var id = long.Parse(Field("id")!, System.Globalization.CultureInfo.InvariantCulture);
        var type = Field("event")!;
        var e = new SseEvent(id, type, data);
        Assert.Equal(id, (long)e.Json["id"]!);
        Assert.Equal(type, (string?)e.Json["type"]);
        Assert.Null(e.Json["data"]!["secretHash"]);
        return e;
    }
}
