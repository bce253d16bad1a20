using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;
using Orchestrator.Domain.Tenants;
using static Orchestrator.Domain.Ledger.LedgerEvents;

namespace Orchestrator.Domain.Tests;

public class LedgerTests
{
    [Fact]
    public void A_created_vm_is_placed_with_a_first_epoch()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var vm = ledger.Create("web1");
        Assert.Equal(new HostId("h1"), vm.Host);
        Assert.Equal(new Epoch(1), vm.Epoch);
        Assert.Equal(VmStatus.Starting, vm.Status);
        Assert.Equal(1, ledger.State.Hosts[new HostId("h1")].AllocatedVcpus);
    }

    [Fact]
    public void An_invalid_spec_is_refused_and_nothing_is_recorded()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var decision = ledger.Send(new LedgerCommands.CreateVm(TenantId.System, new VmSpec("../x", 0, 256, "demo"), VmId.New()));
        Assert.Equal(RefusalKind.Invalid, decision.Refusal?.Kind);
        Assert.Empty(decision.Events);
        Assert.Empty(ledger.State.Vms);
    }

    [Fact]
    public void A_duplicate_name_in_the_same_tenant_is_a_conflict()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        ledger.Create("web1");
        var decision = ledger.Send(new LedgerCommands.CreateVm(TenantId.System, new VmSpec("web1", 1, 256, "demo"), VmId.New()));
        Assert.Equal(RefusalKind.Conflict, decision.Refusal?.Kind);
        Assert.Equal("name", decision.Refusal!.Errors.Single().Field);
        Assert.Single(ledger.State.Vms);
    }

    [Fact]
    public void The_same_name_in_another_tenant_is_another_vm()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var a = ledger.Create("web1", tenant: "a");
        var b = ledger.Create("web1", tenant: "b");
        Assert.NotEqual(a.Id, b.Id);
        Assert.Null(ledger.State.FindVm(new TenantId("c"), "web1"));
    }

    [Fact]
    public void A_vm_that_fits_nowhere_waits_as_pending_and_is_placed_when_a_host_appears()
    {
        var ledger = new LedgerDriver();
        ledger.Host("small", cpus: 1, memoryMiB: 512);
        var vm = ledger.Create("big", vcpus: 2, memoryMiB: 1024);
        Assert.Equal(VmStatus.Pending, vm.Status);
        Assert.Contains("no host has room", vm.Reason);
        Assert.Equal(0, ledger.State.Hosts[new HostId("small")].AllocatedVcpus);

        ledger.Host("large", cpus: 8, memoryMiB: 8192);
        var placed = ledger.State.Vms[vm.Id];
        Assert.Equal(new HostId("large"), placed.Host);
        Assert.Equal(VmStatus.Starting, placed.Status);
    }

    [Fact]
    public void A_vm_that_names_a_driver_runs_only_on_hosts_of_that_driver_and_waits_for_one()
    {
        var ledger = new LedgerDriver();
        ledger.Host("q1", cpus: 32, memoryMiB: 65536);
        var native = ledger.Create("native", driver: "kvm");
        Assert.Equal(VmStatus.Pending, native.Status);
        Assert.Equal("no up host runs the kvm driver (1 hosts up, running qemu)", native.Reason);

        ledger.Host("k1", cpus: 2, memoryMiB: 1024, driver: "kvm");
        Assert.Equal(new HostId("k1"), ledger.State.Vms[native.Id].Host);
        var any = ledger.Create("any");
        Assert.Equal(new HostId("q1"), any.Host); // the emptier host: no driver named, either will do
        var emulated = ledger.Create("emulated", driver: "qemu");
        Assert.Equal(new HostId("q1"), emulated.Host);
        var big = ledger.Create("big", vcpus: 8, memoryMiB: 2048, driver: "kvm");
        Assert.Equal(VmStatus.Pending, big.Status);
        Assert.Contains("on the 1 up host(s) that run the kvm driver", big.Reason);

        // Losing the only kvm host leaves its VM waiting, although the qemu host has room to spare.
        ledger.Send(new LedgerCommands.LoseHost(new HostId("k1")));
        var lost = ledger.State.Vms[native.Id];
        Assert.Equal(VmStatus.Pending, lost.Status);
        Assert.Contains("kvm driver", lost.Reason);

        ledger.Host("k2", cpus: 16, memoryMiB: 16384, driver: "kvm");
        Assert.Equal(new HostId("k2"), ledger.State.Vms[native.Id].Host);
        Assert.Equal(new HostId("k2"), ledger.State.Vms[big.Id].Host);
    }

    [Fact]
    public void A_host_back_under_another_driver_gives_up_the_vms_that_named_the_old_one()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var emulated = ledger.Create("emulated", driver: "qemu");
        var any = ledger.Create("any");
        Assert.Equal(new HostId("h1"), emulated.Host);

        ledger.Host("h1", driver: "kvm");

        var moved = ledger.State.Vms[emulated.Id];
        Assert.Equal(VmStatus.Pending, moved.Status);
        Assert.Null(moved.Host);
        Assert.Equal("no up host runs the qemu driver (1 hosts up, running kvm)", moved.Reason);
        Assert.Equal(any with { }, ledger.State.Vms[any.Id]);
        Assert.Equal(1, ledger.State.Hosts[new HostId("h1")].AllocatedVcpus);

        ledger.Host("h2");
        Assert.Equal(new HostId("h2"), ledger.State.Vms[emulated.Id].Host);
        Assert.Equal(emulated.Epoch.Next(), ledger.State.Vms[emulated.Id].Epoch);
    }

    [Fact]
    public void A_vm_that_asks_for_hardware_acceleration_waits_on_tcg_hosts_saying_why_they_fell_back()
    {
        var ledger = new LedgerDriver();
        var fellBack = new HostAccelerator("tcg", "max", "fell back to TCG: kvm -cpu host: no banner within 5000 ms");
        ledger.Host("t1", cpus: 32, memoryMiB: 65536, accelerator: fellBack);
        var fast = ledger.Create("fast", accelerator: "kvm");
        Assert.Equal(VmStatus.Pending, fast.Status);
        Assert.Equal("no up host has kvm acceleration (1 hosts up: t1 runs tcg (fell back to TCG: kvm -cpu host: no banner within 5000 ms))",
            fast.Reason);
        var any = ledger.Create("any");
        Assert.Equal(new HostId("t1"), any.Host); // asking for nothing, TCG will do

        ledger.Host("k1", cpus: 2, memoryMiB: 1024, accelerator: new HostAccelerator("kvm", "host"));
        Assert.Equal(new HostId("k1"), ledger.State.Vms[fast.Id].Host);
        var big = ledger.Create("big", vcpus: 8, memoryMiB: 2048, accelerator: "kvm");
        Assert.Equal(VmStatus.Pending, big.Status);
        Assert.Contains("on the 1 up host(s) with kvm acceleration", big.Reason);

        // The same host, probed again after a reboot, fell back: the VM that needs KVM leaves it and waits.
        ledger.Host("k1", cpus: 2, memoryMiB: 1024, accelerator: fellBack);
        var moved = ledger.State.Vms[fast.Id];
        Assert.Equal(VmStatus.Pending, moved.Status);
        Assert.True(moved.Epoch > ledger.State.Vms[any.Id].Epoch || moved.Host is null);
        Assert.Contains("no up host has kvm acceleration", moved.Reason);
        Assert.Equal(new HostId("t1"), ledger.State.Vms[any.Id].Host);

        ledger.Host("k2", cpus: 16, memoryMiB: 16384, accelerator: new HostAccelerator("kvm", "EPYC"));
        Assert.Equal(new HostId("k2"), ledger.State.Vms[fast.Id].Host);
        Assert.Equal(new HostId("k2"), ledger.State.Vms[big.Id].Host);
    }

    [Fact]
    public void Deleting_frees_the_room_for_a_pending_vm()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 1, memoryMiB: 1024);
        var first = ledger.Create("first", memoryMiB: 1024);
        var second = ledger.Create("second", memoryMiB: 1024);
        Assert.Equal(VmStatus.Pending, ledger.State.Vms[second.Id].Status);

        ledger.Send(new LedgerCommands.DeleteVm(TenantId.System, "first"));
        Assert.Equal(VmStatus.Deleting, ledger.State.Vms[first.Id].Status);
        Assert.Equal(VmStatus.Pending, ledger.State.Vms[second.Id].Status);

        ledger.Send(new LedgerCommands.ConfirmDeleted(first.Id));
        Assert.False(ledger.State.Vms.ContainsKey(first.Id));
        Assert.Null(ledger.State.FindVm(TenantId.System, "first"));
        Assert.Equal(new HostId("h1"), ledger.State.Vms[second.Id].Host);
    }

    [Fact]
    public void A_vm_that_was_never_placed_is_released_at_once_on_delete()
    {
        var ledger = new LedgerDriver();
        var vm = ledger.Create("lonely");
        ledger.Send(new LedgerCommands.DeleteVm(TenantId.System, "lonely"));
        Assert.False(ledger.State.Vms.ContainsKey(vm.Id));
    }

    [Fact]
    public void A_report_under_an_old_epoch_is_ignored()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var vm = ledger.Create("web1");
        var decision = ledger.Send(new LedgerCommands.ReportVm(vm.Id, Epoch.Zero, VmStatus.Ready, null, 42, null));
        Assert.Empty(decision.Events);
        Assert.Equal(VmStatus.Starting, ledger.State.Vms[vm.Id].Status);
    }

    [Fact]
    public void Reports_move_the_vm_through_running_and_ready()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var vm = ledger.Create("web1");
        ledger.Send(new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Running, null, 42, null));
        Assert.Equal((VmStatus.Running, 42), (ledger.State.Vms[vm.Id].Status, ledger.State.Vms[vm.Id].Pid));
        ledger.Send(new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Ready, null, 42, null));
        Assert.Equal(VmStatus.Ready, ledger.State.Vms[vm.Id].Status);
        Assert.Equal(LedgerDriver.Now, ledger.State.Vms[vm.Id].ReadyAt);
        var repeated = ledger.Send(new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Ready, null, 42, null));
        Assert.Empty(repeated.Events);
    }

    [Fact]
    public void A_failed_vm_can_be_started_again()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var vm = ledger.Create("web1");
        ledger.Send(new LedgerCommands.ReportVm(vm.Id, vm.Epoch, VmStatus.Failed, "qemu missing", null, null));
        var decision = ledger.Send(new LedgerCommands.StartVm(TenantId.System, "web1"));
        Assert.IsType<VmDesiredStateChanged>(Assert.Single(decision.Events));
        Assert.Equal(VmStatus.Starting, ledger.State.Vms[vm.Id].Status);
    }

    [Fact]
    public void Stopping_twice_records_one_change()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        ledger.Create("web1");
        Assert.Single(ledger.Send(new LedgerCommands.StopVm(TenantId.System, "web1")).Events);
        Assert.Empty(ledger.Send(new LedgerCommands.StopVm(TenantId.System, "web1")).Events);
    }

    [Fact]
    public void Commands_about_an_unknown_vm_are_refused_as_not_found()
    {
        var ledger = new LedgerDriver();
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new LedgerCommands.StopVm(TenantId.System, "ghost")).Refusal?.Kind);
        Assert.Equal(RefusalKind.NotFound, ledger.Send(new LedgerCommands.DeleteVm(TenantId.System, "ghost")).Refusal?.Kind);
    }

    [Fact]
    public void Replaying_the_journal_rebuilds_the_same_state()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        ledger.Host("h2");
        for (var i = 0; i < 10; i++)
        {
            ledger.Create($"vm{i}", vcpus: 1 + (i % 3));
        }

        ledger.Send(new LedgerCommands.DeleteVm(TenantId.System, "vm3"));
        var replayed = ledger.Journal.Aggregate(LedgerState.Empty, (state, evt) => state.Apply(evt));
        Assert.Equal(ledger.State.Vms.Values.OrderBy(v => v.Id.Value), replayed.Vms.Values.OrderBy(v => v.Id.Value));
        Assert.Equal(ledger.State.Hosts.Values.OrderBy(h => h.Id.Value), replayed.Hosts.Values.OrderBy(h => h.Id.Value));

        var fromSnapshot = LedgerState.FromRecords(ledger.State.Hosts.Values, ledger.State.Vms.Values);
        Assert.Equal(ledger.State.FindVm(TenantId.System, "vm5"), fromSnapshot.FindVm(TenantId.System, "vm5"));
    }
}

