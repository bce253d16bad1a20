using Orchestrator.Node.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

[Collection(NodeCollection.Name)]
public sealed class VmLifecycleTests(ITestOutputHelper output) : IAsyncLifetime
{
    private NodeProcess _node = null!;

    public async Task InitializeAsync() => _node = await NodeProcess.StartAsync(output);

    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task A_created_vm_boots_to_its_ready_banner_with_its_vcpu_threads_tracked()
    {
        var created = await _node.CreateVmAsync("web1");
        Assert.Equal("Starting", (string?)created["state"]);

        var ready = await _node.WaitForVmAsync("web1", "Ready", vm => vm["vcpuThreads"]!.AsArray().Count == 1);
        var pid = (int)ready["pid"]!;
        var thread = (int)ready["vcpuThreads"]![0]!["threadId"]!;
        Assert.True(Directory.Exists($"/proc/{pid}/task/{thread}"), "the vCPU thread belongs to the QEMU process");
        Assert.Contains(ready["consoleTail"]!.AsArray(), line => ((string?)line)!.Contains("ORCHESTRATOR-GUEST-READY web1"));
        Assert.Equal(pid, _node.QemuProcesses()[(string)ready["id"]!]);
    }

    [Fact]
    public async Task A_killed_qemu_process_is_restarted_under_on_failure()
    {
        await _node.CreateVmAsync("crashy", restartPolicy: "on-failure");
        var first = await _node.WaitForVmAsync("crashy", "Ready");
        NodeProcess.Signal((int)first["pid"]!, "KILL");

        var again = await _node.WaitForVmAsync("crashy", "Ready", vm => (int?)vm["pid"] != (int)first["pid"]!);
        Assert.Equal(1, (int)again["restarts"]!);
        Assert.Equal((long)first["epoch"]!, (long)again["epoch"]!);
    }

    [Fact]
    public async Task A_killed_qemu_process_under_never_leaves_the_vm_failed_with_the_reason()
    {
        await _node.CreateVmAsync("fragile", restartPolicy: "never");
        var first = await _node.WaitForVmAsync("fragile", "Ready");
        NodeProcess.Signal((int)first["pid"]!, "KILL");

        var failed = await _node.WaitForVmAsync("fragile", "Failed");
        Assert.Contains("ended unexpectedly", (string?)failed["reason"]);
        Assert.Empty(_node.QemuProcesses());
    }

    [Fact]
    public async Task Stop_then_start_boots_the_guest_again()
    {
        await _node.CreateVmAsync("cycle");
        var first = await _node.WaitForVmAsync("cycle", "Ready");
        Assert.Equal(202, (int)(await _node.Http.PostAsync("v1/vms/cycle/stop", null)).StatusCode);
        await _node.WaitForVmAsync("cycle", "Stopped");
        Assert.False(ProcessTable.IsAlive((int)first["pid"]!));

        Assert.Equal(202, (int)(await _node.Http.PostAsync("v1/vms/cycle/start", null)).StatusCode);
        var again = await _node.WaitForVmAsync("cycle", "Ready");
        Assert.NotEqual((int)first["pid"]!, (int)again["pid"]!);
    }

    [Fact]
    public async Task Delete_ends_the_process_and_removes_its_files()
    {
        var created = await _node.CreateVmAsync("doomed");
        var ready = await _node.WaitForVmAsync("doomed", "Ready");
        var runDir = Path.Combine(_node.RunDir, "vms", (string)created["id"]!);
        Assert.True(Directory.Exists(runDir));

        Assert.Equal(202, (int)(await _node.Http.DeleteAsync("v1/vms/doomed")).StatusCode);
        await _node.Eventually(async () => await _node.GetVmAsync("doomed") is null ? true : (bool?)null,
            TimeSpan.FromSeconds(30), "the VM to be gone");
        Assert.False(ProcessTable.IsAlive((int)ready["pid"]!));
        Assert.False(Directory.Exists(runDir));
        var hosts = await _node.Http.GetStringAsync("v1/hosts");
        Assert.Contains("\"allocatedVcpus\":0", hosts);
    }
}
