namespace Orchestrator.Domain.Vms;

/// <summary>How a VM's process ended, as the host saw it.</summary>
public enum ExitKind
{
    /// <summary>The orchestrator stopped or deleted it.</summary>
    Requested,

    /// <summary>The guest powered itself off cleanly.</summary>
    GuestPoweroff,

    /// <summary>The process died (killed, crashed) or the guest panicked.</summary>
    Crash,
}

public abstract record RestartDecision
{
    private RestartDecision() { }

    public sealed record RestartAfter(TimeSpan Delay, int Attempt) : RestartDecision;

    /// <summary>Leave it down: Stopped after a clean exit, Failed after a crash.</summary>
    public sealed record StayDown(VmStatus FinalStatus, string Reason) : RestartDecision;
}

/// <summary>Exponential backoff per restart policy, as docker and systemd do it.</summary>
public sealed record RestartBackoff(TimeSpan Initial, TimeSpan Max, TimeSpan ResetAfterStable)
{
    public static readonly RestartBackoff Default = new(TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(60));

    /// <param name="previousAttempts">restarts since the VM was last stable for <see cref="ResetAfterStable"/>.</param>
    public RestartDecision Decide(RestartPolicy policy, ExitKind exit, int previousAttempts, string exitReason)
    {
        if (exit == ExitKind.Requested)
        {
            return new RestartDecision.StayDown(VmStatus.Stopped, "stopped on request");
        }

        var restart = policy switch
        {
            RestartPolicy.Always => true,
            RestartPolicy.OnFailure => exit == ExitKind.Crash,
            _ => false,
        };
        if (!restart)
        {
            return exit == ExitKind.GuestPoweroff
                ? new RestartDecision.StayDown(VmStatus.Stopped, "guest powered off")
                : new RestartDecision.StayDown(VmStatus.Failed, exitReason);
        }

        var attempt = previousAttempts + 1;
        var factor = Math.Pow(2, Math.Min(previousAttempts, 20));
        var delay = TimeSpan.FromTicks((long)Math.Min(Initial.Ticks * factor, Max.Ticks));
        return new RestartDecision.RestartAfter(delay, attempt);
    }

    /// <summary>A VM that stayed up this long has its attempt counter reset.</summary>
    public int AttemptsAfterUptime(int previousAttempts, TimeSpan uptime) =>
        uptime >= ResetAfterStable ? 0 : previousAttempts;
}