public class FromRecordsTests
{
    [Fact]
    public void A_state_rebuilt_from_its_records_is_the_state_that_was_saved()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1", cpus: 64, memoryMiB: 1 << 20);
        ledger.Host("h2", cpus: 64, memoryMiB: 1 << 20);
        for (var i = 0; i < 300; i++)
        {
            // The same names in several tenants, and sizes that differ, so a mix-up in Names or Usage shows.
            ledger.Create($"vm{i % 100}", vcpus: 1 + (i % 3), memoryMiB: 64 * (1 + (i % 5)), tenant: $"t{i / 100}");
        }

        ledger.Send(new LedgerCommands.DeleteVm(new TenantId("t1"), "vm7"));
        ledger.Send(new LedgerCommands.ConfirmDeleted(ledger.State.FindVm(new TenantId("t1"), "vm7")!.Id));
        var state = ledger.State;

        var rebuilt = LedgerState.FromRecords(state.Hosts.Values, state.Vms.Values, state.Tenants.Values, state.Keys.Values,
            state.Webhooks.Values, state.Rules.Values);

        Assert.Equal(state.Vms.OrderBy(kv => kv.Key.Value), rebuilt.Vms.OrderBy(kv => kv.Key.Value));
        Assert.Equal(AllNames(state), AllNames(rebuilt));
        Assert.Equal(state.Usage.OrderBy(kv => kv.Key.Value), rebuilt.Usage.OrderBy(kv => kv.Key.Value));
        Assert.Equal(state.Hosts.OrderBy(kv => kv.Key.Value), rebuilt.Hosts.OrderBy(kv => kv.Key.Value));
        Assert.Equal(state.Tenants.OrderBy(kv => kv.Key.Value), rebuilt.Tenants.OrderBy(kv => kv.Key.Value));
        Assert.Null(rebuilt.FindVm(new TenantId("t1"), "vm7"));
        // Enumerated in the same order as the state it came from: a snapshot of the rebuilt state lists the same records.
        Assert.Equal(state.Vms.Values, rebuilt.Vms.Values);
    }

    [Fact]
    public void A_vm_twice_in_the_records_is_refused()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var vm = ledger.Create("a");
        var twin = vm with { Spec = vm.Spec with { Name = "b" } };
        Assert.Throws<ArgumentException>(() => LedgerState.FromRecords(ledger.State.Hosts.Values, [vm, twin]));
    }

    /// <summary>Every (tenant, name, VM) the state's names hold, in one order.</summary>
    private static List<(string Tenant, string Name, Guid Vm)> AllNames(LedgerState state) =>
        state.Names.SelectMany(t => t.Value.Select(n => (t.Key.Value, n.Key, n.Value.Value)))
            .OrderBy(n => n.Item1, StringComparer.Ordinal).ThenBy(n => n.Item2, StringComparer.Ordinal).ToList();
}

