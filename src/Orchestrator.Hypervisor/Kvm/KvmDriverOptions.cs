namespace Orchestrator.Hypervisor.Kvm;

/// <summary>Host-level settings of the native KVM engine (operator configuration; nothing here comes from a tenant).</summary>
public sealed record KvmDriverOptions
{
    /// <summary>Holds <c>vms/&lt;vmId&gt;/console.log</c> for each VM.</summary>
    public required string RunDirectory { get; init; }

    /// <summary>Appended to the kernel command line of every VM (e.g. <c>orchestrator.poweroff=1</c> for tests).</summary>
    public string? ExtraKernelAppend { get; init; }

    /// <summary>
    /// Write an MP table (how Linux finds the application processors and the IOAPIC without ACPI). Off, a guest sees
    /// one CPU and runs its interrupts through the PIC; a switch to tell the two apart when a boot goes wrong.
    /// </summary>
    public bool MpTable { get; init; } = true;

    /// <summary>How often the vCPUs are asked whether the guest has halted for good (its power-off); zero: never.</summary>
    public TimeSpan HaltProbeInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long ending a VM waits for its vCPU threads to leave KVM_RUN.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(5);
}
