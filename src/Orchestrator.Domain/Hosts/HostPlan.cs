// The host's decisions about its VMs, apart from the actors that carry them out: which VM to start, adopt, stop, kill
// or restart, when to ask the ledger for permission, and what to report. Pure: the host agent feeds it inputs and
// performs the effects it returns, so the rules are tested without Akka, processes or time.
using System.Collections.Immutable;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Hosts;

/// <summary>A VM process found on the host at start (from an earlier run of the node).</summary>
public sealed record FoundVm(VmId VmId, Epoch Epoch, int Pid);

/// <summary>What the plan needs to know of its host: the images it can boot, the CPUs it offers, its restart backoff.</summary>
public sealed record HostPlanRules(IReadOnlySet<string> Images, IReadOnlyList<int> HostCpus, RestartBackoff Backoff);

/// <summary>
/// One VM assigned here. <see cref="Running"/>: a VM actor of <see cref="Incarnation"/> lives for it (starting, running or
/// stopping); <see cref="RestartPending"/>: waiting out a backoff; <see cref="AwaitingPermission"/>: asked the ledger
/// whether it may still start it; <see cref="ExitHandled"/>: the live actor already said how its process ended.
/// </summary>
public sealed record HostSlot(
    VmAssignment Assignment,
    int Incarnation = 0,
    bool Running = false,
    int Attempts = 0,
    bool RestartPending = false,
    bool AwaitingPermission = false,
    bool ExitHandled = false);

/// <summary>What happens to the host, as the agent tells its plan. VM inputs come only from the VM's live actor.</summary>
public abstract record HostInput
{
    private HostInput() { }

    /// <summary>The VM processes found at start; they wait for the first assignments to say what becomes of them.</summary>
    public sealed record Discovered(IReadOnlyList<FoundVm> Vms) : HostInput;

    /// <summary>Everything the ledger assigns here (after a registration): converge each, then deal with what is left.</summary>
    public sealed record Assignments(IReadOnlyList<VmAssignment> All) : HostInput;

    /// <summary>The ledger's current view of one VM on this host.</summary>
    public sealed record Assigned(VmAssignment Assignment) : HostInput;

    public sealed record Exited(VmId VmId, ExitKind Kind, string Reason, TimeSpan Uptime) : HostInput;

    public sealed record StartFailed(VmId VmId, Epoch Epoch, string Reason) : HostInput;

    /// <summary>The VM's actor is gone (after its process, or because it failed).</summary>
    public sealed record ActorStopped(VmId VmId) : HostInput;

    public sealed record Permission(VmId VmId, Epoch Epoch, bool Granted, string? Reason) : HostInput;

    public sealed record PermissionTimedOut(VmId VmId, Epoch Epoch) : HostInput;

    public sealed record RestartDue(VmId VmId, Epoch Epoch) : HostInput;

    /// <summary>Whether this host sees a majority of the cluster: without one it starts nothing on its own.</summary>
    public sealed record Majority(bool Sees) : HostInput;

    /// <summary>Downed or removed by the cluster: this incarnation never starts a VM again.</summary>
    public sealed record Expelled : HostInput
    {
        public static readonly Expelled Instance = new();
    }

    /// <summary>The host's lease was revoked (declared lost and its VMs moved): expelled, and every copy here dies now.</summary>
    public sealed record LeaseRevoked : HostInput
    {
        public static readonly LeaseRevoked Instance = new();
    }
}

/// <summary>What the agent must do, in order, after a decision.</summary>
public abstract record HostEffect
{
    private HostEffect() { }

    /// <summary>Start a VM actor for the assignment, adopting <paramref name="Adopt"/>'s process when given.</summary>
    public sealed record StartVm(VmAssignment Assignment, FoundVm? Adopt, int Incarnation) : HostEffect;

    /// <summary>Tell the VM's live actor to kill its process.</summary>
    public sealed record KillVm(VmId VmId) : HostEffect;

    /// <summary>Tell the VM's live actor to stop its guest gracefully.</summary>
    public sealed record StopVm(VmId VmId) : HostEffect;

    /// <summary>Kill a process found at start that must not run.</summary>
    public sealed record KillFound(FoundVm Vm, string Why) : HostEffect;

    public sealed record Report(VmId VmId, Epoch Epoch, VmStatus Status, string Reason, int? RestartAttempt = null) : HostEffect;

    /// <summary>Ask the ledger whether the VM may start here at this epoch; answered by a Permission, or timed out.</summary>
    public sealed record AskPermission(VmId VmId, Epoch Epoch) : HostEffect;

