using Orchestrator.Simulation;

namespace Orchestrator.Simulation.Tests;

/// <summary>The warm-up before an in-memory benchmark: two quiet rounds in a row end it, and it never runs past its bound.</summary>
public sealed class JitWarmUpTests
{
    [Fact]
    public void Warm_up_runs_at_least_two_rounds_and_at_most_its_bound()
    {
        var numbers = new List<int>();
        var rounds = JitWarmUp.UntilSettled(numbers.Add, maxRounds: 10);

        // Other tests compile beside this one, so whether it settles early is not asserted: only the bounds and the count.
        Assert.InRange(rounds, 2, 10);
        Assert.Equal(Enumerable.Range(0, rounds), numbers);
    }

    [Fact]
    public async Task Warm_up_that_waits_runs_its_rounds_in_order_within_the_same_bounds()
    {
        var numbers = new List<int>();
        var rounds = await JitWarmUp.UntilSettledAsync(async n =>
        {
            await Task.Yield();
            numbers.Add(n);
        }, maxRounds: 10);

        Assert.InRange(rounds, 2, 10);
        Assert.Equal(Enumerable.Range(0, rounds), numbers);
        Assert.Equal(1, await JitWarmUp.UntilSettledAsync(_ => Task.CompletedTask, maxRounds: 1));
    }

    [Fact]
    public void Warm_up_of_one_round_runs_one()
    {
        var ran = 0;
        Assert.Equal(1, JitWarmUp.UntilSettled(_ => ran++, maxRounds: 1));
        Assert.Equal(1, ran);
    }
}
