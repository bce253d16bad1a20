using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>Automation rules on a real node: driven by a guest's crashes, and by a cron schedule.</summary>
[Collection(NodeCollection.Name)]
public sealed class RuleTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_vm_that_crashes_twice_is_stopped_by_its_rule_and_the_event_names_the_rule()
    {
        await using var node = await NodeProcess.StartAsync(output);
        using var client = node.ClientWith(await node.TenantKeyAsync("auto"));
        var rule = await client.PostAsJsonAsync("v1/rules",
            new { name = "two-strikes", on = new { @event = "VmRestarting", count = 2, within = "5m" }, action = "stop" });
        Assert.Equal(HttpStatusCode.Created, rule.StatusCode);
        await client.PostAsJsonAsync("v1/vms", new { name = "flaky", vcpus = 1, memoryMiB = 128, image = "demo", restartPolicy = "always" });

        var first = await ReadyAsync(node, client, "flaky", null);
        NodeProcess.Signal((int)first["pid"]!, "KILL");
        var second = await ReadyAsync(node, client, "flaky", (int)first["pid"]!);
        NodeProcess.Signal((int)second["pid"]!, "KILL");

        var stopped = await node.Eventually(async () =>
        {
            var vm = JsonNode.Parse(await client.GetStringAsync("v1/vms/flaky"))!;
            return (string?)vm["desiredState"] == "Stopped" && (string?)vm["state"] == "Stopped" ? vm : null;
        }, TimeSpan.FromSeconds(60), "the rule to stop flaky");
        Assert.Equal(2, (int)stopped["restarts"]!);

        var events = await client.GetStringAsync("v1/events?follow=false&type=RuleFired");
        Assert.Contains("\"ruleName\":\"two-strikes\"", events);
    }

    [Fact]
    public async Task A_scheduled_rule_stops_the_labelled_vms_and_leaves_the_others()
    {
        await using var node = await NodeProcess.StartAsync(output);
        using var client = node.ClientWith(await node.TenantKeyAsync("nightly"));
        await client.PostAsJsonAsync("v1/vms", new { name = "devbox", vcpus = 1, memoryMiB = 128, image = "demo", labels = new { env = "dev" } });
        await client.PostAsJsonAsync("v1/vms", new { name = "keeper", vcpus = 1, memoryMiB = 128, image = "demo" });
        await ReadyAsync(node, client, "keeper", null);

        // Every two seconds is more often than a tenant may schedule (400 naming the field); the operator may, for it.
        var rule = new { name = "evening", schedule = "*/2 * * * * *", action = "stop", selector = new { env = "dev" } };
        var refused = await client.PostAsJsonAsync("v1/rules", rule);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.NotNull(JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["errors"]!["schedule"]);
        Assert.Equal("[]", await client.GetStringAsync("v1/rules"));
        var created = await node.Http.PostAsJsonAsync("v1/rules?tenant=nightly", rule);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var ruleId = (string)JsonNode.Parse(await created.Content.ReadAsStringAsync())!["id"]!;

        await node.Eventually(async () => (string?)JsonNode.Parse(await client.GetStringAsync("v1/vms/devbox"))!["state"] == "Stopped",
            TimeSpan.FromSeconds(60), "the schedule to stop devbox");
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"v1/rules/{ruleId}")).StatusCode);
        var keeper = JsonNode.Parse(await client.GetStringAsync("v1/vms/keeper"))!;
        Assert.Equal(("Running", "Ready"), ((string)keeper["desiredState"]!, (string)keeper["state"]!));

        var bad = await client.PostAsJsonAsync("v1/rules", new { name = "nonsense", schedule = "every tuesday", action = "stop" });
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("schedule", await bad.Content.ReadAsStringAsync());
    }

    private static Task<JsonObject> ReadyAsync(NodeProcess node, HttpClient client, string name, int? notPid) =>
        node.Eventually(async () =>
        {
            var vm = JsonNode.Parse(await client.GetStringAsync($"v1/vms/{name}"))!.AsObject();
            return (string?)vm["state"] == "Ready" && (int?)vm["pid"] is { } pid && pid != notPid ? vm : null;
        }, TimeSpan.FromSeconds(90), $"{name} to be Ready");
}