    public sealed record CancelPermissionTimeout(VmId VmId) : HostEffect;

    /// <summary>Feed a RestartDue after <paramref name="Delay"/>.</summary>
    public sealed record RestartLater(VmId VmId, Epoch Epoch, TimeSpan Delay) : HostEffect;

    /// <summary>The VM is gone from this host: remove what the driver kept for it and confirm the delete to the ledger.</summary>
    public sealed record FinishDelete(VmId VmId) : HostEffect;

    /// <summary>The running set or its resources changed: recompute every running VM's CPU weight and limits.</summary>
    public sealed record Reenforce : HostEffect
    {
        public static readonly Reenforce Instance = new();
    }

    public sealed record RemoveCgroup(VmId VmId) : HostEffect;

    /// <summary>After the first assignments: remove the cgroups of VMs that do not run here any more.</summary>
    public sealed record SweepCgroups : HostEffect
    {
        public static readonly SweepCgroups Instance = new();
    }

    /// <summary>Something an operator wants in the log.</summary>
    public sealed record Note(string Message) : HostEffect;
}

/// <summary>The host's VMs as its agent sees them, and the rules by which it converges them to what the ledger says.</summary>
public sealed record HostPlan(
    HostPlanRules Rules,
    ImmutableDictionary<VmId, HostSlot> Slots,
    ImmutableDictionary<VmId, FoundVm>? Found = null,
    bool SeesMajority = true,
    bool IsExpelled = false)
{
    /// <summary>How long a host without a majority waits before it asks again to restart a VM.</summary>
    public static readonly TimeSpan RetryWithoutMajority = TimeSpan.FromSeconds(1);

    public static HostPlan Empty(HostPlanRules rules) => new(rules, ImmutableDictionary<VmId, HostSlot>.Empty);

    public IEnumerable<HostSlot> RunningSlots => Slots.Values.Where(s => s.Running);

    public (HostPlan Plan, IReadOnlyList<HostEffect> Effects) Decide(HostInput input)
    {
        var step = new Step(this);
        switch (input)
        {
            case HostInput.Discovered d:
                step.Plan = step.Plan with { Found = d.Vms.ToImmutableDictionary(v => v.VmId) };
                break;
            case HostInput.Assignments a:
                step.Assignments(a.All);
                break;
            case HostInput.Assigned a:
                step.Converge(a.Assignment);
                break;
            case HostInput.Exited e:
                step.Exited(e);
                break;
            case HostInput.StartFailed f:
                step.StartFailed(f);
                break;
            case HostInput.ActorStopped s:
                step.ActorStopped(s.VmId);
                break;
            case HostInput.Permission p:
                step.Permission(p);
                break;
            case HostInput.PermissionTimedOut t:
                if (step.Slot(t.VmId) is { AwaitingPermission: true } waiting && waiting.Assignment.Epoch == t.Epoch)
                {
                    step.AskToStart(waiting); // the scheduler may be moving; ask again
                }

                break;
            case HostInput.RestartDue due:
                if (step.Slot(due.VmId) is { RestartPending: true } pending && pending.Assignment.Epoch == due.Epoch)
                {
                    step.AskToStart(pending);
                }

                break;
            case HostInput.Majority m:
                step.Plan = step.Plan with { SeesMajority = m.Sees };
                break;
            case HostInput.Expelled:
                step.Plan = step.Plan with { IsExpelled = true };
                break;
            case HostInput.LeaseRevoked:
                step.Plan = step.Plan with { IsExpelled = true };
                foreach (var slot in step.Plan.RunningSlots)
                {
                    step.Effects.Add(new HostEffect.KillVm(slot.Assignment.VmId));
                }

                break;
            default:
                throw new ArgumentException($"not a host input: {input.GetType().Name}", nameof(input));
        }

        return (step.Plan, step.Effects);
    }

    /// <summary>One decision in progress: the plan as it changes, and the effects so far.</summary>
    private sealed class Step(HostPlan plan)
    {
        public HostPlan Plan { get; set; } = plan;

        public List<HostEffect> Effects { get; } = [];

        public HostSlot? Slot(VmId vmId) => Plan.Slots.GetValueOrDefault(vmId);

        private void Set(HostSlot slot) => Plan = Plan with { Slots = Plan.Slots.SetItem(slot.Assignment.VmId, slot) };

        public void Assignments(IReadOnlyList<VmAssignment> all)
        {
            foreach (var assignment in all)
            {
                Converge(assignment);
            }

            if (Plan.Found is { } leftovers)
            {
                // The ledger assigns none of these here (or no longer at that epoch): they must not run.
                foreach (var vm in leftovers.Values.OrderBy(v => v.VmId.Value))
                {
                    Effects.Add(new HostEffect.KillFound(vm, "not assigned to this host by the ledger"));
                }

                // The first assignments after a start: cgroups of VMs that run here no more are left from the earlier run.
                Effects.Add(HostEffect.SweepCgroups.Instance);
                Plan = Plan with { Found = null };
            }
        }

        /// <summary>Brings one VM on this host to what the ledger says; idempotent.</summary>
        public void Converge(VmAssignment assignment)
        {
            var slot = Slot(assignment.VmId) ?? new HostSlot(assignment);
            if (assignment.Epoch < slot.Assignment.Epoch)
            {
                return; // an old message overtaken by a newer placement
            }

            var epochMoved = assignment.Epoch > slot.Assignment.Epoch;
            var resourcesMoved = assignment.EffectiveResources != slot.Assignment.EffectiveResources || assignment.Pool != slot.Assignment.Pool;
            slot = slot with { Assignment = assignment, Attempts = epochMoved ? 0 : slot.Attempts };
            Set(slot);
            if (resourcesMoved)
            {
                Effects.Add(HostEffect.Reenforce.Instance);
            }

            if (slot.Running)
            {
                if (assignment.Deleting || epochMoved)
                {
                    Effects.Add(new HostEffect.KillVm(assignment.VmId));
                }
                else if (!assignment.ShouldRun)
                {
                    Effects.Add(new HostEffect.StopVm(assignment.VmId));
                }

                return; // the rest happens when the actor is gone
            }

            var found = TakeFound(assignment.VmId);
            if (assignment.Deleting)
            {
                if (found is not null)
                {
                    Effects.Add(new HostEffect.KillFound(found, "deleted"));
                }

                Plan = Plan with { Slots = Plan.Slots.Remove(assignment.VmId) };
                Effects.Add(new HostEffect.FinishDelete(assignment.VmId));
                return;
            }

            if (!assignment.ShouldRun)
            {
                if (found is not null)
                {
                    Effects.Add(new HostEffect.KillFound(found, "the ledger wants it stopped"));
                }

                if (assignment.Status == VmStatus.Stopping)
                {
                    Report(assignment, VmStatus.Stopped, "stopped on request");
                }

                return;
            }

            if (slot.RestartPending || slot.AwaitingPermission || Plan.IsExpelled)
            {
                return; // waits out its backoff, then asks the scheduler; or this host may start nothing
            }

            if (found is not null && found.Epoch != assignment.Epoch)
            {
                Effects.Add(new HostEffect.KillFound(found, $"epoch {found.Epoch} is older than the ledger's {assignment.Epoch}"));
                found = null;
            }

            Start(slot, found);
        }

        public void Exited(HostInput.Exited exited)
        {
            if (Slot(exited.VmId) is not { Running: true } slot)
            {
                return;
            }

            slot = slot with { ExitHandled = true };
            Set(slot);
            AfterExit(slot, exited.Kind, exited.Reason, exited.Uptime);
        }

        public void StartFailed(HostInput.StartFailed failed)
        {
            if (Slot(failed.VmId) is not { Running: true } slot)
            {
                return;
            }

            slot = slot with { ExitHandled = true };
            Set(slot);
            var assignment = slot.Assignment;
            if (assignment.Deleting || !assignment.ShouldRun || assignment.Epoch != failed.Epoch)
            {
                AfterExit(slot, ExitKind.Requested, failed.Reason, TimeSpan.Zero);
                return;
            }

            // A start that fails (binary missing, image unreadable, disk full) would fail again: give up and say why.
            Report(assignment, VmStatus.Failed, failed.Reason);
            Set(slot with { Assignment = assignment with { Status = VmStatus.Failed } });
        }

        public void ActorStopped(VmId vmId)
        {
            if (Slot(vmId) is not { Running: true } slot)
            {
                return;
            }

            slot = slot with { Running = false };
            Set(slot);
            Effects.Add(new HostEffect.RemoveCgroup(vmId));
            Effects.Add(HostEffect.Reenforce.Instance); // the others' weights without it
            if (!slot.ExitHandled)
            {
                AfterExit(slot, ExitKind.Crash, "the VM's supervisor failed", TimeSpan.Zero);
            }

            if (Slot(vmId) is { RestartPending: false } after)
            {
                Converge(after.Assignment);
            }
        }

        public void Permission(HostInput.Permission permission)
        {
            if (Slot(permission.VmId) is not { AwaitingPermission: true } slot || slot.Assignment.Epoch != permission.Epoch)
            {
                return;
            }

            slot = slot with { AwaitingPermission = false, RestartPending = false };
            Set(slot);
            Effects.Add(new HostEffect.CancelPermissionTimeout(permission.VmId));
            if (!permission.Granted)
            {
                Effects.Add(new HostEffect.Note($"VM {slot.Assignment.Name} ({permission.VmId}) not restarted here: {permission.Reason}"));
                return;
            }

            if (!slot.Running && slot.Assignment.ShouldRun && !Plan.IsExpelled)
            {
                Start(slot, null);
            }
        }

        /// <summary>Before restarting a VM on its own, the host asks the ledger whether it still may (same host, same epoch).</summary>
        public void AskToStart(HostSlot slot)
        {
            var assignment = slot.Assignment;
            if (!Plan.SeesMajority || Plan.IsExpelled)
            {
                Effects.Add(new HostEffect.RestartLater(assignment.VmId, assignment.Epoch, RetryWithoutMajority));
                return;
            }

            Set(slot with { AwaitingPermission = true });
            Effects.Add(new HostEffect.AskPermission(assignment.VmId, assignment.Epoch));
        }

        /// <summary>Decides what follows a process exit: finish a delete, settle a stop, or restart per policy.</summary>
        private void AfterExit(HostSlot slot, ExitKind kind, string reason, TimeSpan uptime)
        {
            var assignment = slot.Assignment;
            if (assignment.Deleting)
            {
                return; // ActorStopped follows, and converging finishes the delete
            }

            if (!assignment.ShouldRun)
            {
                Report(assignment, VmStatus.Stopped, kind == ExitKind.Requested ? "stopped on request" : reason);
                Set(slot with { Assignment = assignment with { Status = VmStatus.Stopped } });
                return;
            }

            if (kind == ExitKind.Requested)
            {
                return; // stopped to be started again (a start after a stop, or a new epoch): converging starts it
            }

            var attempts = Plan.Rules.Backoff.AttemptsAfterUptime(slot.Attempts, uptime);
            switch (Plan.Rules.Backoff.Decide(assignment.RestartPolicy, kind, attempts, reason))
            {
                case RestartDecision.RestartAfter restart:
                    Effects.Add(new HostEffect.Note(
                        $"VM {assignment.Name} ({assignment.VmId}): {reason}; restart {restart.Attempt} in {restart.Delay.TotalMilliseconds} ms"));
                    Report(assignment, VmStatus.Restarting, reason, restart.Attempt);
                    Set(slot with { Attempts = restart.Attempt, RestartPending = true, Assignment = assignment with { Status = VmStatus.Restarting } });
                    Effects.Add(new HostEffect.RestartLater(assignment.VmId, assignment.Epoch, restart.Delay));
                    break;
                case RestartDecision.StayDown down:
                    Report(assignment, down.FinalStatus, down.Reason);
                    Set(slot with { Attempts = attempts, Assignment = assignment with { Status = down.FinalStatus } });
                    break;
            }
        }

        /// <summary>Starts a VM actor for the slot, unless this host cannot run it at all (then says why, once).</summary>
        private void Start(HostSlot slot, FoundVm? adopt)
        {
            var assignment = slot.Assignment;
            if (!Plan.Rules.Images.Contains(assignment.BootImage))
            {
                Report(assignment, VmStatus.Failed, $"image '{assignment.BootImage}' is not in this host's catalog");
                return;
            }

            if (assignment.EffectiveResources.Cpuset is { } cpuset && CpuSet.Parse(cpuset).Except(Plan.Rules.HostCpus).ToList() is { Count: > 0 } missing)
            {
                Report(assignment, VmStatus.Failed,
                    $"cpuset {cpuset} names CPUs this host does not offer ({CpuSet.Format(missing)}; it offers {CpuSet.Format(Plan.Rules.HostCpus)})");
                return;
            }

            var started = slot with { Running = true, Incarnation = slot.Incarnation + 1, ExitHandled = false };
            Set(started);
            Effects.Add(new HostEffect.StartVm(assignment, adopt, started.Incarnation));
            Effects.Add(HostEffect.Reenforce.Instance);
        }

        private FoundVm? TakeFound(VmId vmId)
        {
            if (Plan.Found is { } found && found.TryGetValue(vmId, out var vm))
            {
                Plan = Plan with { Found = found.Remove(vmId) };
                return vm;
            }

            return null;
        }

        private void Report(VmAssignment assignment, VmStatus status, string reason, int? restartAttempt = null) =>
            Effects.Add(new HostEffect.Report(assignment.VmId, assignment.Epoch, status, reason, restartAttempt));
    }
}
