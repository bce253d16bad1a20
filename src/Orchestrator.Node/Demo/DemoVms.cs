using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using Akka.Actor;
using Akka.Hosting;
using Akka.Persistence.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orchestrator.Actors.Consoles;
using Orchestrator.Actors.Events;
using Orchestrator.Actors.Hosting;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Networks;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Node.Demo;

/// <summary>
/// <c>--demo-vms N</c>: creates demo-1 … demo-N for the system tenant and follows the ledger's events (the same
/// <see cref="EventFeed"/> the API streams) until each is ready or one failed. With <c>orchestrator.demo.network</c> set
/// (a CIDR), they share the system tenant's network <c>demo</c>, and each after the first pings demo-1 from its
/// user-data before its ready banner; the demo then reads that line off the VM's console and prints it.
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
        var networked = await DemoNetworkAsync(scheduler, demo.GetString("network", ""), console, log, ct);
        string? firstAddress = null;
        for (var i = 1; i <= count; i++)
        {
            var spec = new VmSpec($"demo-{i}", demo.GetInt("vcpus", 1), demo.GetInt("memory-mib", 256), demo.GetString("image", "demo"));
            if (networked)
            {
                spec = spec with
                {
                    Nics = [new VmNic(NetworkName)],
                    Bootstrap = firstAddress is null ? null : new VmBootstrap(UserData: Encoding.UTF8.GetBytes(PingScript(spec.Name, firstAddress))),
                };
            }

            var reply = await scheduler.Ask<object>(new LedgerCommands.CreateVm(TenantId.System, spec, VmId.New()), TimeSpan.FromSeconds(30), ct);
            switch (reply)
            {
                case SchedulerReplies.VmAccepted { Vm: var vm }:
                    log.LogInformation("demo VM {Name} created: {Status} on {Host}", vm.Spec.Name, vm.Status, vm.Host);
                    waiting[vm.Id] = (vm.Spec.Name, vm.CreatedAt);
                    firstAddress ??= vm.Spec.Nics?.FirstOrDefault()?.Ip;
                    break;
                case SchedulerReplies.Refused { Refusal.Kind: RefusalKind.Conflict }:
                    log.LogInformation("demo VM {Name} exists already", spec.Name);
                    var found = await scheduler.Ask<SchedulerReplies.VmFound>(new SchedulerQueries.GetVm(TenantId.System, spec.Name), TimeSpan.FromSeconds(30), ct);
                    firstAddress ??= found.Vm?.Spec.Nics?.FirstOrDefault()?.Ip;
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

        var ready = waiting.Count == 0 || await FollowAsync(feed, head, waiting, console, ct);
        if (ready && networked)
        {
            for (var i = 2; i <= count; i++)
            {
                var line = await ConsoleLineAsync(system, scheduler, $"demo-{i}", PingMark, ct);
                console.Network(line?[PingMark.Length..].Trim() ?? $"demo-{i}: no ping result on its console (it booted before the demo network existed?)");
            }
        }

        return ready;
    }

    /// <summary>The system tenant's network the demo VMs share.</summary>
    private const string NetworkName = "demo";

    /// <summary>What a demo VM's ping line starts with on its console.</summary>
    private const string PingMark = "ORCHESTRATOR-DEMO-PING";

    /// <summary>
    /// The demo network, made when missing; false (and the VMs go without a NIC) when none is configured or the ledger
    /// refuses it, so a machine without networking still runs the demo.
    /// </summary>
    private static async Task<bool> DemoNetworkAsync(IActorRef scheduler, string cidr, DemoConsole console, ILogger log, CancellationToken ct)
    {
        if (cidr.Length == 0)
        {
            return false;
        }

        // Gateway off: the demo touches nothing outside its own bridge and namespace (no NAT on the operator's uplink).
        var id = "net" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
        var reply = await scheduler.Ask<object>(new NetworkCommands.CreateNetwork(id, TenantId.System, NetworkName, cidr, Gateway: false),
            TimeSpan.FromSeconds(30), ct);
        switch (reply)
        {
            case SchedulerReplies.Refused { Refusal.Kind: RefusalKind.Conflict }:
                return true; // made by an earlier run
            case SchedulerReplies.Refused refused:
                log.LogWarning("demo network refused: {Reason}", refused.Refusal.Message);
                console.Network($"no demo network ({refused.Refusal.Message}); the VMs run without a NIC");
                return false;
            default:
                console.Network($"network {NetworkName} {cidr}: every demo VM has a NIC on it");
                return true;
        }
    }

    /// <summary>User-data that pings demo-1 and prints the outcome before the ready banner (the demo guest runs it first).</summary>
    private static string PingScript(string name, string target) =>
        $"#!/bin/sh\nif ping -c 3 -W 2 {target} >/dev/null 2>&1; then r='answered'; else r='not answered'; fi\n" +
        $"echo \"{PingMark} {name} pinged demo-1 ({target}): $r\"\n";

    /// <summary>The first line of the VM's console scrollback that starts with <paramref name="mark"/>, read without typing.</summary>
    private static async Task<string?> ConsoleLineAsync(ActorSystem system, IActorRef scheduler, string vm, string mark, CancellationToken ct)
    {
        var frames = Channel.CreateBounded<ConsoleFrame>(16);
        var outcome = new TaskCompletionSource<ConsoleAttachOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        var session = system.ActorOf(ConsoleSessionActor.Props(scheduler, new ConsoleCommands.Attach(TenantId.System, vm, CanWrite: false, Force: false),
            frames.Writer, outcome));
        try
        {
            if ((await outcome.Task.WaitAsync(TimeSpan.FromSeconds(20), ct)).VmId is null)
            {
                return null;
            }

            // The first frames after the attach notice are the scrollback, which holds everything before the ready banner.
            using var quiet = CancellationTokenSource.CreateLinkedTokenSource(ct);
            quiet.CancelAfter(TimeSpan.FromSeconds(5));
            var text = new StringBuilder();
            try
            {
                while (await frames.Reader.ReadAsync(quiet.Token) is var frame)
                {
                    if (frame is ConsoleFrame.Bytes bytes)
                    {
                        text.Append(Encoding.UTF8.GetString(bytes.Data));
                        if (text.ToString().Split('\n').FirstOrDefault(l => l.StartsWith(mark, StringComparison.Ordinal)) is { } line)
                        {
                            return line.TrimEnd('\r');
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // nothing more came: the line is not there
            }

            return null;
        }
        catch (TimeoutException)
        {
            return null;
        }
        finally
        {
            system.Stop(session);
        }
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
