using Orchestrator.Actors.Scheduler;
using Orchestrator.Domain;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Tenants;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Actors.Tests;

/// <summary>The reply to each command family, from the ledger before and after it (no actor needed).</summary>
public class SchedulerRepliesTests
{
    private static readonly LedgerRules Rules = LedgerRules.Create(["demo"]);
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);
    private static readonly TenantId Acme = new("acme");

    private LedgerState _state = LedgerState.Empty;

    /// <summary>Decides and applies the command as the scheduler does, and answers what the scheduler would.</summary>
    private object Send(ILedgerCommand command)
    {
        var before = _state;
        var decision = before.Decide(command, Rules, Now);
        Assert.Null(decision.Refusal);
        _state = decision.Events.Aggregate(before, (state, evt) => state.Apply(evt));
        return SchedulerReplies.To(command, before, _state);
    }

    private VmRecord CreateVm(string name) =>
        Assert.IsType<SchedulerReplies.VmAccepted>(Send(new LedgerCommands.CreateVm(Acme, new VmSpec(name, 1, 256, "demo"), VmId.New()))).Vm;

    public SchedulerRepliesTests() => Send(new LedgerCommands.CreateTenant(Acme, TenantQuota.Unlimited));

    [Fact]
    public void A_created_vm_is_answered_with_the_vm_as_placed()
    {
        Send(new LedgerCommands.RegisterHost(new HostId("h1"), 4, 8192, "qemu"));

        var vm = CreateVm("web1");

        Assert.Equal(new HostId("h1"), vm.Host);
        Assert.Equal(_state.FindVm(Acme, "web1"), vm);
    }

    [Fact]
    public void A_vm_command_is_answered_with_the_vm_it_changed()
    {
        CreateVm("web1");

        var stopped = Assert.IsType<SchedulerReplies.VmAccepted>(Send(new LedgerCommands.StopVm(Acme, "web1"))).Vm;

        Assert.Equal(DesiredState.Stopped, stopped.Desired);
    }

    [Fact]
    public void Deleting_a_vm_never_placed_is_answered_with_the_vm_as_last_seen()
    {
        var vm = CreateVm("web1"); // no host: pending

        var deleted = Assert.IsType<SchedulerReplies.VmAccepted>(Send(new LedgerCommands.DeleteVm(Acme, "web1"))).Vm;

        Assert.Null(_state.FindVm(Acme, "web1"));
        Assert.Equal(vm.Id, deleted.Id);
    }

    [Fact]
    public void Creating_a_rule_or_a_webhook_or_issuing_a_key_is_answered_with_what_was_recorded()
    {
        var rule = Assert.IsType<SchedulerReplies.RuleCreated>(Send(new LedgerCommands.CreateRule("r1", Acme, "evening", null, 1, TimeSpan.Zero,
            "0 20 * * 1-5", VmLabels.None, RuleAction.Stop))).Rule;
        var webhook = Assert.IsType<SchedulerReplies.WebhookCreated>(Send(new LedgerCommands.CreateWebhook("wh1", Acme,
            "https://example.org/hook", "s3cret", ["VmReady"]))).Webhook;
        var key = Assert.IsType<SchedulerReplies.KeyIssued>(Send(new LedgerCommands.IssueKey("k1", Acme, KeyRole.Member, "hash", "ci"))).Key;

        Assert.Equal(_state.Rules["r1"], rule);
        Assert.Equal(_state.Webhooks["wh1"], webhook);
        Assert.Equal(_state.Keys["k1"], key);
    }

    [Fact]
    public void A_tenant_command_is_answered_with_the_tenant_its_usage_and_its_keys()
    {
        CreateVm("web1");
        Send(new LedgerCommands.IssueKey("k1", Acme, KeyRole.Member, "hash", "ci"));

        var found = Assert.IsType<SchedulerReplies.TenantAccepted>(Send(new LedgerCommands.UpdateTenant(Acme, new TenantQuota(MaxVms: 3), null))).Tenant;

        Assert.Equal(3, found.Tenant!.Quota.MaxVms);
        Assert.Equal(1, found.Usage.Vms);
        Assert.Equal("k1", Assert.Single(found.Keys).KeyId);
    }

    [Fact]
    public void Deletes_and_reports_are_answered_done()
    {
        var vm = CreateVm("web1");
        Send(new LedgerCommands.CreateRule("r1", Acme, "evening", null, 1, TimeSpan.Zero, "0 20 * * 1-5", VmLabels.None, RuleAction.Stop));

        Assert.IsType<SchedulerReplies.Done>(Send(new LedgerCommands.DeleteRule(Acme, "r1")));
        Assert.IsType<SchedulerReplies.Done>(Send(new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Running, null, 42, null)));
    }

    [Fact]
    public void A_registering_host_is_answered_with_what_it_must_run()
    {
        Send(new LedgerCommands.RegisterHost(new HostId("h1"), 4, 8192, "qemu"));
        var vm = CreateVm("web1");

        var assignments = Assert.IsType<SchedulerReplies.HostAssignments>(Send(new LedgerCommands.RegisterHost(new HostId("h1"), 4, 8192, "qemu")));

        Assert.Equal(vm.Id, Assert.Single(assignments.Assignments).VmId);
    }
}
