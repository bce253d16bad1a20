using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>One node (simulated hosts: no guest boots) shared by the tests of <see cref="HostileInputTests"/>.</summary>
public sealed class HostileNode : IAsyncLifetime
{
    public NodeProcess Node { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Node = await NodeProcess.StartAsync(null, """
            orchestrator.host.driver = simulated
            orchestrator.host.simulated-hosts = 1
            orchestrator.api.rate-limit.requests-per-second = 100000
            orchestrator.api.rate-limit.burst = 100000
            """);
        await Node.Eventually(async () => (await Node.Http.GetStringAsync("v1/hosts")).Contains("simulated") ? "up" : null,
            TimeSpan.FromSeconds(30), "the simulated host to register");
    }

    public async Task DisposeAsync() => await Node.DisposeAsync();
}

/// <summary>
/// Requests a careless or hostile client sends: identifiers with a trailing newline, numbers out of range, JSON that a
/// lenient reader resolves quietly, idempotency keys reused across tenants, lists long enough to amplify the answer.
/// Each gets a 4xx naming what is wrong, and nothing is created behind it.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class HostileInputTests(HostileNode fixture, ITestOutputHelper output) : IClassFixture<HostileNode>
{
    private NodeProcess Node => fixture.Node;

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<JsonObject> ProblemAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"{(int)response.StatusCode} {text[..Math.Min(text.Length, 400)]}");
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonNode.Parse(text)!.AsObject();
    }

    private async Task AssertInvalidAsync(HttpResponseMessage response, string field)
    {
        var problem = await ProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.True(problem["errors"]?[field] is not null, $"the errors do not name {field}: {problem.ToJsonString()}");
    }

    [Theory]
    [InlineData("""{"name":"web\n","vcpus":1,"memoryMiB":256,"image":"demo"}""", "name")]
    [InlineData("""{"name":"web","vcpus":1,"memoryMiB":256,"image":"demo","labels":{"env\n":"dev"}}""", "labels")]
    [InlineData("""{"name":"web","vcpus":1,"memoryMiB":256,"image":"demo","labels":{"env":"dev\n"}}""", "labels.env")]
    public async Task An_identifier_with_a_trailing_newline_is_refused_naming_the_field(string body, string field)
    {
        await AssertInvalidAsync(await Node.Http.PostAsync("v1/vms", Json(body)), field);
        Assert.Null(await Node.GetVmAsync("web"));
    }

    [Fact]
    public async Task A_tenant_id_a_rule_name_or_an_apply_file_vm_name_with_a_trailing_newline_is_refused()
    {
        await AssertInvalidAsync(await Node.Http.PostAsync("v1/tenants", Json("""{"id":"acme\n"}""")), "id");
        await AssertInvalidAsync(await Node.Http.PostAsync("v1/rules",
            Json("""{"name":"nightly\n","schedule":"0 3 * * *","action":"stop"}""")), "name");
        var apply = await Node.Http.PostAsync("v1/apply",
            new StringContent("vms { \"web\\n\" { vcpus = 1, memory-mib = 256, image = demo } }", Encoding.UTF8, "text/plain"));
        var problem = await ProblemAsync(apply, HttpStatusCode.BadRequest);
        Assert.Contains("web\\\\n", problem["errors"]!.ToJsonString());
    }

    [Theory]
    [InlineData("99999999d")]
    [InlineData("999999999h")]
    [InlineData("8d")]
    public async Task A_rule_whose_window_is_out_of_range_is_a_400_naming_it(string within) =>
        await AssertInvalidAsync(await Node.Http.PostAsync("v1/rules",
            Json($$"""{"name":"flappy","on":{"event":"VmRestarting","count":3,"within":"{{within}}"},"action":"stop"}""")), "on.within");

    [Fact]
    public async Task An_admins_idempotency_key_is_scoped_to_the_tenant_it_acts_for()
    {
        await Node.TenantKeyAsync("idem-a");
        await Node.TenantKeyAsync("idem-b");
        const string body = """{"name":"same","vcpus":1,"memoryMiB":128,"image":"demo"}""";

        async Task<JsonObject> CreateFor(string tenant)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/vms?tenant={tenant}") { Content = Json(body) };
            request.Headers.Add("Idempotency-Key", "one-key");
            var response = await Node.Http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Created, text);
            return JsonNode.Parse(text)!.AsObject();
        }

        var a = await CreateFor("idem-a");
        var b = await CreateFor("idem-b");
        Assert.Equal("idem-a", (string)a["tenant"]!);
        Assert.Equal("idem-b", (string)b["tenant"]!);
        Assert.NotEqual((string)a["id"]!, (string)b["id"]!);
        Assert.Equal(HttpStatusCode.OK, (await Node.Http.GetAsync("v1/vms/same?tenant=idem-b")).StatusCode);
    }

    [Fact]
    public async Task A_refused_create_is_not_replayed_to_its_retry()
    {
        var key = await Node.TenantKeyAsync("idem-quota", quota: new { vms = 0 });
        using var tenant = Node.ClientWith(key);
        const string body = """{"name":"later","vcpus":1,"memoryMiB":128,"image":"demo"}""";

        HttpRequestMessage Create()
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "v1/vms") { Content = Json(body) };
            request.Headers.Add("Idempotency-Key", "retry-me");
            return request;
        }

        using (var first = Create())
        {
            await ProblemAsync(await tenant.SendAsync(first), HttpStatusCode.Forbidden);
        }

        var raised = await Node.Http.PatchAsync("v1/tenants/idem-quota", Json("""{"quota":{"vms":1}}"""));
        Assert.Equal(HttpStatusCode.OK, raised.StatusCode);
        using var retry = Create();
        Assert.Equal(HttpStatusCode.Created, (await tenant.SendAsync(retry)).StatusCode);
    }

    [Fact]
    public async Task A_quota_refusal_is_403_from_create_and_from_apply_alike()
    {
        var key = await Node.TenantKeyAsync("quota-same", quota: new { vms = 0 });
        using var tenant = Node.ClientWith(key);
        var create = await ProblemAsync(await tenant.PostAsync("v1/vms", Json("""{"name":"web","vcpus":1,"memoryMiB":128,"image":"demo"}""")),
            HttpStatusCode.Forbidden);
        var apply = await ProblemAsync(await tenant.PostAsync("v1/apply",
            new StringContent("vms { web { vcpus = 1, memory-mib = 128, image = demo } }", Encoding.UTF8, "text/plain")), HttpStatusCode.Forbidden);
        Assert.Contains("quota exceeded", (string)create["detail"]!);
        Assert.Contains("quota exceeded", (string)apply["detail"]!);
    }

    [Fact]
    public async Task A_webhook_with_a_hundred_thousand_bad_event_names_gets_a_small_answer()
    {
        var events = string.Join(",", Enumerable.Range(0, 100_000).Select(i => $"\"E{i}\""));
        var response = await Node.Http.PostAsync("v1/webhooks", Json($$"""{"url":"https://example.com/hook","events":[{{events}}]}"""));
        var problem = await ProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.True(problem.ToJsonString().Length < 16 * 1024, $"{problem.ToJsonString().Length} bytes of answer");
        Assert.NotNull(problem["errors"]!["events"]);
    }

    public static TheoryData<string, string, string, string> LenientBodies => new()
    {
        { "POST", "v1/vms", """{"name":"dup-a","name":"dup-b","vcpus":1,"memoryMiB":128,"image":"demo"}""", "name" },
        { "POST", "v1/vms", """{"name":"dup-c","vcpus":1,"VCPUS":2,"memoryMiB":128,"image":"demo"}""", "VCPUS" },
        { "POST", "v1/vms", """{"name":"quoted","vcpus":"1","memoryMiB":128,"image":"demo"}""", "vcpus" },
        { "POST", "v1/vms", """{"name":"quoted","vcpus":1,"memoryMiB":"128","image":"demo"}""", "memoryMiB" },
        { "POST", "v1/tenants", """{"id":"dup-t","id":"other-t"}""", "id" },
        { "POST", "v1/tenants", """{"id":"quoted-t","quota":{"vms":"5"}}""", "quota.vms" },
        { "PATCH", "v1/tenants/quoted-t", """{"quota":{"vms":1,"vms":2}}""", "quota.vms" },
        { "PATCH", "v1/tenants/quoted-t", """{"pool":{"cpuShares":"100"}}""", "pool.cpuShares" },
        { "POST", "v1/tenants/system/keys", """{"role":"member","role":"admin"}""", "role" },
        { "POST", "v1/webhooks", """{"url":"https://example.com/a","url":"http://127.0.0.1/"}""", "url" },
        { "POST", "v1/rules", """{"name":"r","schedule":"0 3 * * *","action":"stop","action":"replace"}""", "action" },
        { "POST", "v1/rules", """{"name":"r","on":{"event":"VmRestarting","count":"3"},"action":"stop"}""", "on.count" },
        { "PUT", "v1/vms/strict/labels", """{"env":"dev","env":"prod"}""", "env" },
        { "PATCH", "v1/vms/strict/resources", """{"cpuShares":100,"cpuShares":200}""", "cpuShares" },
    };

    [Theory]
    [MemberData(nameof(LenientBodies))]
    public async Task Duplicate_names_and_quoted_numbers_are_refused_naming_the_field(string method, string path, string body, string field)
    {
        if (await Node.GetVmAsync("strict") is null)
        {
            await Node.Http.PostAsync("v1/vms", Json("""{"name":"strict","vcpus":1,"memoryMiB":128,"image":"demo"}"""));
        }

        await AssertInvalidAsync(await Node.Http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path) { Content = Json(body) }), field);
        foreach (var vm in new[] { "dup-a", "dup-b", "dup-c", "quoted" })
        {
            Assert.Null(await Node.GetVmAsync(vm));
        }

        var strict = await Node.GetVmAsync("strict");
        Assert.Empty(strict!["labels"]!.AsObject());
        Assert.Equal(HttpStatusCode.NotFound, (await Node.Http.GetAsync("v1/tenants/dup-t")).StatusCode);
    }
}
