using Akka.Actor;
using Akka.Hosting;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orchestrator.Actors.Events;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Node.Demo;

/// <summary>
/// <c>--demo-vms N</c>: creates demo-1 … demo-N for the system tenant and follows the ledger's events (the same
/// <see cref="EventFeed"/> the API streams) until each is ready or one failed.
/// </summary>
public static class DemoVms
{
    /// <returns>true once every demo VM is ready; false when one failed or was refused (the console says why).</returns>
    public static async Task<bool> RunAsync(IServiceProvider services, Akka.Configuration.Config config, int count, DemoConsole console,
        ILogger log, CancellationToken ct)
    {
        var system = services.GetRequiredService<ActorSystem>();
        var scheduler = await services.GetRequiredService<IRequiredActor<SchedulerProxy>>().GetAsync(ct);
        // The feed waits for the journal to start: off this thread. Its head comes first, so that nothing the new VMs
        // do is missed and nothing an earlier run's VMs did is taken for now.
        var feed = await Task.Run(() => EventFeed.Get(system), ct);
        var head = await HeadAsync(feed, ct);

        var waiting = new Dictionary<VmId, (string Name, DateTimeOffset Since)>();
        var demo = config.GetConfig("orchestrator.demo");
        for (var i = 1; i <= count; i++)
        {
            var spec = new VmSpec($"demo-{i}", demo.GetInt("vcpus", 1), demo.GetInt("memory-mib", 256), demo.GetString("image", "demo"));
            var reply = await scheduler.Ask<object>(new LedgerCommands.CreateVm(TenantId.System, spec, VmId.New()), TimeSpan.FromSeconds(30), ct);
            switch (reply)
            {
                case SchedulerReplies.VmAccepted { Vm: var vm }:
                    log.LogInformation("demo VM {Name} created: {Status} on {Host}", vm.Spec.Name, vm.Status, vm.Host);
                    waiting[vm.Id] = (vm.Spec.Name, vm.CreatedAt);
                    break;
                case SchedulerReplies.Refused { Refusal.Kind: RefusalKind.Conflict }:
                    log.LogInformation("demo VM {Name} exists already", spec.Name);
                    if (await ExistingAsync(scheduler, spec.Name, console, ct) is { } existing)
                    {
                        waiting[existing.Id] = existing.Entry;
                    }

                    break;
                case SchedulerReplies.Refused refused:
                    var reason = refused.Refusal.Errors.Count > 0
                        ? string.Join("; ", refused.Refusal.Errors.Select(e => $"{e.Field} {e.Message}"))
                        : refused.Refusal.Message;
                    log.LogError("demo VM {Name} refused: {Reason}", spec.Name, reason);
                    console.VmFailed(spec.Name, $"refused: {reason}");
                    return false;
            }
        }

        return waiting.Count == 0 || await FollowAsync(feed, head, waiting, console, ct);
    }

    /// <summary>A demo VM from an earlier run: ready already, started again when it had stopped or failed, or awaited.</summary>
    private static async Task<(VmId Id, (string, DateTimeOffset) Entry)?> ExistingAsync(IActorRef scheduler, string name, DemoConsole console,
        CancellationToken ct)
    {
        var found = await scheduler.Ask<SchedulerReplies.VmFound>(new SchedulerQueries.GetVm(TenantId.System, name), TimeSpan.FromSeconds(30), ct);
        if (found.Vm is not { } vm)
        {
            return null;
        }

        if (vm.Status == VmStatus.Ready)
        {
            console.VmRunning(name);
            return null;
        }

        var since = DateTimeOffset.UtcNow;
        if (vm.Status is VmStatus.Stopped or VmStatus.Failed)
        {
            await scheduler.Ask<object>(new LedgerCommands.StartVm(TenantId.System, name), TimeSpan.FromSeconds(30), ct);
        }

        return (vm.Id, (name, since));
    }

    /// <summary>The offset of the system tenant's newest event (where following starts), or none.</summary>
    private static async Task<Offset> HeadAsync(EventFeed feed, CancellationToken ct)
    {
        var last = await feed.Read(TenantId.System, Offset.FromEnd(1), follow: false)
            .RunWith(Sink.LastOrDefault<EventEnvelope>(), feed.Materializer)
            .WaitAsync(ct);
        return last?.Offset ?? Offset.NoOffset();
    }

    private static async Task<bool> FollowAsync(EventFeed feed, Offset head, Dictionary<VmId, (string Name, DateTimeOffset Since)> waiting,
        DemoConsole console, CancellationToken ct)
    {
        var (kill, queue) = feed.Read(TenantId.System, head, follow: true)
            .Where(e => e.Event is LedgerEvents.VmReady or LedgerEvents.VmFailed)
            .ViaMaterialized(KillSwitches.Single<EventEnvelope>(), Keep.Right)
            .ToMaterialized(Sink.Queue<EventEnvelope>(), Keep.Both)
            .Run(feed.Materializer);
        await using var _ = ct.Register(kill.Shutdown);
        try
        {
            while (waiting.Count > 0 && await queue.PullAsync() is { HasValue: true } next)
            {
                switch (next.Value.Event)
                {
                    case LedgerEvents.VmReady ready when waiting.Remove(ready.VmId, out var vm):
                        console.VmReady(vm.Name, ready.At - vm.Since);
                        break;
                    case LedgerEvents.VmFailed failed when waiting.TryGetValue(failed.VmId, out var vm):
                        console.VmFailed(vm.Name, failed.Reason);
                        return false;
                }
            }

            // Done, or the node is stopping (the stream ended): either way nothing failed.
            return true;
        }
        finally
        {
            kill.Shutdown();
        }
    }
}
