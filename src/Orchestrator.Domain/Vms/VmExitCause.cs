namespace Orchestrator.Domain.Vms;

/// <summary>
/// What a VM's supervisor learnt before its process ended (a stop was asked for, the guest powered off or panicked, a
/// vCPU failed), so that when it ends it can say how: the kind the restart policy reads, and a reason for people.
/// </summary>
public sealed class VmExitCause
{
    private bool _panicked;
    private bool _guestPoweredOff;

    /// <summary>The orchestrator asked for the VM to stop or be killed.</summary>
    public bool StopRequested { get; private set; }

    /// <summary>Why the VM is being killed as failed (a vCPU failed or stopped acknowledging); null while it is not.</summary>
    public string? Failure { get; private set; }

    /// <summary>Records a stop or kill; false when one was already asked for.</summary>
    public bool RequestStop()
    {
        var first = !StopRequested;
        StopRequested = true;
        return first;
    }

    public void GuestPanicked() => _panicked = true;

    /// <summary>The VM shut down; only a shutdown the guest itself started counts as its power-off.</summary>
    public void ShutDown(bool guestInitiated) => _guestPoweredOff |= guestInitiated;

    /// <summary>Records the VM as failed; false when it already was (the first reason stays).</summary>
    public bool Fail(string reason)
    {
        if (Failure is not null)
        {
            return false;
        }

        Failure = reason;
        return true;
    }

    /// <summary>
    /// How the process ended, given what the hypervisor said about it. A failure outranks everything (the VM was killed
    /// for it); a stop outranks what the guest did meanwhile; a panic outranks a power-off.
    /// </summary>
    public (ExitKind Kind, string Reason) Classify(string processReason) =>
        Failure is not null ? (ExitKind.Crash, Failure)
        : StopRequested ? (ExitKind.Requested, "stopped on request")
        : _panicked ? (ExitKind.Crash, "guest kernel panicked")
        : _guestPoweredOff ? (ExitKind.GuestPoweroff, "guest powered off")
        : (ExitKind.Crash, $"process ended unexpectedly: {processReason}");
}
