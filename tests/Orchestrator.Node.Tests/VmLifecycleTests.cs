using System.Net;
using System.Text.Json.Nodes;
using Orchestrator.Hypervisor;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

[Collection(NodeCollection.Name)]
public sealed class VmLifecycleTests(SharedNode fixture) : IClassFixture<SharedNode>
{
    private readonly NodeProcess _node = fixture.Node;

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
        Assert.DoesNotContain((string)failed["id"]!, _node.QemuProcesses().Keys);
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
    public async Task Pause_stops_a_busy_guests_vcpu_and_resume_lets_it_run_again()
    {
        await _node.CreateVmAsync("busy", image: "demo-burn");
        var ready = await _node.WaitForVmAsync("busy", "Ready", vm => vm["vcpuThreads"]!.AsArray().Count == 1);
        var pid = (int)ready["pid"]!;
        var thread = (int)ready["vcpuThreads"]![0]!["threadId"]!;
        TimeSpan OnCpu() => ProcStat.ReadThreadSchedStat(pid, thread)!.OnCpu;

        // Another tenant cannot find it to pause it.
        using (var stranger = _node.ClientWith(await _node.TenantKeyAsync("tenant-stranger")))
        {
            Assert.Equal(HttpStatusCode.NotFound, (await stranger.PostAsync("v1/vms/busy/pause", null)).StatusCode);
        }

        var paused = await PostForVm("v1/vms/busy/pause");
        Assert.True((bool)paused["paused"]!);
        Assert.Equal("Ready", (string?)paused["state"]);
        Assert.True((bool)(await PostForVm("v1/vms/busy/pause"))["paused"]!); // pausing a paused VM changes nothing
        var atPause = OnCpu();
        await Task.Delay(TimeSpan.FromSeconds(1));
        // The burner kept a whole CPU busy before; paused, its vCPU thread sleeps (a few wake-ups at most).
        Assert.True(OnCpu() - atPause < TimeSpan.FromMilliseconds(100), $"the paused vCPU used {(OnCpu() - atPause).TotalMilliseconds:F0} ms");
        Assert.True((bool)(await _node.GetVmAsync("busy"))!["paused"]!);

        var resumed = await PostForVm("v1/vms/busy/resume");
        Assert.False((bool)resumed["paused"]!);
        var atResume = OnCpu();
        await _node.Eventually(() => Task.FromResult<bool?>(OnCpu() - atResume > TimeSpan.FromMilliseconds(500) ? true : null),
            TimeSpan.FromSeconds(30), "the resumed vCPU to burn CPU again");
        Assert.Equal(pid, (int)(await _node.GetVmAsync("busy"))!["pid"]!);
        // The node is shared: a burning guest would slow the next tests.
        await _node.Http.DeleteAsync("v1/vms/busy");
        await _node.Eventually(async () => await _node.GetVmAsync("busy") is null ? true : (bool?)null, TimeSpan.FromSeconds(30), "busy to be gone");
    }

    [Fact]
    public async Task Pausing_a_stopped_vm_is_a_conflict_that_says_why()
    {
        await _node.CreateVmAsync("idle");
        await _node.WaitForVmAsync("idle", "Ready");
        Assert.Equal(202, (int)(await _node.Http.PostAsync("v1/vms/idle/stop", null)).StatusCode);
        await _node.WaitForVmAsync("idle", "Stopped");

        var response = await _node.Http.PostAsync("v1/vms/idle/pause", null);
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Contains("the VM is Stopped, not running", await response.Content.ReadAsStringAsync());
    }

    private async Task<JsonObject> PostForVm(string path)
    {
        var response = await _node.Http.PostAsync(path, null);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode} {body}");
        return JsonNode.Parse(body)!.AsObject();
    }

    [Fact]
    public async Task Delete_ends_the_process_and_removes_its_files()
    {
        var created = await _node.CreateVmAsync("doomed");
        var ready = await _node.WaitForVmAsync("doomed", "Ready");
        var runDir = Path.Combine(_node.RunDir, "vms", (string)created["id"]!);
        Assert.True(Directory.Exists(runDir));
        var allocated = await AllocatedVcpusAsync();

        Assert.Equal(202, (int)(await _node.Http.DeleteAsync("v1/vms/doomed")).StatusCode);
        await _node.Eventually(async () => await _node.GetVmAsync("doomed") is null ? true : (bool?)null,
            TimeSpan.FromSeconds(30), "the VM to be gone");
        Assert.False(ProcessTable.IsAlive((int)ready["pid"]!));
        Assert.False(Directory.Exists(runDir));
        Assert.Equal(allocated - 1, await AllocatedVcpusAsync());
    }

    private async Task<int> AllocatedVcpusAsync() =>
        (int)JsonNode.Parse(await _node.Http.GetStringAsync("v1/hosts"))!.AsArray().Single()!["allocatedVcpus"]!;
}