public class HostLossTests
{
    [Fact]
    public void A_lost_hosts_vms_are_re_placed_on_survivors_under_a_new_epoch()
    {
        var ledger = new LedgerDriver();
        ledger.Host("a");
        var vm = ledger.Create("web1");
        ledger.Host("b");
        Assert.Equal(new HostId("a"), vm.Host);

        ledger.Send(new LedgerCommands.LoseHost(new HostId("a")));
        var moved = ledger.State.Vms[vm.Id];
        Assert.Equal(new HostId("b"), moved.Host);
        Assert.Equal(vm.Epoch.Next(), moved.Epoch);
        Assert.Equal(VmStatus.Starting, moved.Status);
        Assert.Equal(HostState.Down, ledger.State.Hosts[new HostId("a")].State);
        Assert.Equal(0, ledger.State.Hosts[new HostId("a")].AllocatedVcpus);
        Assert.Equal(1, ledger.State.Hosts[new HostId("b")].AllocatedVcpus);
    }

    [Fact]
    public void Vms_that_fit_nowhere_go_pending_and_are_placed_when_the_host_returns()
    {
        var ledger = new LedgerDriver();
        ledger.Host("a", cpus: 1, memoryMiB: 1024);
        var vm = ledger.Create("big", memoryMiB: 1024);
        ledger.Host("b", cpus: 1, memoryMiB: 512);

        ledger.Send(new LedgerCommands.LoseHost(new HostId("a")));
        var pending = ledger.State.Vms[vm.Id];
        Assert.Equal(VmStatus.Pending, pending.Status);
        Assert.Null(pending.Host);
        Assert.Contains("no host has room", pending.Reason);

        ledger.Host("a", cpus: 1, memoryMiB: 1024);
        var back = ledger.State.Vms[vm.Id];
        Assert.Equal(new HostId("a"), back.Host);
        Assert.Equal(new Epoch(2), back.Epoch);
    }

