// The accelerator speed check: its hand-assembled guest, how far a stopped guest got, and the verdict, all pure; the
// run itself on a real /dev/kvm (judged, never timed by the test), and as an Error result where there is none.
using Orchestrator.Hypervisor.Kvm;

namespace Orchestrator.Hypervisor.Tests.Kvm;

public sealed class KvmSpeedCheckTests
{
    [Fact]
    public void Guest_code_is_mov_ecx_then_a_dec_jnz_loop_then_hlt()
    {
        var code = KvmSpeedCheck.GuestCode(5_000_000); // 0x004c4b40

        Assert.Equal(
            new byte[] { 0x66, 0xb9, 0x40, 0x4b, 0x4c, 0x00, 0x66, 0x49, 0x75, 0xfc, 0xf4 },
            code);
        Assert.Equal([0x66, 0x49], code[KvmSpeedCheck.LoopOffset..(KvmSpeedCheck.LoopOffset + 2)]);
        Assert.Equal(0xf4, code[KvmSpeedCheck.HltOffset]);
        Assert.Equal(KvmSpeedCheck.HltOffset, code.Length - 1);
        // jnz's rel8 counts from the instruction after it (the HLT): it must land on the dec.
        Assert.Equal(KvmSpeedCheck.LoopOffset, KvmSpeedCheck.HltOffset + (sbyte)code[KvmSpeedCheck.HltOffset - 1]);
        Assert.Equal(new byte[] { 0xff, 0xff, 0xff, 0xff }, KvmSpeedCheck.GuestCode(uint.MaxValue)[2..6]);
    }

    [Fact]
    public void Iterations_done_come_from_ecx_once_the_loop_has_started()
    {
        const long n = 5_000_000;
        var loop = KvmSpeedCheck.LoadAddress + KvmSpeedCheck.LoopOffset;

        Assert.Equal(0, KvmSpeedCheck.IterationsDone(n, KvmSpeedCheck.LoadAddress, rcx: 0)); // the mov has not run
        Assert.Equal(1_000_000, KvmSpeedCheck.IterationsDone(n, loop, rcx: 4_000_000));
        Assert.Equal(n - 10, KvmSpeedCheck.IterationsDone(n, loop + 2, rcx: 0xdead_0000_0000 | 10)); // ECX only
        Assert.Equal(n, KvmSpeedCheck.IterationsDone(n, KvmSpeedCheck.LoadAddress + KvmSpeedCheck.HltOffset + 1, rcx: 0));
        Assert.Equal(0, KvmSpeedCheck.IterationsDone(n, 0xfff0, rcx: 3)); // nowhere in the code: claims nothing
    }

    [Fact]
    public void A_loop_that_halts_within_the_limit_passes()
    {
        var result = KvmSpeedCheck.Judge(5_000_000, done: 0, halted: true, TimeSpan.FromMilliseconds(4.2), TimeSpan.FromMilliseconds(100));

        Assert.Equal(KvmSpeedCheckOutcome.Passed, result.Outcome);
        Assert.True(result.Passed);
        Assert.Equal(5_000_000, result.IterationsDone);
        Assert.Equal("passed: 5000000 iterations in 4.2 ms (0.84 ns each), within the 100 ms limit", result.Describe());
    }

    [Fact]
    public void A_loop_that_halts_after_the_limit_fails()
    {
        var result = KvmSpeedCheck.Judge(5_000_000, done: 0, halted: true, TimeSpan.FromMilliseconds(120), TimeSpan.FromMilliseconds(100));

        Assert.Equal(KvmSpeedCheckOutcome.Failed, result.Outcome);
        Assert.Contains("over the 100 ms limit", result.Reason);
    }

    [Fact]
    public void A_loop_stopped_at_the_limit_fails_saying_how_far_it_got()
    {
        // The nested host's pace: about 1.5 us a turn.
        var crawling = KvmSpeedCheck.Judge(5_000_000, done: 66_667, halted: false, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(100));
        Assert.Equal(KvmSpeedCheckOutcome.Failed, crawling.Outcome);
        Assert.Equal(
            "did not finish 5000000 iterations in 100 ms: 66667 done (1500 ns each: all would take ~7500 ms)",
            crawling.Reason);
        Assert.Equal(1500, crawling.NanosecondsPerIteration, precision: 0);

        var stuck = KvmSpeedCheck.Judge(5_000_000, done: 0, halted: false, TimeSpan.FromMilliseconds(101), TimeSpan.FromMilliseconds(100));
        Assert.Equal("did not finish 5000000 iterations in 100 ms: not one done", stuck.Reason);
        Assert.True(double.IsNaN(stuck.NanosecondsPerIteration));
    }

    [Fact]
    public void Bad_arguments_are_an_error_result_not_an_exception()
    {
        Assert.Equal(KvmSpeedCheckOutcome.Error, KvmSpeedCheck.Run(0, TimeSpan.FromMilliseconds(100), CancellationToken.None).Outcome);
        Assert.Equal(KvmSpeedCheckOutcome.Error, KvmSpeedCheck.Run(1L << 32, TimeSpan.FromMilliseconds(100), CancellationToken.None).Outcome);
        Assert.Equal(KvmSpeedCheckOutcome.Error, KvmSpeedCheck.Run(1000, TimeSpan.Zero, CancellationToken.None).Outcome);
    }

    [NoKvmFact]
    public void Without_kvm_the_check_is_an_error_result_naming_dev_kvm()
    {
        var result = KvmSpeedCheck.Run();

        Assert.Equal(KvmSpeedCheckOutcome.Error, result.Outcome);
        Assert.Contains("/dev/kvm", result.Reason);
        Assert.Equal(KvmSpeedCheck.DefaultIterations, result.Iterations);
    }

    [KvmFact]
    public void On_kvm_the_loop_runs_and_is_judged_on_its_speed()
    {
        // Passed or Failed depends on the host (a nested one fails, and should): the test only asks that it ran.
        var result = KvmSpeedCheck.Run();

        Assert.True(result.Outcome != KvmSpeedCheckOutcome.Error, result.Describe());
        Assert.True(result.IterationsDone > 0 || result.Outcome == KvmSpeedCheckOutcome.Failed, result.Describe());
        Assert.NotEqual(TimeSpan.Zero, result.Elapsed); // the loop was timed at all (how fast is the host's business)
    }
}
