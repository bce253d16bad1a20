using Orchestrator.Domain.Apply;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class ApplyPlannerTests
{
    private static readonly TenantId Tenant = new("acme");

    private static VmSpec Spec(string name, int vcpus = 1, int memory = 128, string image = "demo", RestartPolicy restart = RestartPolicy.OnFailure,
        VmResources? resources = null, IReadOnlyDictionary<string, string>? labels = null) =>
        new(name, vcpus, memory, image, restart, resources, labels);

    private static VmRecord Record(VmSpec spec, DesiredState desired = DesiredState.Running, VmStatus status = VmStatus.Ready) =>
        new(VmId.New(), Tenant, spec, desired, status, null, new HostId("h1"), new Epoch(1), 42, 0, LedgerDriver.Now, LedgerDriver.Now);

    [Fact]
    public void A_vm_the_tenant_lacks_is_created_with_its_whole_spec()
    {
        var web = Spec("web", vcpus: 2, labels: new Dictionary<string, string> { ["env"] = "dev" });

        var plan = ApplyPlanner.Plan([web], [], prune: false);

        var create = Assert.IsType<ApplyStep.Create>(Assert.Single(plan.Steps));
        Assert.Same(web, create.Desired.Spec);
        Assert.Equal(DesiredState.Running, create.Desired.State);
        Assert.Equal("2 vCPUs, 128 MiB, image demo", create.Detail);
        Assert.Equal(1, plan.Changed);
    }

    [Fact]
    public void The_same_desired_state_is_all_unchanged_labels_compared_by_content()
    {
        var specs = new[]
        {
            Spec("a", labels: new Dictionary<string, string> { ["env"] = "dev", ["tier"] = "web" }),
            Spec("b", resources: new VmResources(CpuShares: 2048, CpuLimitMillicores: 500)),
        };
        var current = new[]
        {
            Record(Spec("a", labels: new SortedDictionary<string, string> { ["tier"] = "web", ["env"] = "dev" })),
            Record(Spec("b", resources: new VmResources(CpuShares: 2048, CpuLimitMillicores: 500))),
        };

        var plan = ApplyPlanner.Plan(specs, current, prune: true);

        Assert.All(plan.Steps, step => Assert.IsType<ApplyStep.Unchanged>(step));
        Assert.Equal(0, plan.Changed);
    }

    [Fact]
    public void Default_resources_given_or_left_out_are_the_same()
    {
        var plan = ApplyPlanner.Plan([Spec("a", resources: VmResources.Default)], [Record(Spec("a"))], prune: false);

        Assert.IsType<ApplyStep.Unchanged>(Assert.Single(plan.Steps));
    }

    [Fact]
    public void Resources_and_labels_change_in_place_and_say_what_changes()
    {
        var current = Record(Spec("a", resources: new VmResources(CpuShares: 1024), labels: new Dictionary<string, string> { ["env"] = "dev", ["old"] = "x" }));
        var wanted = Spec("a", resources: new VmResources(CpuShares: 4096, CpuReservationMillicores: 500),
            labels: new Dictionary<string, string> { ["env"] = "prod", ["tier"] = "web" });

        var plan = ApplyPlanner.Plan([wanted], [current], prune: false);

        var update = Assert.IsType<ApplyStep.Update>(Assert.Single(plan.Steps));
        Assert.Equal(wanted.Resources, update.Resources);
        Assert.Equal(wanted.Labels, update.Labels);
        Assert.Null(update.State);
        Assert.Equal(["cpu-shares 1024 → 4096", "cpu-reservation 0 → 500m", "labels env=dev→prod -old +tier=web"], update.What);
    }

    [Fact]
    public void An_update_touches_only_what_differs()
    {
        var labels = new Dictionary<string, string> { ["env"] = "dev" };
        var plan = ApplyPlanner.Plan([Spec("a", resources: new VmResources(Cpuset: "0-1"), labels: labels)], [Record(Spec("a", labels: labels))], prune: false);

        var update = Assert.IsType<ApplyStep.Update>(Assert.Single(plan.Steps));
        Assert.NotNull(update.Resources);
        Assert.Null(update.Labels);
        Assert.Equal("cpuset none → 0-1", update.Detail);
    }

    [Theory]
    [InlineData(2, 128, "demo", RestartPolicy.OnFailure, "vcpus 1 → 2")]
    [InlineData(1, 256, "demo", RestartPolicy.OnFailure, "memory 128 → 256 MiB")]
    [InlineData(1, 128, "other", RestartPolicy.OnFailure, "image demo → other")]
    [InlineData(1, 128, "demo", RestartPolicy.Always, "restart on-failure → always")]
    public void What_no_command_changes_in_place_is_a_replace_saying_why(int vcpus, int memory, string image, RestartPolicy restart, string why)
    {
        var wanted = Spec("a", vcpus, memory, image, restart, new VmResources(CpuShares: 512));

        var plan = ApplyPlanner.Plan([wanted], [Record(Spec("a"))], prune: false);

        var replace = Assert.IsType<ApplyStep.Replace>(Assert.Single(plan.Steps));
        Assert.Same(wanted, replace.Desired.Spec);
        Assert.Equal([why], replace.Why);
        Assert.Equal(why + " (delete, then create)", replace.Detail);
    }

    [Theory]
    [InlineData(null, "kvm", "driver any → kvm")]
    [InlineData("kvm", "qemu", "driver kvm → qemu")]
    [InlineData("qemu", null, "driver qemu → any")]
    public void A_driver_named_or_dropped_is_a_replace_since_the_vm_may_have_to_move(string? from, string? to, string why)
    {
        var wanted = Spec("a") with { Driver = to };

        var plan = ApplyPlanner.Plan([wanted], [Record(Spec("a") with { Driver = from })], prune: false);

        Assert.Equal([why], Assert.IsType<ApplyStep.Replace>(Assert.Single(plan.Steps)).Why);
        var create = Assert.IsType<ApplyStep.Create>(Assert.Single(ApplyPlanner.Plan([Spec("b") with { Driver = "kvm" }], [], prune: false).Steps));
        Assert.Equal("1 vCPU, 128 MiB, image demo, driver kvm", create.Detail);
    }

    [Fact]
    public void A_changed_hostname_key_or_user_data_is_a_replace_naming_the_user_data_by_digest_only()
    {
        var had = Spec("a") with { Bootstrap = new VmBootstrap("a", ["ssh-ed25519 AAAA k"], "#!/bin/sh\necho secret\n"u8.ToArray()) };
        var wanted = Spec("a") with { Bootstrap = new VmBootstrap("a.example.org", null, "#!/bin/sh\necho other\n"u8.ToArray()) };

        var replace = Assert.IsType<ApplyStep.Replace>(Assert.Single(ApplyPlanner.Plan([wanted], [Record(had)], prune: false).Steps));

        Assert.Equal(3, replace.Why.Count);
        Assert.Equal("hostname a → a.example.org", replace.Why[0]);
        Assert.Equal("ssh-keys 1 → 0 keys", replace.Why[1]);
        Assert.Matches(@"^user-data 22 bytes \(sha256 [0-9a-f]{12}\) → 21 bytes \(sha256 [0-9a-f]{12}\)$", replace.Why[2]);
        Assert.DoesNotContain("secret", replace.Detail);
    }

    [Fact]
    public void The_same_bootstrap_again_or_a_hostname_equal_to_the_name_changes_nothing()
    {
        var boot = new VmBootstrap("a.example.org", ["ssh-ed25519 AAAA k"], [0, 1, 2]);
        var again = new VmBootstrap("a.example.org", ["ssh-ed25519 AAAA k"], [0, 1, 2]);

        var plan = ApplyPlanner.Plan([Spec("a") with { Bootstrap = again }, Spec("b") with { Bootstrap = new VmBootstrap("b") }],
            [Record(Spec("a") with { Bootstrap = boot }), Record(Spec("b"))], prune: false);

        Assert.All(plan.Steps, step => Assert.IsType<ApplyStep.Unchanged>(step));
    }

    [Fact]
    public void Prune_deletes_only_the_vms_the_file_dropped()
    {
        var current = new[] { Record(Spec("keep")), Record(Spec("dropped")), Record(Spec("changed")) };
        var desired = new[] { Spec("keep"), Spec("changed", resources: new VmResources(CpuShares: 2048)), Spec("new") };

        var pruned = ApplyPlanner.Plan(desired, current, prune: true);
        var kept = ApplyPlanner.Plan(desired, current, prune: false);

        Assert.Equal(
            [("changed", ApplyAction.Update), ("dropped", ApplyAction.Delete), ("keep", ApplyAction.Unchanged), ("new", ApplyAction.Create)],
            pruned.Steps.Select(s => (s.Vm, s.Action)));
        Assert.Equal(ApplyAction.Unchanged, kept.Steps.Single(s => s.Vm == "dropped").Action);
        Assert.Contains("not in the file", kept.Steps.Single(s => s.Vm == "dropped").Detail);
        Assert.DoesNotContain(kept.Steps, s => s.Action == ApplyAction.Delete);
    }

    [Fact]
    public void Desired_state_stops_and_starts_and_a_new_vm_can_be_created_stopped()
    {
        var current = new[] { Record(Spec("run")), Record(Spec("halt"), DesiredState.Stopped, VmStatus.Stopped) };
        var desired = new[]
        {
            new DesiredVm(Spec("run"), DesiredState.Stopped),
            new DesiredVm(Spec("halt")),
            new DesiredVm(Spec("fresh"), DesiredState.Stopped),
        };

        var plan = ApplyPlanner.Plan(desired, current, prune: false);

        Assert.Equal(["fresh", "halt", "run"], plan.Steps.Select(s => s.Vm));
        Assert.Equal(DesiredState.Stopped, Assert.IsType<ApplyStep.Create>(plan.Steps[0]).Desired.State);
        Assert.EndsWith(", stopped", plan.Steps[0].Detail);
        Assert.Equal((DesiredState?)DesiredState.Running, Assert.IsType<ApplyStep.Update>(plan.Steps[1]).State);
        Assert.Equal("start", plan.Steps[1].Detail);
        Assert.Equal((DesiredState?)DesiredState.Stopped, Assert.IsType<ApplyStep.Update>(plan.Steps[2]).State);
    }

    [Fact]
    public void A_vm_that_went_down_by_itself_is_not_restarted_but_the_plan_says_so()
    {
        var plan = ApplyPlanner.Plan([Spec("a")], [Record(Spec("a"), status: VmStatus.Failed)], prune: false);

        var unchanged = Assert.IsType<ApplyStep.Unchanged>(Assert.Single(plan.Steps));
        Assert.StartsWith("Failed", unchanged.Detail);
    }

    [Fact]
    public void A_vm_being_deleted_counts_as_gone()
    {
        var deleting = Record(Spec("a"), status: VmStatus.Deleting);

        Assert.IsType<ApplyStep.Create>(Assert.Single(ApplyPlanner.Plan([Spec("a")], [deleting], prune: true).Steps));
        Assert.Empty(ApplyPlanner.Plan(Array.Empty<VmSpec>(), [deleting], prune: true).Steps);
    }

    [Fact]
    public void The_plan_is_ordered_by_name_whatever_the_input_order()
    {
        var names = new[] { "web-10", "db", "web-2", "cache", "a" };
        var current = names.Select(n => Record(Spec(n))).ToList();
        var desired = names.Reverse().Select(n => Spec(n, memory: n.StartsWith('w') ? 256 : 128)).Append(Spec("b")).ToList();

        var forward = ApplyPlanner.Plan(desired, current, prune: true);
        var shuffled = ApplyPlanner.Plan(desired.OrderBy(s => s.Name.Length).ToList(), current.AsEnumerable().Reverse().ToList(), prune: true);

        Assert.Equal(["a", "b", "cache", "db", "web-10", "web-2"], forward.Steps.Select(s => s.Vm));
        Assert.Equal(forward.Steps.Select(s => (s.Vm, s.Action, s.Detail)), shuffled.Steps.Select(s => (s.Vm, s.Action, s.Detail)));
    }

    [Fact]
    public void A_name_desired_twice_is_a_caller_error()
    {
        Assert.Throws<ArgumentException>(() => ApplyPlanner.Plan([Spec("a"), Spec("a", vcpus: 2)], [], prune: false));
    }
}
