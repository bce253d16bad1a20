// The host's decisions about its VMs, without actors: scenarios for each rule, and properties over random histories
// (never two live VM actors for one VM, never a stale epoch started, nothing started once the host is expelled).
using System.Collections.Immutable;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Orchestrator.Domain.Hosts;
using Orchestrator.Domain.Ledger;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class HostPlanTests
{
    private static readonly HostPlanRules Rules = new(new HashSet<string> { "demo" }, [0, 1, 2, 3], RestartBackoff.Default);
    private static readonly VmId Web = new(Guid.Parse("00000000-0000-0000-0000-00000000000a"));

    private static VmAssignment Assignment(VmId? id = null, long epoch = 1, DesiredState desired = DesiredState.Running, bool deleting = false,
        VmStatus status = VmStatus.Starting, string image = "demo", RestartPolicy policy = RestartPolicy.OnFailure, VmResources? resources = null) =>
        new(id ?? Web, "web", 1, 256, image, policy, new Epoch(epoch), desired, deleting, status, new TenantId("acme"), resources);

    private static (HostPlan Plan, IReadOnlyList<HostEffect> Effects) Run(HostPlan plan, params HostInput[] inputs)
    {
        var all = new List<HostEffect>();
        foreach (var input in inputs)
        {
            (plan, var effects) = plan.Decide(input);
            all.AddRange(effects);
        }

        return (plan, all);
    }

    private static HostPlan Started(params HostInput[] inputs) =>
        Run(HostPlan.Empty(Rules), [new HostInput.Discovered([]), new HostInput.Assignments([]), .. inputs]).Plan;

    [Fact]
    public void A_vm_assigned_here_starts_once_and_the_same_assignment_again_changes_nothing()
    {
        var (plan, effects) = Run(Started(), new HostInput.Assigned(Assignment()));
        var (_, again) = Run(plan, new HostInput.Assigned(Assignment()));

        var start = Assert.Single(effects.OfType<HostEffect.StartVm>());
        Assert.Equal((new Epoch(1), null, 1), (start.Assignment.Epoch, start.Adopt, start.Incarnation));
        Assert.True(plan.Slots[Web].Running);
        Assert.Empty(again);
    }

    [Fact]
    public void A_process_found_at_start_is_adopted_at_the_ledgers_epoch_and_killed_at_an_older_one()
    {
        var other = new VmId(Guid.Parse("00000000-0000-0000-0000-00000000000b"));
        var found = new HostInput.Discovered([new FoundVm(Web, new Epoch(2), 4242), new FoundVm(other, new Epoch(1), 4343)]);

        var (_, effects) = Run(HostPlan.Empty(Rules), found,
            new HostInput.Assignments([Assignment(epoch: 2), Assignment(other, epoch: 3)]));

        var starts = effects.OfType<HostEffect.StartVm>().ToList();
        Assert.Equal(4242, starts.Single(s => s.Assignment.VmId == Web).Adopt?.Pid);
        Assert.Null(starts.Single(s => s.Assignment.VmId == other).Adopt);
        var kill = Assert.Single(effects.OfType<HostEffect.KillFound>());
        Assert.Equal((4343, "epoch 1 is older than the ledger's 3"), (kill.Vm.Pid, kill.Why));
        // The stale copy dies before its successor starts.
        Assert.True(effects.ToList().IndexOf(kill) < effects.ToList().IndexOf(starts.Single(s => s.Assignment.VmId == other)));
    }

    [Fact]
    public void Processes_the_ledger_does_not_assign_here_are_killed_after_the_first_assignments_and_cgroups_swept_once()
    {
        var (plan, effects) = Run(HostPlan.Empty(Rules), new HostInput.Discovered([new FoundVm(Web, new Epoch(1), 4242)]),
            new HostInput.Assignments([]));
        var (_, later) = Run(plan, new HostInput.Assignments([]));

        Assert.Equal("not assigned to this host by the ledger", Assert.Single(effects.OfType<HostEffect.KillFound>()).Why);
        Assert.Single(effects.OfType<HostEffect.SweepCgroups>());
        Assert.Null(plan.Found);
        Assert.Empty(later);
    }

    [Fact]
    public void A_crash_restarts_after_its_backoff_and_only_with_the_ledgers_permission()
    {
        var plan = Started(new HostInput.Assigned(Assignment()));

        var (afterCrash, crashed) = Run(plan, new HostInput.Exited(Web, ExitKind.Crash, "qemu killed", TimeSpan.FromSeconds(3)),
            new HostInput.ActorStopped(Web));
        var (asking, asked) = Run(afterCrash, new HostInput.RestartDue(Web, new Epoch(1)));
        var (_, restarted) = Run(asking, new HostInput.Permission(Web, new Epoch(1), true, null));

        var report = Assert.Single(crashed.OfType<HostEffect.Report>());
        Assert.Equal((VmStatus.Restarting, "qemu killed", (int?)1), (report.Status, report.Reason, report.RestartAttempt));
        Assert.Equal(RestartBackoff.Default.Initial, Assert.Single(crashed.OfType<HostEffect.RestartLater>()).Delay);
        Assert.Empty(crashed.OfType<HostEffect.StartVm>());
        Assert.Equal(new HostEffect.AskPermission(Web, new Epoch(1)), Assert.Single(asked));
        Assert.Equal(2, Assert.Single(restarted.OfType<HostEffect.StartVm>()).Incarnation);
    }

    [Fact]
    public void A_refused_permission_leaves_the_vm_down_and_says_why()
    {
        var plan = Started(new HostInput.Assigned(Assignment()), new HostInput.Exited(Web, ExitKind.Crash, "x", TimeSpan.Zero),
            new HostInput.ActorStopped(Web), new HostInput.RestartDue(Web, new Epoch(1)));

        var (after, effects) = Run(plan, new HostInput.Permission(Web, new Epoch(1), false, "re-placed on h2 under epoch 2"));

        Assert.Empty(effects.OfType<HostEffect.StartVm>());
        Assert.Contains(effects.OfType<HostEffect.Note>(), n => n.Message.EndsWith("not restarted here: re-placed on h2 under epoch 2"));
        Assert.False(after.Slots[Web].Running);
    }

    [Fact]
    public void Without_a_majority_a_due_restart_waits_and_asks_again_later()
    {
        var plan = Started(new HostInput.Assigned(Assignment()), new HostInput.Exited(Web, ExitKind.Crash, "x", TimeSpan.Zero),
            new HostInput.ActorStopped(Web), new HostInput.Majority(false));

        var (_, effects) = Run(plan, new HostInput.RestartDue(Web, new Epoch(1)));

        Assert.Equal(new HostEffect.RestartLater(Web, new Epoch(1), HostPlan.RetryWithoutMajority), Assert.Single(effects));
    }

    [Fact]
    public void A_new_epoch_kills_the_running_copy_and_starts_the_new_one_once_the_old_actor_is_gone()
    {
        var plan = Started(new HostInput.Assigned(Assignment()));

        var (moved, kill) = Run(plan, new HostInput.Assigned(Assignment(epoch: 2)));
        var (_, start) = Run(moved, new HostInput.Exited(Web, ExitKind.Requested, "killed", TimeSpan.Zero), new HostInput.ActorStopped(Web));

        Assert.Equal(new HostEffect.KillVm(Web), Assert.Single(kill));
        Assert.Equal(new Epoch(2), Assert.Single(start.OfType<HostEffect.StartVm>()).Assignment.Epoch);
    }

    [Fact]
    public void A_revoked_lease_kills_every_running_vm_and_nothing_starts_after()
    {
        var plan = Started(new HostInput.Assigned(Assignment()));

        var (expelled, killed) = Run(plan, HostInput.LeaseRevoked.Instance);
        var (_, after) = Run(expelled, new HostInput.Exited(Web, ExitKind.Crash, "killed", TimeSpan.Zero), new HostInput.ActorStopped(Web),
            new HostInput.Assigned(Assignment(epoch: 2)));

        Assert.Equal(new HostEffect.KillVm(Web), Assert.Single(killed));
        Assert.Empty(after.OfType<HostEffect.StartVm>());
    }

    [Fact]
    public void Deleting_a_running_vm_kills_it_then_confirms_once_its_actor_is_gone()
    {
        var plan = Started(new HostInput.Assigned(Assignment()));

        var (deleting, kill) = Run(plan, new HostInput.Assigned(Assignment(deleting: true, status: VmStatus.Deleting, desired: DesiredState.Stopped)));
        var (gone, confirm) = Run(deleting, new HostInput.Exited(Web, ExitKind.Requested, "killed", TimeSpan.Zero), new HostInput.ActorStopped(Web));

        Assert.Equal(new HostEffect.KillVm(Web), Assert.Single(kill));
        Assert.Contains(new HostEffect.FinishDelete(Web), confirm);
        Assert.Empty(confirm.OfType<HostEffect.Report>());
        Assert.False(gone.Slots.ContainsKey(Web));
    }

    [Fact]
    public void A_vm_this_host_cannot_run_fails_saying_why_and_starts_nothing()
    {
        var (_, effects) = Run(Started(), new HostInput.Assigned(Assignment(image: "windows")),
            new HostInput.Assigned(Assignment(new VmId(Guid.NewGuid()), resources: new VmResources(Cpuset: "7"))));

        Assert.Empty(effects.OfType<HostEffect.StartVm>());
        Assert.Equal(
            ["image 'windows' is not in this host's catalog", "cpuset 7 names CPUs this host does not offer (7; it offers 0-3)"],
            effects.OfType<HostEffect.Report>().Select(r => r.Reason));
    }

    [Fact]
    public void A_stop_stops_the_running_vm_and_settles_as_stopped_when_it_exits()
    {
        var plan = Started(new HostInput.Assigned(Assignment()));

        var (stopping, stop) = Run(plan, new HostInput.Assigned(Assignment(desired: DesiredState.Stopped, status: VmStatus.Stopping)));
        var (_, exited) = Run(stopping, new HostInput.Exited(Web, ExitKind.Requested, "stopped", TimeSpan.Zero), new HostInput.ActorStopped(Web));

        Assert.Equal(new HostEffect.StopVm(Web), Assert.Single(stop));
        Assert.Equal((VmStatus.Stopped, "stopped on request"), exited.OfType<HostEffect.Report>().Select(r => (r.Status, r.Reason)).First());
        Assert.Empty(exited.OfType<HostEffect.StartVm>());
    }

    // Properties over random histories. Each step is read against the world the plan lives in: VM inputs come only
    // for VMs whose actor is live, as the agent guarantees (it drops messages from actors that are not the live one).

    private sealed record Step(int Kind, int A, int B);

    private static readonly Arbitrary<List<Step>> Histories =
        Gen.ListOf(Gen.Choose(0, 11).Zip(Gen.Choose(0, 1000)).Zip(Gen.Choose(0, 1000)).Select(t => new Step(t.Item1.Item1, t.Item1.Item2, t.Item2)))
            .Select(l => l.ToList())
            .ToArbitrary();

    private static readonly VmId[] Ids = [.. Enumerable.Range(1, 3).Select(i => new VmId(new Guid(i, 0, 0, new byte[8])))];

    /// <summary>Replays a history; returns the first broken rule, or null.</summary>
    private static string? FirstViolation(List<Step> history)
    {
        var found = Ids.Take(2).Select((id, i) => new FoundVm(id, new Epoch(1 + i), 100 + i)).ToList();
        var plan = HostPlan.Empty(Rules);
        var live = new HashSet<VmId>();
        var newestEpoch = Ids.ToDictionary(id => id, _ => 0L);
        var expelled = false;
        var inputs = new List<HostInput> { new HostInput.Discovered(found) };
        // A delete is the ledger's last word on a VM: it never assigns that VM again.
        var deleted = new HashSet<VmId>();
        foreach (var step in history)
        {
            var vm = Ids[step.A % Ids.Length];
            var epoch = 1 + step.B % 3;
            if (deleted.Contains(vm) && step.Kind <= 4)
            {
                continue;
            }

            if (step.Kind == 3)
            {
                deleted.Add(vm);
            }

            HostInput? input = step.Kind switch
            {
                0 or 1 => new HostInput.Assigned(Assignment(vm, epoch, policy: step.B % 2 == 0 ? RestartPolicy.Always : RestartPolicy.OnFailure)),
                2 => new HostInput.Assigned(Assignment(vm, epoch, DesiredState.Stopped, status: VmStatus.Stopping)),
                3 => new HostInput.Assigned(Assignment(vm, epoch, DesiredState.Stopped, deleting: true, status: VmStatus.Deleting)),
                4 => new HostInput.Assignments(Ids.Where((id, i) => (step.B >> i) % 2 == 1 && !deleted.Contains(id)).Select(id => Assignment(id, epoch)).ToList()),
                5 when live.Contains(vm) => new HostInput.Exited(vm, (ExitKind)(step.B % 3), "exit", TimeSpan.FromSeconds(step.B % 90)),
                6 when live.Contains(vm) => new HostInput.StartFailed(vm, new Epoch(epoch), "cannot start"),
                7 when live.Contains(vm) => new HostInput.ActorStopped(vm),
                8 => new HostInput.RestartDue(vm, new Epoch(epoch)),
                9 => new HostInput.Permission(vm, new Epoch(epoch), step.B % 4 != 0, "moved"),
                10 => new HostInput.Majority(step.B % 3 != 0),
                11 when step.B % 10 == 0 => step.B % 20 == 0 ? HostInput.LeaseRevoked.Instance : HostInput.Expelled.Instance,
                _ => null,
            };
            if (input is not null)
            {
                inputs.Add(input);
            }
        }

        foreach (var input in inputs)
        {
            if (input is HostInput.Assigned a)
            {
                newestEpoch[a.Assignment.VmId] = Math.Max(newestEpoch[a.Assignment.VmId], a.Assignment.Epoch.Value);
            }
            else if (input is HostInput.Assignments all)
            {
                foreach (var x in all.All)
                {
                    newestEpoch[x.VmId] = Math.Max(newestEpoch[x.VmId], x.Epoch.Value);
                }
            }
            else if (input is HostInput.ActorStopped stopped)
            {
                live.Remove(stopped.VmId);
            }

            expelled |= input is HostInput.Expelled or HostInput.LeaseRevoked;
            (plan, var effects) = plan.Decide(input);
            foreach (var effect in effects)
            {
                switch (effect)
                {
                    case HostEffect.StartVm start when !live.Add(start.Assignment.VmId):
                        return $"two live actors for {start.Assignment.VmId} after {input}";
                    case HostEffect.StartVm start when start.Assignment.Epoch.Value != newestEpoch[start.Assignment.VmId]:
                        return $"started {start.Assignment.VmId} at stale epoch {start.Assignment.Epoch} (newest {newestEpoch[start.Assignment.VmId]})";
                    case HostEffect.StartVm { Adopt: { } adopt } start when adopt.Epoch != start.Assignment.Epoch:
                        return $"adopted a process of epoch {adopt.Epoch} for epoch {start.Assignment.Epoch}";
                    case HostEffect.StartVm when expelled:
                        return $"started a VM after the host was expelled ({input})";
                    case HostEffect.KillVm kill when !live.Contains(kill.VmId):
                        return $"killed {kill.VmId}, which has no live actor";
                }
            }

            if (plan.Slots.Values.Any(s => s.Running != live.Contains(s.Assignment.VmId)))
            {
                return $"the plan's running slots differ from the live actors after {input}";
            }
        }

        return null;
    }

    [Property(MaxTest = 500)]
    public Property Never_two_live_vm_actors_for_one_vm_nor_a_stale_epoch_started_nor_a_start_after_expulsion() =>
        Prop.ForAll(Histories, history => FirstViolation(history) is not { } violation ? true.ToProperty() : false.Label(violation));

    [Fact]
    public void A_long_random_history_breaks_no_rule()
    {
        var random = new Random(7);
        var history = Enumerable.Range(0, 20_000).Select(_ => new Step(random.Next(12), random.Next(1000), random.Next(1000))).ToList();
        Assert.Null(FirstViolation(history));
    }
}
