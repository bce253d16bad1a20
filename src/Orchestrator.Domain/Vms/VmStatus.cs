namespace Orchestrator.Domain.Vms;

/// <summary>What the tenant wants the VM to be doing.</summary>
public enum DesiredState
{
    Running,
    Stopped,
}

/// <summary>What the VM is observed to be doing, as its host reports it.</summary>
public enum VmStatus
{
    /// <summary>Accepted, but no host has room yet; placed as soon as one does.</summary>
    Pending,

    /// <summary>Placed on a host; the process is being started.</summary>
    Starting,

    /// <summary>The hypervisor reports the vCPUs running.</summary>
    Running,

    /// <summary>The guest printed its ready banner.</summary>
    Ready,

    Stopping,
    Stopped,

    /// <summary>Crashed and waiting out its restart backoff.</summary>
    Restarting,

    /// <summary>Gave up: crashed under a policy that doesn't restart, or could not start. Reason says why.</summary>
    Failed,

    /// <summary>Delete accepted; the host is tearing it down.</summary>
    Deleting,
}
