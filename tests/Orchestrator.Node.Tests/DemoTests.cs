using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>`orchestrator demo` (node --demo-vms N): a short summary on the terminal, the full log in the data dir.</summary>
[Collection(NodeCollection.Name)]
public sealed class DemoTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_demo_prints_a_summary_with_each_vms_create_to_ready_time_and_its_vms_pinging_each_other_and_logs_the_rest_to_a_file()
    {
        await using var node = await NodeProcess.StartAsync(output, extraArgs: ["--demo-vms", "2"]);
        await node.Eventually(() => Task.FromResult<bool?>(node.Lines.Any(l => l.StartsWith("Try, in another terminal", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(120), "the demo's next steps");
        var lines = node.Lines;
        Assert.Contains(lines, l => l.StartsWith("node ", StringComparison.Ordinal) && l.Contains(" up: API http://", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("  dashboard: http://", StringComparison.Ordinal) && l.Contains("admin.key", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("accelerator: ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("demo-1 ready in ", StringComparison.Ordinal) && l.EndsWith(" s (create → ready)", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("demo-2 ready in ", StringComparison.Ordinal));
        // The demo VMs share the demo network: demo-2 (10.77.0.3 by DHCP) pinged demo-1 at boot, and the demo read it off its console.
        Assert.Contains("network demo 10.77.0.0/24: every demo VM has a NIC on it", lines);
        Assert.Contains("demo-2 pinged demo-1 (10.77.0.2): answered", lines);
        Assert.Contains(lines, l => l.Contains("./orchestrator vm list", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("Akka", StringComparison.Ordinal)); // the cluster's chatter is in the file

        var logFile = Path.Combine(node.DataDir, "node.log");
        Assert.Contains(lines, l => l.Contains(logFile, StringComparison.Ordinal));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(logFile));
        var log = await File.ReadAllTextAsync(logFile);
        Assert.Contains("VM demo-1 ready: ORCHESTRATOR-GUEST-READY demo-1", log);
        Assert.Contains(" info: Akka.Cluster", log);

        // A node's VMs outlive it (adoption), and so would their taps and the network's bridge in the machine's namespace,
        // in the way of the next test's network: deleted here, as a user would.
        var bridge = $"/sys/class/net/obr{(int)System.Text.Json.Nodes.JsonNode.Parse(await node.Http.GetStringAsync("v1/networks/demo"))!["vni"]!:x}";
        foreach (var vm in new[] { "demo-1", "demo-2" })
        {
            await node.Http.DeleteAsync($"v1/vms/{vm}");
        }

        await node.Eventually(() => Task.FromResult<bool?>(Directory.Exists(bridge) ? null : true), TimeSpan.FromSeconds(60),
            $"the bridge {bridge} to go with the demo network's last VM");
    }

    [Fact]
    public async Task A_demo_vm_that_fails_prints_its_reason_and_the_node_exits_non_zero()
    {
        var data = Directory.CreateTempSubdirectory("ordm").FullName;
        var hostId = $"demo-fail-{Environment.ProcessId}";
        try
        {
            var run = await OrchestratorCommand.RunAsync(output,
                ["node", "--data", data, "--listen", "127.0.0.1:0", "--demo-vms", "1", "--set", $"orchestrator.host-id={hostId}",
                    "--set", "orchestrator.host.fence-after=4s", "--set", "orchestrator.demo.network=\"\"",
                    "--set", "orchestrator.host.qemu-binary=\"/nonexistent/qemu-system-x86_64\""],
                TimeSpan.FromSeconds(120));
            Assert.Equal(NodeHost.DemoFailedExitCode, run.ExitCode);
            Assert.Contains("demo-1 failed: ", run.Error);
            Assert.Contains("/nonexistent/qemu-system-x86_64", run.Error);
            Assert.DoesNotContain("ready in", run.Out);
        }
        finally
        {
            // The node stopped; its fence guard (which would hold the VMs) is still there.
            foreach (var guard in ProcessTable.Matching(Path.Combine(data, "run", "guard.sock")))
            {
                NodeProcess.Signal(guard, "KILL");
            }

            NodeProcess.RemoveCgroupsOf(hostId, output);
            Directory.Delete(data, recursive: true);
        }
    }
}
