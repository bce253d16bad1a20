using System.Net.Http.Json;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>POST /v1/apply on a real node with real guests: converge, converge again (nothing happens), prune, replace.</summary>
[Collection(NodeCollection.Name)]
public sealed class ApplyTests(ITestOutputHelper output) : IAsyncLifetime
{
    private NodeProcess _node = null!;

    public async Task InitializeAsync() => _node = await NodeProcess.StartAsync(output);

    public async Task DisposeAsync() => await _node.DisposeAsync();

    private static string File(string keep, bool withDrop) => $$"""
        vms {
          keep { {{keep}} }
          {{(withDrop ? "drop { vcpus = 1, memory-mib = 128, image = demo, labels { role = spare } }" : "")}}
        }
        """;

    private async Task<(HttpStatusCode Status, JsonObject Body)> ApplyAsync(string file, bool dryRun = false, bool prune = false)
    {
        var response = await _node.Http.PostAsync($"v1/apply?dryRun={(dryRun ? "true" : "false")}&prune={(prune ? "true" : "false")}",
            new StringContent(file, Encoding.UTF8, "application/hocon"));
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"apply (dryRun={dryRun}, prune={prune}): {(int)response.StatusCode} {text}");
        return (response.StatusCode, JsonNode.Parse(text)!.AsObject());
    }

    private static IEnumerable<(string Action, string Vm)> Steps(JsonObject result) =>
        result["steps"]!.AsArray().Select(s => ((string)s!["action"]!, (string)s["vm"]!));

    /// <summary>What the ledger holds for each VM, minus what its host reports (state, pid).</summary>
    private async Task<IReadOnlyList<string>> LedgerAsync()
    {
        var vms = JsonNode.Parse(await _node.Http.GetStringAsync("v1/vms"))!.AsArray();
        return vms.Select(v => $"{v!["name"]} {v["id"]} epoch {v["epoch"]} {v["desiredState"]} {v["resources"]!["cpuShares"]} {v["labels"]!.ToJsonString()} {v["bootstrap"]!.ToJsonString()}")
            .Order(StringComparer.Ordinal).ToList();
    }

    [Fact]
    public async Task Applying_a_file_converges_once_and_applying_it_again_changes_nothing()
    {
        // With a bootstrap too: the same hostname and user-data again are no change either.
        var small = $"vcpus = 1, memory-mib = 128, image = demo, hostname = \"keep.example.org\", user-data-base64 = \"{Convert.ToBase64String([0, .. "#!/bin/sh\n"u8])}\"";
        var first = File(small, withDrop: true);

        var (status, created) = await ApplyAsync(first);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal([("create", "drop"), ("create", "keep")], Steps(created));
        Assert.Equal(2, (int)created["changed"]!);
        await _node.WaitForVmAsync("keep", "Ready");
        await _node.WaitForVmAsync("drop", "Ready");
        Assert.Equal("spare", (string?)(await _node.GetVmAsync("drop"))!["labels"]!["role"]);
        Assert.Equal("keep.example.org", (string?)(await _node.GetVmAsync("keep"))!["bootstrap"]!["hostname"]);
        Assert.Equal(11, (int)(await _node.GetVmAsync("keep"))!["bootstrap"]!["userDataBytes"]!);
        var ledger = await LedgerAsync();

        // The same file again: every VM unchanged, no command sent, so the same ids under the same epochs.
        (status, var again) = await ApplyAsync(first);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(0, (int)again["changed"]!);
        Assert.All(Steps(again), step => Assert.Equal("unchanged", step.Action));
        Assert.Equal(ledger, await LedgerAsync());

        // Edit: more shares for keep, drop left out. A dry run says what would happen and changes nothing.
        var edited = File(small + ", cpu-shares = 2048", withDrop: false);
        (status, var plan) = await ApplyAsync(edited, dryRun: true, prune: true);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True((bool)plan["dryRun"]!);
        Assert.Equal([("delete", "drop"), ("update", "keep")], Steps(plan));
        Assert.Contains("cpu-shares 1024 (default) → 2048", (string?)plan["steps"]![1]!["detail"]);
        Assert.Equal(ledger, await LedgerAsync());

        // Without prune: keep is updated in place (same id, same epoch), drop stays.
        (status, var updated) = await ApplyAsync(edited);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal([("unchanged", "drop"), ("update", "keep")], Steps(updated));
        Assert.Equal(1, (int)updated["changed"]!);
        var keep = (await _node.GetVmAsync("keep"))!;
        Assert.Equal(2048, (int)keep["resources"]!["cpuShares"]!);
        Assert.Equal(ledger.Single(l => l.StartsWith("keep ", StringComparison.Ordinal)).Replace(" 1024 ", " 2048 ", StringComparison.Ordinal),
            (await LedgerAsync()).Single(l => l.StartsWith("keep ", StringComparison.Ordinal)));
        Assert.NotNull(await _node.GetVmAsync("drop"));

        // With prune: only drop goes.
        (status, var pruned) = await ApplyAsync(edited, prune: true);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal([("delete", "drop"), ("unchanged", "keep")], Steps(pruned));
        await _node.Eventually(async () => await _node.GetVmAsync("drop") is null, TimeSpan.FromSeconds(60), "drop to be deleted");
        Assert.Equal((string?)keep["id"], (string?)(await _node.GetVmAsync("keep"))!["id"]);

        // A size change is a replace: the old VM is deleted, then one of the same name is created (a new id) and boots.
        (status, var replaced) = await ApplyAsync(File("vcpus = 1, memory-mib = 160, image = demo, cpu-shares = 2048", withDrop: false), prune: true);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal([("replace", "keep")], Steps(replaced));
        var fresh = await _node.WaitForVmAsync("keep", "Ready");
        Assert.NotEqual((string?)keep["id"], (string?)fresh["id"]);
        Assert.Equal(160, (int)fresh["memoryMiB"]!);
        Assert.Equal(2048, (int)fresh["resources"]!["cpuShares"]!);
    }

    [Fact]
    public async Task A_file_with_a_host_selector_and_a_group_converges_and_applying_it_again_changes_nothing()
    {
        var host = await _node.Eventually(async () => (string?)JsonNode.Parse(await _node.Http.GetStringAsync("v1/hosts"))!.AsArray()
            .FirstOrDefault()?["id"], TimeSpan.FromSeconds(30), "the node's host to register");
        Assert.Equal(HttpStatusCode.OK, (await _node.Http.PostAsJsonAsync($"v1/hosts/{host}/labels",
            new { set = new Dictionary<string, string> { ["zone"] = "a" } })).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await _node.Http.PostAsJsonAsync("v1/groups", new { name = "web", policy = "soft-anti-affinity" })).StatusCode);
        const string vm = "vcpus = 1, memory-mib = 128, image = demo, group = web, host-selector = [\"zone=a\", \"!gpu\"]";
        var file = $$"""
            vms {
              w1 { {{vm}} }
              w2 { {{vm}} }
            }
            """;

        var (status, created) = await ApplyAsync(file);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal([("create", "w1"), ("create", "w2")], Steps(created));
        foreach (var name in new[] { "w1", "w2" })
        {
            var ready = await _node.WaitForVmAsync(name, "Ready");
            Assert.Equal("web", (string?)ready["group"]);
            Assert.Equal(["zone=a", "!gpu"], ready["hostSelector"]!.AsArray().Select(t => (string)t!));
            Assert.Equal(host, (string?)ready["host"]); // soft anti-affinity co-locates when there is one host
        }

        var ledger = await LedgerAsync();
        (status, var again) = await ApplyAsync(file);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(0, (int)again["changed"]!);
        Assert.All(Steps(again), step => Assert.Equal("unchanged", step.Action));
        Assert.Equal(ledger, await LedgerAsync());

        // A selector no host meets: a replace whose new VM waits Pending, naming the selector.
        (status, var moved) = await ApplyAsync(file.Replace("zone=a", "zone=b", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal([("replace", "w1"), ("replace", "w2")], Steps(moved));
        var pending = await _node.WaitForVmAsync("w1", "Pending");
        Assert.Contains("zone=b", (string?)pending["reason"]);
    }

    [Fact]
    public async Task A_bad_file_is_a_400_naming_the_path_and_nothing_is_created()
    {
        var (status, problem) = await ApplyAsync("vms { web-1 { vcpus = 1, memory-mib = 128, image = windows, shares = 2 } }");

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.NotNull(problem["errors"]!["vms.web-1.shares"]);

        (status, problem) = await ApplyAsync("vms { web-1 { vcpus = 1, memory-mib = 128, image = windows } }");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("unknown image", (string?)problem["errors"]!["vms.web-1.image"]![0]);

        (status, problem) = await ApplyAsync("include \"/etc/passwd\"");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("include is not allowed", problem.ToJsonString());

        var json = await _node.Http.PostAsync("v1/apply", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, json.StatusCode);
        var huge = await _node.Http.PostAsync("v1/apply", new StringContent(new string('#', 300 * 1024), Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, huge.StatusCode);
        Assert.Equal("[]", await _node.Http.GetStringAsync("v1/vms"));
    }
}
