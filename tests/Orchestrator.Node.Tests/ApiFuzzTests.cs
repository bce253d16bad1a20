using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Thousands of malformed requests (bodies, headers, ids, query strings) against a real node: each answer is a 4xx
/// with a problem-details body, never a 5xx, and nothing is persisted. (A GET that happens to be well-formed, such as
/// a tenant listing its VMs with a garbage query string, may answer 200: reads change nothing.)
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class ApiFuzzTests(ITestOutputHelper output)
{
    private const int Requests = 3000;

    private static readonly string[] Paths =
    [
        "v1/vms", "v1/vms/{id}", "v1/vms/{id}/stop", "v1/vms/{id}/start", "v1/vms/{id}/resources", "v1/vms/{id}/labels",
        "v1/tenants", "v1/tenants/{id}", "v1/tenants/{id}/keys", "v1/tenants/{id}/keys/{id}", "v1/hosts", "v1/tenant", "v1/{id}",
        "v1/webhooks", "v1/webhooks/{id}", "v1/webhooks/{id}/deliveries", "v1/apply", "v1/rules", "v1/rules/{id}",
    ];

    private static readonly string[] Methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

    /// <summary>Ids that are never valid names, so no request can address (or create) a real thing.</summary>
    private static readonly string[] BadIds =
    [
        "..", "%2e%2e", "A", "a_b", "-x", "x-", new string('a', 300), "ünïcode", "a%00b", "a%2Fb", "%20", "web%0d%0aX: y", "😀",
        "1abc", "CON", "a.b", "a%25", "{}", "[]", "null",
    ];

    private static readonly string[] BadBodies =
    [
        "", "{", "}", "[]", "null", "true", "42", "\"str\"", "{\"name\":", "{\"name\":null}", "{\"vcpus\":\"two\"}",
        "{\"name\":\"Bad_Name\",\"vcpus\":1,\"memoryMiB\":64,\"image\":\"demo\"}",
        "{\"name\":\"ok-name\",\"vcpus\":-1,\"memoryMiB\":64,\"image\":\"demo\"}",
        "{\"name\":\"ok-name\",\"vcpus\":1e400,\"memoryMiB\":64,\"image\":\"demo\"}",
        "{\"name\":\"ok-name\",\"vcpus\":1,\"memoryMiB\":99999999999,\"image\":\"demo\"}",
        "{\"name\":\"ok-name\",\"vcpus\":1,\"memoryMiB\":64,\"image\":\"../../etc/passwd\"}",
        "{\"name\":\"ok-name\",\"vcpus\":1,\"memoryMiB\":64,\"image\":\"demo\",\"cpuShares\":1}",
        "{\"name\":\"ok-name\",\"vcpus\":1,\"memoryMiB\":64,\"image\":\"demo\",\"cpuset\":\"0-99999\"}",
        "{\"name\":\"ok-name\",\"vcpus\":1,\"memoryMiB\":64,\"image\":\"demo\",\"labels\":{\"BAD KEY\":\"x\"}}",
        "{\"name\":\"ok-name\",\"vcpus\":1,\"memoryMiB\":64,\"image\":\"demo\",\"restartPolicy\":\"sometimes\"}",
        "{\"id\":\"Bad_Tenant\"}", "{\"id\":\"ok-tenant\",\"quota\":{\"vcpus\":-5}}", "{\"id\":\"system\"}",
        "{\"role\":\"god\"}", "{\"quota\":\"lots\"}", "{\"cpuShares\":\"x\"}", "{\"unknownField\":1}", "{\"env\":5}",
        "\u0000\u0001\u0002", "<xml/>", "{\"a\":" + new string('[', 200) + new string(']', 200) + "}",
    ];

    [Fact]
    public async Task Malformed_requests_get_problem_details_never_a_server_error_and_change_nothing()
    {
        await using var node = await NodeProcess.StartAsync(output,
            "orchestrator.api.rate-limit.requests-per-second = 100000\norchestrator.api.rate-limit.burst = 100000");
        var tenantKey = await node.TenantKeyAsync("fuzzed");
        var before = await Snapshot(node);
        using var raw = node.ClientWith(null); // no default key: each request carries its own, or none
        var random = new Random(20261124);
        var failures = new List<string>();
        string[] keys = ["admin", tenantKey, "", "Bearer", "orc_", "orc_0123456789abcdef_" + new string('0', 64), "garbage!@#$%", new string('k', 5000)];

        for (var i = 0; i < Requests; i++)
        {
            var path = Pick(random, Paths).Replace("{id}", Uri.EscapeDataString(Pick(random, BadIds)), StringComparison.Ordinal);
            // Query strings unescaped on purpose: the server must cope with whatever arrives.
            if (random.Next(3) == 0)
            {
                path += "?" + Pick(random, ["tenant=Bad_T", "tenant=", "tenant=%00", "dryRun=maybe", "a=b&a=c", "%%%", "tenant=" + new string('t', 500)]);
            }

            var method = Pick(random, Methods);
            using var request = new HttpRequestMessage(new HttpMethod(method), path);
            var key = Pick(random, keys);
            if (key == "admin")
            {
                request.Headers.Authorization = node.Http.DefaultRequestHeaders.Authorization;
            }
            else if (key.Length > 0)
            {
                request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + key);
            }

            if (random.Next(4) == 0)
            {
                request.Headers.TryAddWithoutValidation("Idempotency-Key", Pick(random, ["", " ", "k", new string('i', 400), "tab\there"]));
            }

            if (method is "POST" or "PUT" or "PATCH" || random.Next(5) == 0)
            {
                var body = Pick(random, BadBodies);
                request.Content = new ByteArrayContent(random.Next(6) == 0 ? RandomBytes(random) : Encoding.UTF8.GetBytes(body));
                request.Content.Headers.TryAddWithoutValidation("Content-Type",
                    Pick(random, ["application/json", "application/json", "text/plain", "application/xml", "application/json; charset=latin1", "x"]));
            }

            HttpResponseMessage response;
            try
            {
                response = await raw.SendAsync(request);
            }
            catch (HttpRequestException ex)
            {
                failures.Add($"{method} {path}: connection failed: {ex.Message}");
                continue;
            }

            var status = (int)response.StatusCode;
            var text = await response.Content.ReadAsStringAsync();
            // A well-formed read of a collection may succeed (it changes nothing); anything else must be refused.
            if (status >= 500 || (status < 400 && method != "GET"))
            {
                failures.Add($"{method} {path} (key {key[..Math.Min(8, key.Length)]}): {status} {text[..Math.Min(300, text.Length)]}");
            }
            else if (status >= 400 && (response.Content.Headers.ContentType?.MediaType != "application/problem+json"
                                       || JsonNode.Parse(text) is not JsonObject { } problem || problem["status"] is null))
            {
                failures.Add($"{method} {path}: {status} without a problem-details body: {text[..Math.Min(200, text.Length)]}");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {Requests} answers were wrong:\n" + string.Join("\n", failures.Take(40)));
        Assert.Equal(before, await Snapshot(node));
        Assert.Equal("ok", await node.Http.GetStringAsync("/healthz")); // still serving
    }

    /// <summary>Every route of the API, as the OpenAPI document must list it.</summary>
    public static readonly string[] Routes =
    [
        "/v1/vms", "/v1/vms/{name}", "/v1/vms/{name}/stop", "/v1/vms/{name}/start", "/v1/vms/{name}/labels", "/v1/vms/{name}/resources",
        "/v1/hosts", "/v1/capacity", "/v1/images", "/v1/tenant", "/v1/tenants", "/v1/tenants/{id}", "/v1/tenants/{id}/keys",
        "/v1/tenants/{id}/keys/{keyId}", "/v1/webhooks", "/v1/webhooks/{id}", "/v1/webhooks/{id}/deliveries", "/v1/apply",
        "/v1/rules", "/v1/rules/{id}", "/v1/events",
    ];

    [Fact]
    public async Task The_openapi_document_covers_every_endpoint_and_needs_no_key()
    {
        await using var node = await NodeProcess.StartAsync(output);
        using var anonymous = node.ClientWith(null);
        var document = JsonNode.Parse(await anonymous.GetStringAsync("v1/openapi.json"))!;
        var paths = document["paths"]!.AsObject().Select(p => p.Key).ToHashSet();
        var missing = Routes.Where(r => !paths.Contains(r)).ToList();
        Assert.True(missing.Count == 0, "not in the OpenAPI document: " + string.Join(", ", missing));
        Assert.Equal("Orchestrator API", (string?)document["info"]!["title"]);
        Assert.NotNull(document["paths"]!["/v1/vms"]!["post"]!["requestBody"]);
    }

    /// <summary>What a request could have persisted: VMs, tenants and keys as the admin sees them.</summary>
    private static async Task<string> Snapshot(NodeProcess node)
    {
        var vms = await node.Http.GetStringAsync("v1/vms");
        var tenants = JsonNode.Parse(await node.Http.GetStringAsync("v1/tenants"))!.AsArray()
            .Select(t => (string)t!["id"]!).ToList();
        var keys = new List<string>();
        foreach (var tenant in tenants)
        {
            keys.Add(JsonNode.Parse(await node.Http.GetStringAsync($"v1/tenants/{tenant}"))!["keys"]!.ToJsonString());
        }

        return $"{vms}\n{string.Join(",", tenants)}\n{string.Join("\n", keys)}";
    }

    private static T Pick<T>(Random random, IReadOnlyList<T> items) => items[random.Next(items.Count)];

    private static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(1, 2048)];
        random.NextBytes(bytes);
        return bytes;
    }
}
