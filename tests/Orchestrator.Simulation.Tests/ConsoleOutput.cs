namespace Orchestrator.Simulation.Tests;

/// <summary>
/// The tools write their reports to the console: a test reads one by taking the console's output for a while, so the
/// classes that do run one at a time (this collection).
/// </summary>
[CollectionDefinition(Name)]
public sealed class ConsoleOutput
{
    public const string Name = "console output";

    /// <summary>What <paramref name="run"/> wrote to the console, with its exit code.</summary>
    public static async Task<(int Exit, string Text)> Of(Func<Task<int>> run)
    {
        var output = new StringWriter();
        var console = Console.Out;
        Console.SetOut(output);
        try
        {
            return (await run(), output.ToString());
        }
        finally
        {
            Console.SetOut(console);
        }
    }
}
