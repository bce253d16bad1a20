namespace Orchestrator.Domain.Vms;

/// <summary>The answer to one pause or resume: for whom, what was asked, whether the VM is paused now, or why it failed.</summary>
public sealed record PauseAnswer<TReplyTo>(TReplyTo ReplyTo, bool Wanted, bool Paused, string? Error);

/// <summary>
/// Whether a running VM's guest code is paused, and the one pause or resume under way: who asked, and which vCPUs have
/// still to acknowledge it. A pause is not kept across a restart of the VM; <typeparamref name="TReplyTo"/> is whoever
/// gets the answer.
/// </summary>
public sealed class VmPause<TReplyTo>
{
    private Pending? _pending;

    public bool Paused { get; private set; }

    /// <summary>
    /// Asks for the VM to be paused or to run. Null: started, and the vCPUs in <paramref name="acknowledging"/> must each
    /// acknowledge (null: the hypervisor answers for the whole VM, see <see cref="Finish"/>). Otherwise the answer to give
    /// now: it is already so, the VM is stopping, another pause is under way, or there is no vCPU to ask.
    /// </summary>
    public PauseAnswer<TReplyTo>? Request(bool wanted, TReplyTo replyTo, bool stopping, IReadOnlyCollection<int>? acknowledging)
    {
        var error = stopping ? "the VM is stopping"
            : _pending is not null ? "a pause or resume of this VM is already in progress"
            : null;
        if (error is not null || Paused == wanted)
        {
            return new PauseAnswer<TReplyTo>(replyTo, wanted, Paused, error);
        }

        _pending = new Pending(wanted, replyTo, acknowledging is null ? null : [.. acknowledging]);
        return acknowledging is { Count: 0 } ? Finish("the VM has no running vCPU") : null;
    }

    /// <summary>Whether the pause or resume under way waits for this vCPU.</summary>
    public bool IsWaitingFor(int vcpu) => _pending?.Remaining?.Contains(vcpu) == true;

    /// <summary>A vCPU acknowledged; the answer once it was the last one, else null.</summary>
    public PauseAnswer<TReplyTo>? Acknowledged(int vcpu) =>
        _pending?.Remaining is { } remaining && remaining.Remove(vcpu) && remaining.Count == 0 ? Finish(null) : null;

    /// <summary>
    /// Ends the pause or resume under way: done as asked (no error), or failed, leaving the VM as it counted before.
    /// Null when none was under way.
    /// </summary>
    public PauseAnswer<TReplyTo>? Finish(string? error)
    {
        if (_pending is not { } pending)
        {
            return null;
        }

        _pending = null;
        if (error is null)
        {
            Paused = pending.Wanted;
        }

        return new PauseAnswer<TReplyTo>(pending.ReplyTo, pending.Wanted, Paused, error);
    }

    private sealed record Pending(bool Wanted, TReplyTo ReplyTo, HashSet<int>? Remaining);
}