    [Fact]
    public void A_vm_whose_policy_is_never_fails_with_its_host()
    {
        var ledger = new LedgerDriver();
        ledger.Host("a");
        var id = VmId.New();
        ledger.Send(new LedgerCommands.CreateVm(TenantId.System, new VmSpec("once", 1, 256, "demo", RestartPolicy.Never), id));
        ledger.Host("b");
        ledger.Send(new LedgerCommands.LoseHost(new HostId("a")));
        Assert.Equal(VmStatus.Failed, ledger.State.Vms[id].Status);
        Assert.Contains("host a was lost", ledger.State.Vms[id].Reason);
    }

    [Fact]
    public void Losing_a_host_twice_records_it_once()
    {
        var ledger = new LedgerDriver();
        ledger.Host("a");
        Assert.NotEmpty(ledger.Send(new LedgerCommands.LoseHost(new HostId("a"))).Events);
        Assert.Empty(ledger.Send(new LedgerCommands.LoseHost(new HostId("a"))).Events);
    }

    [Fact]
    public void Applying_a_decisions_events_gives_the_state_a_fresh_replay_of_them_gives()
    {
        // Decide applies a create's request to place the VM, and the state keeps that result for the caller's Apply.
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        ledger.Create("web1");
        var before = ledger.State;
        var decision = before.Decide(new LedgerCommands.CreateVm(TenantId.System, new VmSpec("web2", 2, 512, "demo"), VmId.New()), ledger.Rules,
            LedgerDriver.Now);
        var remembered = decision.Events.Aggregate(before, (state, evt) => state.Apply(evt));
        var replayed = ledger.Journal.Concat(decision.Events).Aggregate(LedgerState.Empty, (state, evt) => state.Apply(evt));
        Assert.Equal(replayed.Vms.Values.OrderBy(v => v.Id.Value), remembered.Vms.Values.OrderBy(v => v.Id.Value));
        Assert.Equal(replayed.Hosts.Values, remembered.Hosts.Values);
        Assert.Equal(replayed.Capacity.Hosts(), remembered.Capacity.Hosts());
    }

    [Fact]
    public void A_state_copied_with_a_change_does_not_answer_from_the_state_it_was_copied_from()
    {
        var ledger = new LedgerDriver();
        ledger.Host("h1");
        var state = ledger.State;
        var created = new TenantCreated(new TenantId("acme"), TenantQuota.Unlimited, LedgerDriver.Now);
        _ = state.Apply(created); // remembered on state
        var copy = state with { Hosts = state.Hosts.Remove(new HostId("h1")) };
        var after = copy.Apply(created);
        Assert.Empty(after.Hosts);
        Assert.True(after.Tenants.ContainsKey(new TenantId("acme")));
    }
}
