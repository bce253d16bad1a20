using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// For the tests that measure what share of the machine a guest gets (CPU time, disk bandwidth): they wait until the
/// machine is theirs. test.sh runs the other test projects beside the node tests and holds this lock (an exclusive
/// flock, which is what .NET takes for <see cref="FileShare.None"/>) until they are done; run alone, nobody holds it.
/// </summary>
internal static class QuietMachine
{
    private static readonly string LockFile = Path.Combine(Path.GetTempPath(), "orchestrator-tests", "quiet.lock");

    /// <summary>Waits for the lock and holds it until disposed, so nothing that honours it starts meanwhile.</summary>
    public static async Task<IDisposable> HoldAsync(ITestOutputHelper output)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(LockFile)!);
        var tries = 1;
        using var patience = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        while (true)
        {
            try
            {
                var held = new FileStream(LockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                output.WriteLine($"quiet machine: the lock was ours at try {tries} (one a second)");
                return held;
            }
            catch (IOException)
            {
                // Held by the other test projects: they are still running. The wait is bounded by them (and the patience).
                await Task.Delay(TimeSpan.FromSeconds(1), patience.Token);
                tries++;
            }
        }
    }
}
