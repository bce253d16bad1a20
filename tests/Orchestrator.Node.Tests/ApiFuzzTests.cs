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

    /// <summary>A valid body for each write endpoint, every field given, that the mutations below spoil one field at a time.</summary>
    private static readonly (string Method, string Path, string Body)[] WriteBodies =
    [
        ("POST", "v1/vms", """
            {"name":"fz","vcpus":1,"memoryMiB":128,"image":"demo","restartPolicy":"always","cpuShares":1024,"cpuReservationMillicores":0,
             "cpuLimitMillicores":1000,"memoryReservationMiB":0,"memoryLimitMiB":256,"cpuset":"0","labels":{"env":"dev"},"driver":"qemu"}
            """),
        ("PUT", "v1/vms/fuzz-vm/labels", """{"env":"dev","tier":"web"}"""),
        ("PATCH", "v1/vms/fuzz-vm/resources", """
            {"cpuShares":1024,"cpuReservationMillicores":0,"cpuLimitMillicores":1000,"memoryReservationMiB":0,"memoryLimitMiB":256,"cpuset":"0"}
            """),
        ("POST", "v1/tenants", """{"id":"fz-t","quota":{"vms":1,"vcpus":2,"memoryMiB":1024}}"""),
        ("PATCH", "v1/tenants/fuzz-t", """
            {"quota":{"vms":1,"vcpus":2,"memoryMiB":1024},"disabled":false,"pool":{"cpuShares":1024,"cpuReservationMillicores":0,"cpuLimitMillicores":1000}}
            """),
        ("POST", "v1/tenants/fuzz-t/keys", """{"role":"member","name":"ci"}"""),
        ("POST", "v1/webhooks", """{"url":"https://example.com/hook","events":["VmStarted","VmStopped"]}"""),
        ("POST", "v1/rules", """{"name":"fz-r","on":{"event":"VmRestarting","count":3,"within":"10m"},"action":"stop","selector":{"env":"dev"}}"""),
        ("POST", "v1/rules", """{"name":"fz-c","schedule":"0 3 * * *","action":"start"}"""),
    ];

    /// <summary>Numbers no field takes: past int and long, fractions, past double.</summary>
    private static readonly string[] OutOfRange = ["1e400", "-1e400", "9223372036854775808", "-9223372036854775809", "2147483648.5", "0.5"];

    /// <summary>What a trailing newline or escape looks like in a string field.</summary>
    /// <remarks>As escapes, written into JSON and HOCON text alike.</remarks>
    private static readonly string[] ControlTails = [@"\n", @"\r\n", @"\t", @"\u0000", @"\u001b[2J", @"\u007f", @"\u0085"];

    /// <summary>
    /// For every JSON write endpoint, each field in turn: out-of-range numbers, numbers in quotes, trailing control
    /// characters, the field given twice, and a value of another JSON type. Each request is invalid, so each answer is a
    /// 4xx with problem details (never a 2xx, never a 5xx) and nothing changes.
    /// </summary>
    [Fact]
    public async Task Every_write_endpoint_refuses_every_spoiled_field_with_a_4xx_and_changes_nothing()
    {
        await using var node = await NodeProcess.StartAsync(output, """
            orchestrator.host.driver = simulated
            orchestrator.host.simulated-hosts = 1
            orchestrator.api.rate-limit.requests-per-second = 100000
            orchestrator.api.rate-limit.burst = 100000
            """);
        await node.TenantKeyAsync("fuzz-t");
        await node.Eventually(async () => (await node.Http.GetStringAsync("v1/hosts")).Contains("simulated") ? "up" : null,
            TimeSpan.FromSeconds(30), "the simulated host to register");
        Assert.Equal(System.Net.HttpStatusCode.Created, (await node.Http.PostAsync("v1/vms",
            new StringContent("""{"name":"fuzz-vm","vcpus":1,"memoryMiB":128,"image":"demo"}""", Encoding.UTF8, "application/json"))).StatusCode);
        var before = await Settled(node);
        var failures = new List<string>();
        var sent = 0;

        async Task Send(string method, string path, string body, string contentType = "application/json")
        {
            sent++;
            using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = new StringContent(body, Encoding.UTF8, contentType) };
            var response = await node.Http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            var status = (int)response.StatusCode;
            if (status is < 400 or >= 500 || response.Content.Headers.ContentType?.MediaType != "application/problem+json")
            {
                failures.Add($"{method} {path} {body.ReplaceLineEndings(" ")[..Math.Min(300, body.Length)]}: {status} {text[..Math.Min(200, text.Length)]}");
            }
        }

        foreach (var (method, path, body) in WriteBodies)
        {
            foreach (var spoiled in Spoil(JsonNode.Parse(body)!))
            {
                await Send(method, path, spoiled);
            }
        }

        // The apply file is HOCON, not JSON: the same spoils, where HOCON has them (it has no number type to quote).
        const string apply = "vms { fz-a { vcpus = 1, memory-mib = 128, image = demo, restart = always, cpu-shares = 1024, cpu-limit = 1000m, labels { env = dev } } }";
        foreach (var (field, value) in new[] { ("vcpus", "1"), ("memory-mib", "128"), ("cpu-shares", "1024"), ("cpu-limit", "1000m") })
        {
            // (0.5 is a fine cpu-limit in an apply file: half a CPU.)
            foreach (var wrong in OutOfRange.Where(n => n != "0.5").Append("[1]").Append("{ a = 1 }"))
            {
                await Send("POST", "v1/apply", apply.Replace($"{field} = {value}", $"{field} = {wrong}", StringComparison.Ordinal), "text/plain");
            }

            await Send("POST", "v1/apply", apply.Replace($"{field} = {value}", $"{field} = {value}, {field} = {value}", StringComparison.Ordinal), "text/plain");
        }

        foreach (var tail in ControlTails)
        {
            await Send("POST", "v1/apply", apply.Replace("fz-a", $"\"fz-a{tail}\"", StringComparison.Ordinal), "text/plain");
            await Send("POST", "v1/apply", apply.Replace("image = demo", $"image = \"demo{tail}\"", StringComparison.Ordinal), "text/plain");
            await Send("POST", "v1/apply", apply.Replace("env = dev", $"env = \"dev{tail}\"", StringComparison.Ordinal), "text/plain");
            await Send("POST", "v1/apply", apply.Replace("env = dev", $"\"env{tail}\" = dev", StringComparison.Ordinal), "text/plain");
        }

        output.WriteLine($"{sent} spoiled requests");
        Assert.True(failures.Count == 0, $"{failures.Count} of {sent} answers were wrong:\n" + string.Join("\n", failures.Take(40)));
        Assert.Equal(before, await Settled(node));
    }

    /// <summary>The body once per spoil of each field (and of each object, given twice or of another type), as JSON text.</summary>
    private static IEnumerable<string> Spoil(JsonNode body)
    {
        foreach (var node in Descendants(body).Where(n => n.Parent is not null))
        {
            var replacements = new List<string>();
            switch (node)
            {
                case JsonValue value when value.GetValueKind() == System.Text.Json.JsonValueKind.Number:
                    replacements.AddRange(OutOfRange);
                    replacements.Add($"\"{value.ToJsonString()}\"");
                    replacements.AddRange(["true", "{}", "[]", "\"x\""]);
                    break;
                case JsonValue value when value.GetValueKind() == System.Text.Json.JsonValueKind.String:
                    var json = value.ToJsonString();
                    replacements.AddRange(ControlTails.Select(tail => json[..^1] + tail + "\""));
                    replacements.AddRange(["5", "true", "{}", "[]"]);
                    break;
                case JsonValue:
                    replacements.AddRange(["\"true\"", "1", "{}", "[]"]);
                    break;
                case JsonObject:
                    replacements.AddRange(["\"x\"", "5", "[]"]);
                    break;
                case JsonArray:
                    replacements.AddRange(["\"x\"", "5", "{}"]);
                    break;
            }

            foreach (var replacement in replacements)
            {
                yield return Replaced(body, node, replacement);
            }

            // Given twice, in the object that holds it, with the same value: the repetition alone must be refused.
            if (node.Parent is JsonObject)
            {
                yield return Replaced(body, node, $"{node.ToJsonString()},\"{node.GetPropertyName()}\":{node.ToJsonString()}");
            }
        }
    }

    private static IEnumerable<JsonNode> Descendants(JsonNode node)
    {
        yield return node;
        var children = node switch
        {
            JsonObject o => o.Select(p => p.Value!),
            JsonArray a => a.Select(v => v!),
            _ => [],
        };
        foreach (var descendant in children.SelectMany(Descendants))
        {
            yield return descendant;
        }
    }

    /// <summary>The body's JSON text with <paramref name="node"/> written as <paramref name="raw"/> (which may be any text).</summary>
    private static string Replaced(JsonNode body, JsonNode node, string raw)
    {
        const string Marker = "\"@@spoiled@@\"";
        var copy = body.DeepClone();
        var path = node.GetPath();
        var target = Descendants(copy).Single(n => n.GetPath() == path);
        switch (target.Parent)
        {
            case JsonObject parent:
                parent[target.GetPropertyName()] = "@@spoiled@@";
                break;
            case JsonArray parent:
                parent[target.GetElementIndex()] = "@@spoiled@@";
                break;
        }

        return copy.ToJsonString().Replace(Marker, raw, StringComparison.Ordinal);
    }

    /// <summary>What a spoiled request could have changed: the VMs' specs, tenants and their keys, webhooks and rules.</summary>
    private static async Task<string> Settled(NodeProcess node)
    {
        var vms = JsonNode.Parse(await node.Http.GetStringAsync("v1/vms"))!.AsArray().Select(v =>
            $"{v!["tenant"]}/{v["name"]} {v["vcpus"]} {v["memoryMiB"]} {v["restartPolicy"]} {v["labels"]!.ToJsonString()} " +
            $"{v["resources"]!["cpuShares"]} {v["resources"]!["cpuReservationMillicores"]} {v["resources"]!["cpuLimitMillicores"]} " +
            $"{v["resources"]!["memoryReservationMiB"]} {v["resources"]!["memoryLimitMiB"]} {v["resources"]!["cpuset"]}");
        var tenants = new List<string>();
        foreach (var id in JsonNode.Parse(await node.Http.GetStringAsync("v1/tenants"))!.AsArray().Select(t => (string)t!["id"]!))
        {
            tenants.Add(await node.Http.GetStringAsync($"v1/tenants/{id}"));
        }

        return string.Join("\n", [.. vms, .. tenants, await node.Http.GetStringAsync("v1/webhooks"), await node.Http.GetStringAsync("v1/rules")]);
    }

    /// <summary>Every route of the API, as the OpenAPI document must list it.</summary>
    public static readonly string[] Routes =
    [
        "/v1/vms", "/v1/vms/{name}", "/v1/vms/{name}/stop", "/v1/vms/{name}/start", "/v1/vms/{name}/labels", "/v1/vms/{name}/resources",
        "/v1/hosts", "/v1/capacity", "/v1/images", "/v1/images/{name}", "/v1/tenant", "/v1/tenants", "/v1/tenants/{id}", "/v1/tenants/{id}/keys",
        "/v1/tenants/{id}/keys/{keyId}", "/v1/webhooks", "/v1/webhooks/{id}", "/v1/webhooks/{id}/deliveries", "/v1/apply",
        "/v1/rules", "/v1/rules/{id}", "/v1/events", "/v1/vms/{name}/pause", "/v1/vms/{name}/resume", "/v1/vms/{name}/console",
        "/v1/vms/{name}/console/ticket", "/v1/hosts/{id}", "/v1/hosts/{id}/labels", "/v1/groups", "/v1/groups/{name}", "/v1/networks",
        "/v1/networks/{name}", "/v1/secgroups", "/v1/secgroups/{name}", "/v1/secgroups/{name}/rules", "/v1/secgroups/{name}/rules/{rule}",
        "/v1/vms/{name}/nics/{index}/secgroups", "/v1/volumes", "/v1/volumes/{name}", "/v1/volumes/{name}/resize",
        "/v1/vms/{name}/volumes/{volume}", "/v1/snapshots", "/v1/vms/{name}/snapshots", "/v1/vms/{name}/snapshots/{snapshot}",
        "/v1/vms/{name}/snapshots/{snapshot}/restore",
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
