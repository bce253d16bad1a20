using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class VmExitCauseTests
{
    [Fact]
    public void A_process_that_ends_with_nothing_known_crashed_for_the_reason_it_gives() =>
        Assert.Equal((ExitKind.Crash, "process ended unexpectedly: killed by signal 9"), new VmExitCause().Classify("killed by signal 9"));

    [Fact]
    public void A_guest_initiated_shutdown_is_a_power_off_and_a_host_initiated_one_is_not()
    {
        var hostShutdown = new VmExitCause();
        hostShutdown.ShutDown(guestInitiated: false);
        Assert.Equal(ExitKind.Crash, hostShutdown.Classify("x").Kind);

        var guestShutdown = new VmExitCause();
        guestShutdown.ShutDown(guestInitiated: true);
        guestShutdown.ShutDown(guestInitiated: false);
        Assert.Equal((ExitKind.GuestPoweroff, "guest powered off"), guestShutdown.Classify("x"));
    }

    [Fact]
    public void A_panic_outranks_a_power_off()
    {
        var cause = new VmExitCause();
        cause.ShutDown(guestInitiated: true);
        cause.GuestPanicked();

        Assert.Equal((ExitKind.Crash, "guest kernel panicked"), cause.Classify("x"));
    }

    [Fact]
    public void A_requested_stop_outranks_what_the_guest_did_meanwhile()
    {
        var cause = new VmExitCause();
        cause.GuestPanicked();
        cause.ShutDown(guestInitiated: true);

        Assert.True(cause.RequestStop());
        Assert.False(cause.RequestStop());
        Assert.True(cause.StopRequested);
        Assert.Equal((ExitKind.Requested, "stopped on request"), cause.Classify("x"));
    }

    [Fact]
    public void A_failure_outranks_a_stop_and_the_first_failure_is_the_reason()
    {
        var cause = new VmExitCause();
        cause.RequestStop();

        Assert.True(cause.Fail("vCPU 1 failed: KVM_EXIT_INTERNAL_ERROR"));
        Assert.False(cause.Fail("vCPU 0 failed: later"));
        Assert.Equal((ExitKind.Crash, "vCPU 1 failed: KVM_EXIT_INTERNAL_ERROR"), cause.Classify("killed"));
    }
}
