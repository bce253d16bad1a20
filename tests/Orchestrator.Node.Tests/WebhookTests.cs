using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Orchestrator.Tests.Shared;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>Webhooks against real HTTP receivers on loopback: signed deliveries, retries, and failure recorded.</summary>
[Collection(NodeCollection.Name)]
public sealed class WebhookTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Deliveries_are_signed_with_the_webhook_secret_and_a_failing_receiver_is_retried_then_marked_failed()
    {
        await using var node = await NodeProcess.StartAsync(output, """
            orchestrator.webhooks.allow-private-addresses = on
            orchestrator.webhooks.first-retry = 100ms
            orchestrator.webhooks.attempts = 3
            """);
        using var client = node.ClientWith(await node.TenantKeyAsync("hooked"));
        using var good = new LoopbackReceiver(HttpStatusCode.NoContent);
        using var bad = new LoopbackReceiver(HttpStatusCode.InternalServerError);

        var registered = await client.PostAsJsonAsync("v1/webhooks", new { url = good.Url, events = new[] { "VmRequested", "VmPlaced" } });
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
        var hook = JsonNode.Parse(await registered.Content.ReadAsStringAsync())!;
        var secret = (string)hook["secret"]!;
        // One event type, so the failing receiver's deliveries are all known once they have failed.
        var failing = JsonNode.Parse(await (await client.PostAsJsonAsync("v1/webhooks",
            new { url = bad.Url, events = new[] { "VmRequested" } })).Content.ReadAsStringAsync())!;

        // The secret is shown once: the list never has it.
        var listed = await client.GetStringAsync("v1/webhooks");
        Assert.DoesNotContain(secret, listed);
        Assert.Equal(2, JsonNode.Parse(listed)!.AsArray().Count);

        await client.PostAsJsonAsync("v1/vms", new { name = "hooked-vm", vcpus = 1, memoryMiB = 128, image = "demo" });

        List<ReceivedPost> received;
        try
        {
            received = await node.Eventually(() => Task.FromResult(good.Received.Count >= 2 ? good.Received.ToList() : null),
                TimeSpan.FromSeconds(30), "two signed deliveries");
        }
        catch (TimeoutException)
        {
            throw new TimeoutException("deliveries: " + await client.GetStringAsync($"v1/webhooks/{(string)hook["id"]!}/deliveries"));
        }
        foreach (var (body, signature, _, _) in received)
        {
            var expected = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));
            Assert.Equal(expected, signature);
            var json = JsonNode.Parse(body)!;
            Assert.Equal("hooked", (string?)json["tenant"]);
            Assert.DoesNotContain("secret", Encoding.UTF8.GetString(body), StringComparison.OrdinalIgnoreCase);
        }

        // Deliveries run side by side, so they may arrive out of order: the event id says which came first.
        var byId = received.Select(r => JsonNode.Parse(r.Body)!).OrderBy(j => (long)j["id"]!).Select(j => (string)j["type"]!).ToList();
        Assert.Equal(["VmRequested", "VmPlaced"], byId.Take(2));

        // The failing receiver saw every attempt, and the delivery says failed after the last.
        var deliveries = await node.Eventually(async () =>
        {
            var list = JsonNode.Parse(await client.GetStringAsync($"v1/webhooks/{(string)failing["id"]!}/deliveries"))!.AsArray();
            return list.Count > 0 && list.All(d => (string?)d!["status"] == "failed") ? list : null;
        }, TimeSpan.FromSeconds(30), "the failing receiver's deliveries to be marked failed");
        Assert.All(deliveries, d => Assert.Equal(3, (int)d!["attempts"]!));
        Assert.All(deliveries, d => Assert.Equal(500, (int)d!["lastStatusCode"]!));
        Assert.Single(deliveries);
        Assert.Equal(3, bad.Received.Count);

        var good2 = JsonNode.Parse(await client.GetStringAsync($"v1/webhooks/{(string)hook["id"]!}/deliveries"))!.AsArray();
        Assert.All(good2, d => Assert.Equal("delivered", (string?)d!["status"]));

        // Another tenant can't see them, and a bad URL is named.
        using var other = node.ClientWith(await node.TenantKeyAsync("other"));
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"v1/webhooks/{(string)hook["id"]!}/deliveries")).StatusCode);
        var badUrl = await other.PostAsJsonAsync("v1/webhooks", new { url = "file:///etc/passwd" });
        Assert.Equal(HttpStatusCode.BadRequest, badUrl.StatusCode);
        Assert.Contains("url", await badUrl.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task By_default_a_webhook_on_a_private_address_is_not_called()
    {
        await using var node = await NodeProcess.StartAsync(output, "orchestrator.webhooks.first-retry = 100ms\norchestrator.webhooks.attempts = 2");
        using var client = node.ClientWith(await node.TenantKeyAsync("careful"));
        using var receiver = new LoopbackReceiver(HttpStatusCode.OK);
        var hook = JsonNode.Parse(await (await client.PostAsJsonAsync("v1/webhooks", new { url = receiver.Url })).Content.ReadAsStringAsync())!;
        await client.PostAsJsonAsync("v1/vms", new { name = "quiet", vcpus = 1, memoryMiB = 128, image = "demo" });

        var deliveries = await node.Eventually(async () =>
        {
            var list = JsonNode.Parse(await client.GetStringAsync($"v1/webhooks/{(string)hook["id"]!}/deliveries"))!.AsArray();
            return list.Count > 0 && list.All(d => (string?)d!["status"] == "failed") ? list : null;
        }, TimeSpan.FromSeconds(30), "deliveries refused");
        Assert.Contains("not a public address", (string?)deliveries[0]!["lastError"]);
        Assert.Empty(receiver.Received);
    }
}
