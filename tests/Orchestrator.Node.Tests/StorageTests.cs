using System.Text.Json.Nodes;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>A VM's persistent disk through a real node: the demo guest counts its boots on it.</summary>
[Collection(NodeCollection.Name)]
public sealed class StorageTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_vms_disk_keeps_its_boot_count_across_stop_and_start_an_adopting_node_restart_does_not_reboot_it_and_delete_removes_it()
    {
        await using var node = await NodeProcess.StartAsync(output);
        var created = await node.CreateVmAsync("keeper");
        var disk = Path.Combine(node.DataDir, "pools", "local", "disks", (string)created["id"]! + ".qcow2");

        var first = await node.WaitForVmAsync("keeper", "Ready", vm => Banner(vm, "keeper boot=1"));
        Assert.True(File.Exists(disk), $"the disk {disk} is in the default pool");
        Assert.Equal("local", (string?)first["disk"]!["pool"]);
        Assert.Equal((string?)first["host"], (string?)first["disk"]!["pinnedTo"]);

        await node.StopAsync();
        await node.StartAgainAsync();
        // The adopted VM's console is replayed from its start: wait for the banner, then it must be the first boot's.
        var adopted = await node.WaitForVmAsync("keeper", "Ready", vm => Banner(vm, "keeper"));
        Assert.True(Banner(adopted, "keeper boot=1"), $"the adopted VM's console shows its first boot: {adopted["consoleTail"]}");
        Assert.Equal((int)first["pid"]!, (int)adopted["pid"]!); // adopted, not rebooted: still its first boot

        Assert.Equal(202, (int)(await node.Http.PostAsync("v1/vms/keeper/stop", null)).StatusCode);
        await node.WaitForVmAsync("keeper", "Stopped");
        Assert.True(File.Exists(disk), "a stopped VM keeps its disk");
        Assert.Equal(202, (int)(await node.Http.PostAsync("v1/vms/keeper/start", null)).StatusCode);
        var again = await node.WaitForVmAsync("keeper", "Ready", vm => Banner(vm, "keeper boot=2"));
        Assert.NotEqual((int)first["pid"]!, (int)again["pid"]!);

        Assert.Equal(202, (int)(await node.Http.DeleteAsync("v1/vms/keeper")).StatusCode);
        await node.Eventually(async () => await node.GetVmAsync("keeper") is null ? (bool?)true : null, TimeSpan.FromSeconds(60),
            "VM keeper to be deleted");
        Assert.False(File.Exists(disk), "a deleted VM's disk is gone from the pool");
        Assert.False(ProcessTable.IsAlive((int)again["pid"]!));
    }

    private static bool Banner(JsonObject vm, string nameAndBoot) =>
        vm["consoleTail"]?.AsArray().Any(line => ((string?)line)?.Contains($"ORCHESTRATOR-GUEST-READY {nameAndBoot}") == true) == true;
}
