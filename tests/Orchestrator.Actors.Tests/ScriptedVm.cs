using System.Collections.Concurrent;
using Orchestrator.Domain;
using Orchestrator.Domain.Vms;
using Orchestrator.Hypervisor;

namespace Orchestrator.Actors.Tests;

// A VM handle, its vCPUs and a driver scripted for VM actor tests (this machine has no /dev/kvm): each vCPU answers a
// request at once, or never, as its test says.

internal sealed class ScriptedDriver(ScriptedVm vm, TaskCompletionSource? startGate = null) : IHypervisor
{
    public string Name => "scripted";

    public async Task<IVmHandle> StartAsync(VmLaunchSpec spec, CancellationToken cancellationToken)
    {
        if (startGate is not null)
        {
            await startGate.Task.WaitAsync(cancellationToken);
        }

        return vm;
    }

    public Task<IReadOnlyList<DiscoveredVm>> DiscoverAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<DiscoveredVm>>([]);

    public Task<IVmHandle> AdoptAsync(DiscoveredVm vm, CancellationToken cancellationToken) => throw new NotSupportedException();

    public Task KillAsync(DiscoveredVm vm, CancellationToken cancellationToken) => Task.CompletedTask;

    public void Cleanup(VmId vmId)
    {
    }

    public void Heartbeat()
    {
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>A VM of scripted vCPUs; killing it ends them all and then reports Exited, as the engine does.</summary>
internal sealed class ScriptedVm(int vcpus) : IVmHandle, IVcpuHost
{
    private readonly ConcurrentBag<Action<VmEvent>> _subscribers = [];
    private int _ended;

    public ScriptedVcpu[] ScriptedVcpus { get; } = Enumerable.Range(0, vcpus).Select(i => new ScriptedVcpu(i)).ToArray();

    public IReadOnlyList<IVcpuHandle> Vcpus => ScriptedVcpus;

    public VmId VmId { get; } = VmId.New();

    public Epoch Epoch => new(1);

    public int Pid => Environment.ProcessId;

    public string ConsoleLogPath => "/nonexistent/console.log";

    public bool Killed { get; private set; }

    public void Subscribe(Action<VmEvent> onEvent) => _subscribers.Add(onEvent);

    public Task<IReadOnlyList<VcpuInfo>> QueryVcpusAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<VcpuInfo>>(ScriptedVcpus.Select(v => new VcpuInfo(v.Index, v.ThreadId)).ToList());

    public Task PauseAsync(CancellationToken cancellationToken) => throw new NotSupportedException("the VM actor drives vCPUs one by one");

    public Task ResumeAsync(CancellationToken cancellationToken) => throw new NotSupportedException("the VM actor drives vCPUs one by one");

    public async Task<ShutdownRoute> RequestShutdownAsync(CancellationToken cancellationToken)
    {
        await KillAsync(cancellationToken);
        return ShutdownRoute.StoppedByHost;
    }

    public Task KillAsync(CancellationToken cancellationToken)
    {
        Killed = true;
        End("killed");
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        End("handle disposed");
        return ValueTask.CompletedTask;
    }

    private void End(string reason)
    {
        if (Interlocked.Exchange(ref _ended, 1) == 1)
        {
            return;
        }

        foreach (var vcpu in ScriptedVcpus)
        {
            vcpu.End(new VcpuEnd(VcpuEndKind.Stopped, reason));
        }

        foreach (var subscriber in _subscribers)
        {
            subscriber(new VmEvent.Exited(reason));
        }
    }
}

internal sealed class ScriptedVcpu(int index) : IVcpuHandle
{
    private readonly TaskCompletionSource<VcpuEnd> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile VcpuState _state = VcpuState.Running;

    /// <summary>Never acknowledges a pause (a thread stuck outside the reach of its kick).</summary>
    public bool SilentOnPause { get; set; }

    /// <summary>Refuses a pause, as a vCPU that ended meanwhile does.</summary>
    public bool RefusesPause { get; set; }

    public ConcurrentQueue<string> Requests { get; } = new();

    public int Index => index;

    public int ThreadId => 0; // no real thread: nothing to sample or pin

    public VcpuState State => _state;

    public VcpuCounters Counters => new(0, 0, 0, 0, 0);

    public Task<VcpuEnd> Completion => _completion.Task;

    public Task PauseAsync(CancellationToken cancellationToken)
    {
        Requests.Enqueue("pause");
        if (SilentOnPause)
        {
            return Task.Delay(Timeout.Infinite, cancellationToken);
        }

        if (RefusesPause)
        {
            return Task.FromException(new HypervisorException($"vCPU {index} refuses"));
        }

        _state = VcpuState.Paused;
        return Task.CompletedTask;
    }

    public Task ResumeAsync(CancellationToken cancellationToken)
    {
        Requests.Enqueue("resume");
        _state = VcpuState.Running;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Requests.Enqueue("stop");
        End(new VcpuEnd(VcpuEndKind.Stopped, "stopped"));
        return Task.CompletedTask;
    }

    public void End(VcpuEnd end)
    {
        _state = end.Kind == VcpuEndKind.Failed ? VcpuState.Failed : VcpuState.Stopped;
        _completion.TrySetResult(end);
    }
}
