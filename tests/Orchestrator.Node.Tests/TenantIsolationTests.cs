using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Tenants against a real node: every endpoint × every kind of caller, quotas under concurrent creates, rate limits,
/// idempotent creates and body limits.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class TenantIsolationTests(ITestOutputHelper output)
{
    private const string Alpha = "tenant-alpha";
    private const string Bravo = "tenant-bravo";

    /// <summary>Who calls. Expected statuses per endpoint are listed in this order.</summary>
    private enum Caller
    {
        None,
        Revoked,
        AlphaMember,
        AlphaReadOnly,
        BravoMember,
        Admin,
    }

    /// <summary>One endpoint and what each caller must get (in <see cref="Caller"/> order).</summary>
    private sealed record Row(string Method, string Path, string? Body, params int[] Expected)
    {
        public string ContentType { get; init; } = "application/json";
    }

    private static readonly Row[] Matrix =
    [
        //                                                                         none revoked A   A-ro B    admin
        new("GET", "v1/vms", null,                                                  401, 401, 200, 200, 200, 200),
        new("GET", "v1/vms/web", null,                                              401, 401, 200, 200, 404, 404),
        new("GET", $"v1/vms/web?tenant={Bravo}", null,                             401, 401, 200, 200, 404, 404),
        new("POST", "v1/vms", """{"name":"made-{caller}","vcpus":1,"memoryMiB":128,"image":"demo"}""", 401, 401, 201, 403, 201, 201),
        new("POST", "v1/vms/web/stop", null,                                        401, 401, 202, 403, 404, 404),
        new("POST", "v1/vms/web/start", null,                                       401, 401, 202, 403, 404, 404),
        new("POST", "v1/vms/nowhere/pause", null,                                   401, 401, 404, 403, 404, 404),
        new("POST", "v1/vms/nowhere/resume", null,                                  401, 401, 404, 403, 404, 404),
        new("PATCH", "v1/vms/web/resources", """{"cpuShares":2048}""",              401, 401, 202, 403, 404, 404),
        new("PUT", "v1/vms/web/labels", """{"env":"dev"}""",                        401, 401, 202, 403, 404, 404),
        new("DELETE", "v1/vms/doomed", null,                                        401, 401, 202, 403, 404, 404),
        new("GET", "v1/hosts", null,                                                401, 401, 403, 403, 403, 200),
        new("GET", "v1/capacity", null,                                             401, 401, 403, 403, 403, 200),
        new("GET", "v1/images", null,                                               401, 401, 200, 200, 200, 200),
        new("GET", "v1/images/vault-img", null,                                     401, 401, 200, 200, 404, 404),
        new("POST", "v1/images?name=made-img&format=raw&kernel=demo", new string('x', 4096), 401, 401, 201, 403, 201, 201)
        {
            ContentType = "application/octet-stream",
        },
        new("GET", "v1/tenant", null,                                               401, 401, 200, 200, 200, 200),
        new("GET", "v1/tenants", null,                                              401, 401, 403, 403, 403, 200),
        new("POST", "v1/tenants", """{"id":"new-{caller}"}""",                      401, 401, 403, 403, 403, 201),
        new("GET", $"v1/tenants/{Alpha}", null,                                     401, 401, 403, 403, 403, 200),
        new("PATCH", $"v1/tenants/{Bravo}", """{"quota":{"vms":50}}""",            401, 401, 403, 403, 403, 200),
        new("POST", $"v1/tenants/{Alpha}/keys", """{"role":"read-only"}""",        401, 401, 403, 403, 403, 201),
        new("DELETE", $"v1/tenants/{Alpha}/keys/0000000000000000", null,           401, 401, 403, 403, 403, 404),
        new("POST", "v1/webhooks", """{"url":"https://example.org/hook"}""",      401, 401, 201, 403, 201, 201),
        new("GET", "v1/webhooks", null,                                             401, 401, 200, 200, 200, 200),
        new("DELETE", "v1/webhooks/wh000000000000", null,                           401, 401, 404, 403, 404, 404),
        new("GET", "v1/webhooks/wh000000000000/deliveries", null,                   401, 401, 404, 404, 404, 404),
        new("POST", "v1/apply?dryRun=true", "vms {}", 401, 401, 200, 200, 200, 200) { ContentType = "text/plain" },
        new("POST", "v1/apply", "vms {}",                                           401, 401, 200, 403, 200, 200) { ContentType = "text/plain" },
        new("POST", "v1/rules", """{"name":"r-{caller}","schedule":"0 20 * * 1-5","action":"stop"}""", 401, 401, 201, 403, 201, 201),
        new("GET", "v1/rules", null,                                                401, 401, 200, 200, 200, 200),
        new("DELETE", "v1/rules/rule000000000000", null,                            401, 401, 404, 403, 404, 404),
        new("GET", "v1/events?follow=false", null,                                  401, 401, 200, 200, 200, 200),
        new("GET", "v1/events?follow=false&vm=web", null,                           401, 401, 200, 200, 404, 404),
        new("POST", "v1/volumes", """{"name":"vol-{caller}","sizeGiB":1}""",      401, 401, 201, 403, 201, 201),
        new("GET", "v1/volumes", null,                                              401, 401, 200, 200, 200, 200),
        new("GET", "v1/volumes/vault", null,                                        401, 401, 200, 200, 404, 404),
        new("POST", "v1/volumes/vault/resize", """{"sizeGiB":2}""",              401, 401, 200, 403, 404, 404),
        new("POST", "v1/vms/web/volumes/vault", null,                               401, 401, 200, 403, 404, 404),
        new("DELETE", "v1/volumes/vault", null,                                     401, 401, 409, 403, 404, 404),
        new("DELETE", "v1/vms/web/volumes/vault", null,                             401, 401, 200, 403, 404, 404),
        new("GET", "v1/nothing-here", null,                                         404, 404, 404, 404, 404, 404),
    ];

    [Fact]
    public async Task Every_endpoint_answers_each_caller_as_its_role_allows_and_leaks_nothing_of_another_tenant()
    {
        await using var node = await NodeProcess.StartAsync(output, LooseLimits);
        var alpha = await node.TenantKeyAsync(Alpha);
        var alphaReadOnly = await node.TenantKeyAsync(Alpha, "read-only");
        var bravo = await node.TenantKeyAsync(Bravo);
        var revoked = await node.TenantKeyAsync(Alpha);
        var revokedId = revoked.Split('_')[1];
        Assert.Equal(HttpStatusCode.NoContent, (await node.Http.DeleteAsync($"v1/tenants/{Alpha}/keys/{revokedId}")).StatusCode);

        using var alphaClient = node.ClientWith(alpha);
        using var bravoClient = node.ClientWith(bravo);
        var web = await Created(alphaClient, "web");
        var doomed = await Created(alphaClient, "doomed");
        var secret = await Created(bravoClient, "secret-bravo");
        var vault = await alphaClient.PostAsJsonAsync("v1/volumes", new { name = "vault", sizeGiB = 1 });
        Assert.Equal(HttpStatusCode.Created, vault.StatusCode);
        var vaultId = (string)JsonNode.Parse(await vault.Content.ReadAsStringAsync())!["id"]!;
        var image = await alphaClient.PostAsync("v1/images?name=vault-img&format=raw&kernel=demo",
            new ByteArrayContent(new byte[4096]) { Headers = { ContentType = new("application/octet-stream") } });
        Assert.Equal(HttpStatusCode.Created, image.StatusCode);
        var imageId = (string)JsonNode.Parse(await image.Content.ReadAsStringAsync())!["id"]!;
        string[] alphaSecrets = [Alpha, (string)web["id"]!, (string)doomed["id"]!, vaultId, imageId];
        string[] bravoSecrets = [Bravo, "secret-bravo", (string)secret["id"]!];

        var keys = new Dictionary<Caller, string?>
        {
            [Caller.None] = null, [Caller.Revoked] = revoked, [Caller.AlphaMember] = alpha, [Caller.AlphaReadOnly] = alphaReadOnly,
            [Caller.BravoMember] = bravo, [Caller.Admin] = null,
        };
        var failures = new List<string>();
        foreach (var row in Matrix)
        {
            foreach (var caller in Enum.GetValues<Caller>())
            {
                using var client = caller == Caller.Admin ? null : node.ClientWith(keys[caller]);
                var http = client ?? node.Http;
                var request = new HttpRequestMessage(new HttpMethod(row.Method), row.Path);
                if (row.Body is { } body)
                {
                    request.Content = new StringContent(body.Replace("{caller}", caller.ToString().ToLowerInvariant(), StringComparison.Ordinal),
                        Encoding.UTF8, row.ContentType);
                }

                var response = await http.SendAsync(request);
                var text = await response.Content.ReadAsStringAsync();
                var expected = row.Expected[(int)caller];
                if ((int)response.StatusCode != expected)
                {
                    failures.Add($"{row.Method} {row.Path} as {caller}: {(int)response.StatusCode}, expected {expected}: {text}");
                }

                if ((int)response.StatusCode >= 400 && response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                {
                    failures.Add($"{row.Method} {row.Path} as {caller}: {(int)response.StatusCode} without problem details");
                }

                // The event stream carries ids of the caller's own VMs only (an admin's carries everyone's).
                var forbidden = caller switch
                {
                    Caller.AlphaMember or Caller.AlphaReadOnly => bravoSecrets,
                    Caller.BravoMember => alphaSecrets,
                    Caller.None or Caller.Revoked => [.. alphaSecrets, .. bravoSecrets],
                    _ => [],
                };
                foreach (var leak in forbidden.Where(f => text.Contains(f, StringComparison.Ordinal)))
                {
                    failures.Add($"{row.Method} {row.Path} as {caller} leaked '{leak}': {text}");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));

        // What alpha's list shows is alpha's alone; the admin sees both tenants.
        var alphaVms = JsonNode.Parse(await alphaClient.GetStringAsync("v1/vms"))!.AsArray().Select(v => (string)v!["tenant"]!).Distinct();
        Assert.Equal([Alpha], alphaVms);
        var all = JsonNode.Parse(await node.Http.GetStringAsync("v1/vms"))!.AsArray().Select(v => (string)v!["tenant"]!).ToHashSet();
        Assert.Superset(new HashSet<string> { Alpha, Bravo }, all);
    }

    [Fact]
    public async Task Concurrent_creates_near_the_quota_never_exceed_it_and_a_disabled_tenants_keys_stop_working()
    {
        await using var node = await NodeProcess.StartAsync(output, LooseLimits);
        var key = await node.TenantKeyAsync("racer", quota: new { vms = 3, vcpus = 100, memoryMiB = 100000 });
        using var client = node.ClientWith(key);
        var attempts = Enumerable.Range(0, 16).Select(i => client.PostAsJsonAsync("v1/vms",
            new { name = $"race-{i}", vcpus = 1, memoryMiB = 128, image = "demo", restartPolicy = "never" }));
        var answers = await Task.WhenAll(attempts);
        Assert.Equal(3, answers.Count(a => a.StatusCode == HttpStatusCode.Created));
        Assert.Equal(13, answers.Count(a => a.StatusCode == HttpStatusCode.Forbidden));
        var denied = await answers.First(a => a.StatusCode == HttpStatusCode.Forbidden).Content.ReadAsStringAsync();
        Assert.Contains("quota exceeded: 3 of 3 VMs in use", denied);
        var tenant = JsonNode.Parse(await client.GetStringAsync("v1/tenant"))!;
        Assert.Equal(3, (int)tenant["usage"]!["vms"]!);
        Assert.Equal(3, JsonNode.Parse(await client.GetStringAsync("v1/vms"))!.AsArray().Count);

        var disabled = await node.Http.PatchAsJsonAsync("v1/tenants/racer", new { disabled = true });
        Assert.Equal(HttpStatusCode.OK, disabled.StatusCode);
        var refused = await client.GetAsync("v1/vms");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("disabled", await refused.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Creates_with_an_idempotency_key_happen_once_and_bodies_over_the_limit_are_refused()
    {
        await using var node = await NodeProcess.StartAsync(output, LooseLimits + "\norchestrator.api.max-body-bytes = 4096");
        async Task<HttpResponseMessage> Create(string key, string name)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "v1/vms")
            {
                Content = JsonContent.Create(new { name, vcpus = 1, memoryMiB = 128, image = "demo" }),
            };
            request.Headers.Add("Idempotency-Key", key);
            return await node.Http.SendAsync(request);
        }

        var first = await Create("retry-me", "once");
        var again = await Create("retry-me", "once");
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        Assert.Equal((string)JsonNode.Parse(await first.Content.ReadAsStringAsync())!["id"]!,
            (string)JsonNode.Parse(await again.Content.ReadAsStringAsync())!["id"]!);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await Create("retry-me", "other")).StatusCode);
        Assert.Single(JsonNode.Parse(await node.Http.GetStringAsync("v1/vms"))!.AsArray());

        var huge = new StringContent("{\"name\":\"" + new string('x', 10_000) + "\"}", Encoding.UTF8, "application/json");
        var tooBig = await node.Http.PostAsync("v1/vms", huge);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooBig.StatusCode);
        Assert.Equal("application/problem+json", tooBig.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task A_tenant_over_its_rate_limit_gets_429_while_another_tenant_is_served()
    {
        await using var node = await NodeProcess.StartAsync(output,
            "orchestrator.api.rate-limit.requests-per-second = 1\norchestrator.api.rate-limit.burst = 5");
        using var greedy = node.ClientWith(await node.TenantKeyAsync("greedy"));
        using var polite = node.ClientWith(await node.TenantKeyAsync("polite"));
        var answers = new List<HttpResponseMessage>();
        for (var i = 0; i < 20; i++)
        {
            answers.Add(await greedy.GetAsync("v1/tenant"));
        }

        var limited = answers.Where(a => a.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.NotEmpty(limited);
        Assert.Equal("application/problem+json", limited[0].Content.Headers.ContentType?.MediaType);
        Assert.True(limited[0].Headers.RetryAfter is not null);
        Assert.Equal(HttpStatusCode.OK, (await polite.GetAsync("v1/tenant")).StatusCode);
    }

    [Fact]
    public async Task A_flood_of_bad_keys_from_one_address_gets_429s_and_a_valid_key_from_that_address_is_still_served()
    {
        await using var node = await NodeProcess.StartAsync(output,
            "orchestrator.api.rate-limit.unauthenticated.requests-per-second = 1\norchestrator.api.rate-limit.unauthenticated.burst = 5");
        using var member = node.ClientWith(await node.TenantKeyAsync("flooded"));
        using var stranger = node.ClientWith(null);
        var answers = new List<HttpResponseMessage>();
        for (var i = 0; i < 40; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "v1/vms");
            // Well-formed keys that are no one's (each one a lookup), malformed ones, and none at all.
            var key = (i % 3) switch
            {
                0 => "orc_" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)) + "_" + new string('0', 64),
                1 => "not-a-key-" + i,
                _ => null,
            };
            if (key is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + key);
            }

            answers.Add(await stranger.SendAsync(request));
        }

        Assert.All(answers, a => Assert.Contains(a.StatusCode, new[] { HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests }));
        var limited = answers.Where(a => a.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.NotEmpty(limited);
        Assert.Equal("application/problem+json", limited[0].Content.Headers.ContentType?.MediaType);
        Assert.True(limited[0].Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        Assert.Contains("without a valid key", await limited[0].Content.ReadAsStringAsync());

        // Same address, a valid key: its tenant's budget, untouched by the flood.
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await member.GetAsync("v1/vms")).StatusCode);
        }
    }

    private const string LooseLimits = "orchestrator.api.rate-limit.requests-per-second = 100000\norchestrator.api.rate-limit.burst = 100000\n" +
                                       "orchestrator.api.rate-limit.unauthenticated.requests-per-second = 100000\n" +
                                       "orchestrator.api.rate-limit.unauthenticated.burst = 100000";

    private static async Task<JsonObject> Created(HttpClient client, string name)
    {
        var response = await client.PostAsJsonAsync("v1/vms", new { name, vcpus = 1, memoryMiB = 128, image = "demo" });
        var body = await response.Content.ReadAsStringAsync();
        return response.StatusCode == HttpStatusCode.Created
            ? JsonNode.Parse(body)!.AsObject()
            : throw new InvalidOperationException($"create {name}: {(int)response.StatusCode} {body}");
    }
}
