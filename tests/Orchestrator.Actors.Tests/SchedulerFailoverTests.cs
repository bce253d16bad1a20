using System.Net;
using System.Text.Json.Nodes;
using Akka.Actor;
using Orchestrator.Actors.Hosts;
using Orchestrator.Actors.Settings;
using Orchestrator.Actors.Scheduler;
using Orchestrator.Actors.Webhooks;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;
using Orchestrator.Tests.Shared;

namespace Orchestrator.Actors.Tests;

/// <summary>
/// What the scheduler's children owe survives the scheduler stopping and a new one starting on the same journal (a
/// failover, as seen from the journal): webhook deliveries still being retried, and the counts of event rules.
/// </summary>
public sealed class SchedulerFailoverTests : PersistentTestKit
{
    private static readonly LedgerRules Rules = LedgerRules.Create(["demo"]);
    private static readonly TenantId Acme = new("acme");

    private static readonly WebhookSettings Webhooks =
        new(Attempts: 1000, FirstRetry: TimeSpan.FromMilliseconds(100), Timeout: TimeSpan.FromSeconds(5), AllowPrivateAddresses: true);

    private IActorRef StartScheduler() => Sys.ActorOf(SchedulerActor.Props(Rules, 1000,
        new HostLossTimings(TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1)), webhooks: Webhooks));

    private IActorRef Failover(IActorRef scheduler)
    {
        Watch(scheduler);
        scheduler.Tell(PoisonPill.Instance);
        ExpectTerminated(scheduler);
        return StartScheduler();
    }

    private void Ask(IActorRef scheduler, ILedgerCommand command)
    {
        scheduler.Tell(command);
        ExpectMsg<object>(reply => reply is not SchedulerReplies.Refused);
    }

    /// <summary>A tenant with a host to place on (the agent a probe that ignores what it is told).</summary>
    private IActorRef StartWithTenant()
    {
        var scheduler = StartScheduler();
        var agent = CreateTestProbe();
        scheduler.Tell(new RegisterHostAgent(new LedgerCommands.RegisterHost(new HostId("h1"), 8, 16384, "qemu")), agent.Ref);
        agent.ExpectMsg<SchedulerReplies.HostAssignments>();
        Ask(scheduler, new LedgerCommands.CreateTenant(Acme, TenantQuota.Unlimited));
        return scheduler;
    }

    [Fact]
    public async Task A_webhook_delivery_still_being_retried_when_the_scheduler_stops_is_made_by_the_next_one()
    {
        using var receiver = new LoopbackReceiver(HttpStatusCode.ServiceUnavailable);
        var scheduler = StartWithTenant();
        Ask(scheduler, new LedgerCommands.CreateWebhook("wh1", Acme, receiver.Url, "s3cret", [nameof(LedgerEvents.VmRequested)]));
        Ask(scheduler, new LedgerCommands.CreateVm(Acme, new VmSpec("web", 1, 256, "demo"), VmId.New()));
        await AwaitConditionAsync(() => Task.FromResult(receiver.Received.Count >= 2), TimeSpan.FromSeconds(30));

        scheduler = Failover(scheduler);
        receiver.Status = HttpStatusCode.OK;
        await AwaitConditionAsync(() => Task.FromResult(receiver.Received.Any(r => r.Answered == HttpStatusCode.OK)), TimeSpan.FromSeconds(30));

        // The same event, under the same delivery id, as the attempts the first scheduler made.
        var first = receiver.Received.First();
        var delivered = receiver.Received.First(r => r.Answered == HttpStatusCode.OK);
        var body = JsonNode.Parse(delivered.Body)!;
        Assert.Equal("VmRequested", (string?)body["type"]);
        Assert.Equal((long)JsonNode.Parse(first.Body)!["id"]!, (long)body["id"]!);
        Assert.Equal(first.DeliveryId, delivered.DeliveryId);
        Assert.Equal("acme", (string?)body["tenant"]);

        scheduler.Tell(new WebhookProtocol.GetDeliveries(Acme, "wh1"));
        var delivery = Assert.Single(ExpectMsg<WebhookProtocol.Deliveries>().Items);
        Assert.Equal(WebhookDelivery.Delivered, delivery.Status);
        Assert.Equal(first.DeliveryId, delivery.DeliveryId);
    }

    [Fact]
    public async Task An_event_rule_counts_across_a_scheduler_failover()
    {
        var scheduler = StartWithTenant();
        Ask(scheduler, new LedgerCommands.CreateRule("r1", Acme, "two-strikes", nameof(LedgerEvents.VmRestarting), 2, TimeSpan.FromMinutes(10), null,
            VmLabels.None, RuleAction.Stop));
        scheduler.Tell(new LedgerCommands.CreateVm(Acme, new VmSpec("flaky", 1, 256, "demo", RestartPolicy.Always), VmId.New()));
        var vm = ExpectMsg<SchedulerReplies.VmAccepted>().Vm;
        Ask(scheduler, new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Restarting, "exited", null, 1));

        scheduler = Failover(scheduler); // the first strike was counted, or is still to be read: either way it counts
        Ask(scheduler, new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Restarting, "exited", null, 2));

        await AwaitConditionAsync(async () =>
        {
            var found = await scheduler.Ask<SchedulerReplies.VmFound>(new SchedulerQueries.GetVm(Acme, "flaky"), TimeSpan.FromSeconds(5));
            return found.Vm?.Desired == DesiredState.Stopped;
        }, TimeSpan.FromSeconds(30));
    }
}
