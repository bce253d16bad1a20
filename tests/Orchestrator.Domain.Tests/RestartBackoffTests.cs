using Orchestrator.Domain.Vms;

namespace Orchestrator.Domain.Tests;

public class RestartBackoffTests
{
    private static readonly RestartBackoff Backoff = new(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(60));

    [Theory]
    [InlineData(RestartPolicy.Always, ExitKind.Crash, true)]
    [InlineData(RestartPolicy.Always, ExitKind.GuestPoweroff, true)]
    [InlineData(RestartPolicy.OnFailure, ExitKind.Crash, true)]
    [InlineData(RestartPolicy.OnFailure, ExitKind.GuestPoweroff, false)]
    [InlineData(RestartPolicy.Never, ExitKind.Crash, false)]
    [InlineData(RestartPolicy.Never, ExitKind.GuestPoweroff, false)]
    [InlineData(RestartPolicy.Always, ExitKind.Requested, false)]
    public void Each_policy_restarts_exactly_the_exits_it_names(RestartPolicy policy, ExitKind exit, bool restarts) =>
        Assert.Equal(restarts, Backoff.Decide(policy, exit, 0, "x") is RestartDecision.RestartAfter);

    [Fact]
    public void A_crash_that_is_not_restarted_leaves_the_vm_failed_with_the_reason()
    {
        var down = Assert.IsType<RestartDecision.StayDown>(Backoff.Decide(RestartPolicy.Never, ExitKind.Crash, 0, "killed by signal 9"));
        Assert.Equal(VmStatus.Failed, down.FinalStatus);
        Assert.Equal("killed by signal 9", down.Reason);
    }

    [Fact]
    public void A_guest_power_off_leaves_the_vm_stopped() =>
        Assert.Equal(VmStatus.Stopped,
            Assert.IsType<RestartDecision.StayDown>(Backoff.Decide(RestartPolicy.OnFailure, ExitKind.GuestPoweroff, 0, "x")).FinalStatus);

    [Fact]
    public void Delays_double_up_to_the_maximum()
    {
        var delays = Enumerable.Range(0, 8)
            .Select(attempts => ((RestartDecision.RestartAfter)Backoff.Decide(RestartPolicy.Always, ExitKind.Crash, attempts, "x")).Delay.TotalSeconds)
            .ToList();
        Assert.Equal([1, 2, 4, 8, 16, 30, 30, 30], delays);
    }

    [Fact]
    public void A_vm_that_stayed_up_long_enough_starts_counting_again()
    {
        Assert.Equal(0, Backoff.AttemptsAfterUptime(5, TimeSpan.FromMinutes(2)));
        Assert.Equal(5, Backoff.AttemptsAfterUptime(5, TimeSpan.FromSeconds(10)));
    }
}
