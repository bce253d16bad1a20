using System.Diagnostics;
using System.Runtime;

namespace Orchestrator.Simulation;

/// <summary>
/// Warm-up rounds until the runtime has done compiling what they run. Tiered compilation compiles a method quickly at
/// first, then, once it is hot, again with profiling, and then once more optimised, in the background, over a run's
/// first seconds: a run measured from its start measured the compiler as much as the code (CapacityIndex 347k
/// decisions/s cold against 468-542k warm, on the same machine). A round counts as settled when the compiler took less than
/// <see cref="SettledShare"/> of its wall time; the compiler works in waves (a method is promoted a while after it got
/// hot, and a promotion makes its callers' new code hot in turn), so one quiet round is not enough: two in a row are.
/// </summary>
internal static class JitWarmUp
{
    public const double SettledShare = 0.02;

    /// <summary>Runs <paramref name="round"/> (given its number) until two rounds in a row are settled, at most <paramref name="maxRounds"/> times.</summary>
    /// <returns>the rounds run.</returns>
    public static int UntilSettled(Action<int> round, int maxRounds) =>
        // Each round completes before it returns, so the rounds' task has too: the result is there at once.
        UntilSettledAsync(n =>
        {
            round(n);
            return Task.CompletedTask;
        }, maxRounds).GetAwaiter().GetResult();

    /// <summary>The same, for rounds that wait on something (requests sent at a rate, answered by actors).</summary>
    public static async Task<int> UntilSettledAsync(Func<int, Task> round, int maxRounds)
    {
        int rounds = 0, settled = 0;
        while (rounds < maxRounds && settled < 2)
        {
            var compiling = JitInfo.GetCompilationTime();
            var wall = Stopwatch.StartNew();
            await round(rounds++);
            settled = (JitInfo.GetCompilationTime() - compiling) / wall.Elapsed < SettledShare ? settled + 1 : 0;
        }

        return rounds;
    }

    /// <summary>
    /// Waits, doing nothing, until the compiler has been idle for two <see cref="QuietInterval"/>s in a row
    /// (<paramref name="atMost"/> at most). Why: what a start ran often (configuration parsing, host registrations, the store's first connection) is
    /// promoted in the background a while later, and a window that follows at once measured that compiling: 0.3 s of a
    /// closed loop's 1.6 s window at 10,000 hosts, every method of it a promotion of start-up code.
    /// </summary>
    public static async Task UntilIdleAsync(TimeSpan atMost)
    {
        var waited = Stopwatch.StartNew();
        var quiet = 0;
        while (waited.Elapsed < atMost && quiet < 2)
        {
            var compiling = JitInfo.GetCompilationTime();
            await Task.Delay(QuietInterval);
            // Two quiet intervals in a row: the runtime waits a while after its last first compilation before it
            // counts calls, and promotes only after that.
            quiet = JitInfo.GetCompilationTime() - compiling < TimeSpan.FromMilliseconds(1) ? quiet + 1 : 0;
        }
    }

    public static readonly TimeSpan QuietInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>What the compiler has spent so far, all threads: subtract two readings for a window's share.</summary>
    public static TimeSpan CompilationTime => JitInfo.GetCompilationTime();
}
