// The fence guard with ordinary processes (sleep) as children: its protocol, fencing and parent-death kill.
using Orchestrator.Guard;
using Orchestrator.Guard.Protocol;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Tests;

public sealed class GuardTests : IAsyncLifetime
{
    private readonly TempDir _dir = new();
    private readonly List<GuardClient> _clients = [];
    private readonly List<int> _pids = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }

        foreach (var pid in _pids)
        {
            Processes.KillQuietly(pid);
        }

        _dir.Dispose();
    }

    private GuardClient Client(TimeSpan fenceAfter)
    {
        var client = new GuardClient(
            Path.Combine(_dir.Path, "guard.sock"), Path.Combine(_dir.Path, "guard.log"), fenceAfter, typeof(FenceGuard).Assembly.Location);
        _clients.Add(client);
        return client;
    }

    private async Task<int> HelloAsync(GuardClient client)
    {
        var hello = await client.SendAsync(new GuardRequest { Op = GuardOps.Hello }, CancellationToken.None);
        var pid = hello.GuardPid!.Value;
        _pids.Add(pid);
        return pid;
    }

    private async Task<int> SpawnSleepAsync(GuardClient client, string vmId)
    {
        var reply = await client.SendAsync(
            new GuardRequest
            {
                Op = GuardOps.Spawn,
                VmId = vmId,
                Argv = ["sleep", "600"],
                WorkingDir = _dir.Path,
                StdoutPath = Path.Combine(_dir.Path, vmId + ".log"),
            },
            CancellationToken.None);
        Assert.True(reply.Ok, reply.Error);
        _pids.Add(reply.Pid!.Value);
        return reply.Pid.Value;
    }

    private string GuardLog() => File.Exists(Path.Combine(_dir.Path, "guard.log")) ? File.ReadAllText(Path.Combine(_dir.Path, "guard.log")) : "(no guard.log)";

    [Fact]
    public async Task Guard_spawns_lists_and_kills_its_children_and_remembers_their_exit_codes()
    {
        var client = Client(TimeSpan.FromMinutes(5));
        await HelloAsync(client);
        var pid = await SpawnSleepAsync(client, "a");

        var list = await client.SendAsync(new GuardRequest { Op = GuardOps.List }, CancellationToken.None);
        Assert.Contains(new GuardChild("a", pid), list.Children!);

        var kill = await client.SendAsync(new GuardRequest { Op = GuardOps.Kill, Pid = pid }, CancellationToken.None);
        Assert.True(kill.Ok, kill.Error);
        await Eventually.HoldsAsync(() => !Processes.Exists(pid), $"pid {pid} survived the guard's kill");

        GuardResponse status = new() { Running = true };
        await Eventually.HoldsAsync(
            async () => (status = await client.SendAsync(new GuardRequest { Op = GuardOps.Status, Pid = pid }, CancellationToken.None)).Running == false,
            "the guard never saw its child exit");
        Assert.Equal(137, status.ExitCode);
        Assert.Empty((await client.SendAsync(new GuardRequest { Op = GuardOps.List }, CancellationToken.None)).Children!);
    }

    [Fact]
    public async Task Guard_refuses_to_kill_a_process_that_is_not_its_child()
    {
        var client = Client(TimeSpan.FromMinutes(5));
        await HelloAsync(client);

        var reply = await client.SendAsync(new GuardRequest { Op = GuardOps.Kill, Pid = Environment.ProcessId }, CancellationToken.None);

        Assert.False(reply.Ok);
        Assert.Contains("not a live child", reply.Error);
    }

    [Fact]
    public async Task Guard_kills_its_children_removes_its_socket_and_exits_when_heartbeats_stop()
    {
        // 3 s, and the heartbeat after the spawn: on a loaded machine a spawn took longer than a 1 s fence, which fenced
        // the guard before it had a child to kill.
        var client = Client(TimeSpan.FromSeconds(3));
        var guardPid = await HelloAsync(client);
        var child = await SpawnSleepAsync(client, "b");
        client.Heartbeat();

        await Eventually.HoldsAsync(() => !Processes.Exists(child), $"the guard did not fence its child. guard.log:\n{GuardLog()}");
        await Eventually.HoldsAsync(() => !Processes.Exists(guardPid), "the guard did not exit after fencing");
        Assert.False(File.Exists(Path.Combine(_dir.Path, "guard.sock")));
        Assert.Contains("no heartbeat", GuardLog());
    }

    [Fact]
    public async Task Heartbeats_keep_the_guard_alive_across_reconnects()
    {
        var first = Client(TimeSpan.FromSeconds(3));
        var guardPid = await HelloAsync(first);
        var child = await SpawnSleepAsync(first, "c");
        await first.DisposeAsync(); // a node going away is not itself a reason to fence

        var second = Client(TimeSpan.FromSeconds(3));
        for (var i = 0; i < 25; i++)
        {
            await second.SendAsync(new GuardRequest { Op = GuardOps.Heartbeat }, CancellationToken.None);
            await Task.Delay(200);
        }

        Assert.Equal(guardPid, await HelloAsync(second));
        Assert.True(Processes.Exists(child), $"the child died although heartbeats kept coming. guard.log:\n{GuardLog()}");
    }

    [Fact]
    public async Task Children_die_when_the_guard_is_killed()
    {
        var client = Client(TimeSpan.FromMinutes(5));
        var guardPid = await HelloAsync(client);
        var child = await SpawnSleepAsync(client, "d");

        Processes.KillQuietly(guardPid);

        await Eventually.HoldsAsync(() => !Processes.Exists(child), "the child outlived its guard (PR_SET_PDEATHSIG did not fire)");
    }

    [Fact]
    public async Task A_second_guard_for_the_same_socket_steps_aside()
    {
        var client = Client(TimeSpan.FromMinutes(5));
        var guardPid = await HelloAsync(client);

        var second = System.Diagnostics.Process.Start(
            GuardClient.DotnetHost(),
            [typeof(FenceGuard).Assembly.Location, "--socket", Path.Combine(_dir.Path, "guard.sock"), "--fence-after-ms", "60000"]);
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await second.WaitForExitAsync(bound.Token);

        Assert.Equal(3, second.ExitCode);
        Assert.Equal(guardPid, await HelloAsync(client));
    }
}
