using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

[Collection(NodeCollection.Name)]
public sealed class RestartAndFencingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_restarted_node_adopts_its_running_guests_without_rebooting_them()
    {
        await using var node = await NodeProcess.StartAsync(output);
        await node.CreateVmAsync("keeper");
        await node.CreateVmAsync("victim");
        var keeper = await node.WaitForVmAsync("keeper", "Ready");
        var victim = await node.WaitForVmAsync("victim", "Ready");

        await node.StopAsync();
        Assert.True(ProcessTable.IsAlive((int)keeper["pid"]!), "VMs outlive a node stop");
        NodeProcess.Signal((int)victim["pid"]!, "KILL"); // dies while nobody watches
        await node.StartAgainAsync();

        var adopted = await node.WaitForVmAsync("keeper", "Ready");
        Assert.Equal((int)keeper["pid"]!, (int)adopted["pid"]!);
        Assert.Equal((string)keeper["id"]!, (string)adopted["id"]!);
        Assert.Equal(0, (int)adopted["restarts"]!);
        var restarted = await node.WaitForVmAsync("victim", "Ready", vm => (int?)vm["pid"] != (int)victim["pid"]!);
        Assert.Equal((long)victim["epoch"]!, (long)restarted["epoch"]!);
    }

    [Fact]
    public async Task A_create_retried_with_its_idempotency_key_after_a_node_restart_gets_the_vm_it_made()
    {
        await using var node = await NodeProcess.StartAsync(output);
        const string body = """{"name":"once","vcpus":1,"memoryMiB":128,"image":"demo"}""";

        async Task<(HttpStatusCode Status, JsonObject Body)> CreateAsync(string json)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/vms") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            request.Headers.Add("Idempotency-Key", "create-once");
            var response = await node.Http.SendAsync(request);
            return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject());
        }

        var (status, first) = await CreateAsync(body);
        Assert.Equal(HttpStatusCode.Created, status);

        // The node's memory of the key goes with the process; the ledger's does not.
        await node.StopAsync();
        await node.StartAgainAsync();
        var (again, retried) = await CreateAsync(body);
        Assert.Equal(HttpStatusCode.Created, again);
        Assert.Equal((string)first["id"]!, (string)retried["id"]!);
        Assert.Single(JsonNode.Parse(await node.Http.GetStringAsync("v1/vms"))!.AsArray());

        var (other, refused) = await CreateAsync(body.Replace("\"once\"", "\"twice\"", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, other);
        Assert.Contains("another body", (string?)refused["detail"]);
    }

    [Fact]
    public async Task A_node_killed_and_left_down_has_its_guests_killed_by_the_fence_guard()
    {
        await using var node = await NodeProcess.StartAsync(output);
        await node.CreateVmAsync("orphan");
        var vm = await node.WaitForVmAsync("orphan", "Ready");

        node.Kill();
        Assert.True(ProcessTable.IsAlive((int)vm["pid"]!), "the guard, not the node's death itself, ends the VM");
        // fence-after is 4 s in the test config; allow generous slack for a loaded machine.
        await node.Eventually(() => Task.FromResult<bool?>(!ProcessTable.IsAlive((int)vm["pid"]!)), TimeSpan.FromSeconds(30),
            "the fence guard to kill the orphaned guest");
        Assert.Empty(node.QemuProcesses());
    }

    [Fact]
    public async Task A_second_node_on_the_same_data_dir_refuses_to_start()
    {
        await using var node = await NodeProcess.StartAsync(output);
        var second = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "orchestrator.dll"), "node", "--data", node.DataDir, "--listen", "127.0.0.1:0" },
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        })!;
        var error = await second.StandardError.ReadToEndAsync();
        await second.WaitForExitAsync();
        Assert.Equal(1, second.ExitCode);
        Assert.Contains($"another node (pid {node.Pid}) is using", error);
    }
}
