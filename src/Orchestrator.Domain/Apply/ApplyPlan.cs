using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Apply;

/// <summary>One VM as an apply file wants it: its spec, and whether it should be running.</summary>
public sealed record DesiredVm(VmSpec Spec, DesiredState State = DesiredState.Running)
{
    public string Name => Spec.Name;
}

public enum ApplyAction
{
    Create,
    Update,
    Replace,
    Delete,
    Unchanged,
}

/// <summary>What apply does to one VM; <see cref="Detail"/> says it for people.</summary>
public abstract record ApplyStep(string Vm)
{
    public abstract ApplyAction Action { get; }

    public abstract string Detail { get; }

    public bool IsChange => Action != ApplyAction.Unchanged;

    /// <summary>A VM the tenant does not have: create it, then stop it when the file wants it stopped.</summary>
    public sealed record Create(DesiredVm Desired) : ApplyStep(Desired.Name)
    {
        public override ApplyAction Action => ApplyAction.Create;

        public override string Detail => ApplyDescriptions.Summary(Desired);
    }

    /// <summary>
    /// Changes made in place, each in <see cref="What"/>. Null parts stay as they are: <see cref="Resources"/> to set,
    /// <see cref="Labels"/> to replace, <see cref="State"/> to stop or start.
    /// </summary>
    public sealed record Update(
        string Vm,
        IReadOnlyList<string> What,
        VmResources? Resources = null,
        IReadOnlyDictionary<string, string>? Labels = null,
        DesiredState? State = null) : ApplyStep(Vm)
    {
        public override ApplyAction Action => ApplyAction.Update;

        public override string Detail => string.Join("; ", What);
    }

    /// <summary>
    /// What the VM is made of changed (vCPUs, memory, image or restart policy), which no command changes in place:
    /// delete it, then create it again from <see cref="Desired"/> (a new VM id). <see cref="Why"/> lists the differences.
    /// </summary>
    public sealed record Replace(DesiredVm Desired, IReadOnlyList<string> Why) : ApplyStep(Desired.Name)
    {
        public override ApplyAction Action => ApplyAction.Replace;

        public override string Detail => string.Join("; ", Why) + " (delete, then create)";
    }

    /// <summary>A VM the file no longer has, deleted because the caller asked to prune.</summary>
    public sealed record Delete(string Vm) : ApplyStep(Vm)
    {
        public override ApplyAction Action => ApplyAction.Delete;

        public override string Detail => "not in the file";
    }

    /// <summary>Nothing to do; <see cref="Note"/> says why when it is worth saying.</summary>
    public sealed record Unchanged(string Vm, string Note = "") : ApplyStep(Vm)
    {
        public override ApplyAction Action => ApplyAction.Unchanged;

        public override string Detail => Note;
    }
}

/// <summary>The steps that take a tenant's VMs to what a file asks for, one per VM, in name order.</summary>
public sealed record ApplyPlan(IReadOnlyList<ApplyStep> Steps)
{
    /// <summary>How many steps change something.</summary>
    public int Changed => Steps.Count(s => s.IsChange);

    public int Count(ApplyAction action) => Steps.Count(s => s.Action == action);
}
