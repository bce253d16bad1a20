using Spectre.Console;

namespace Orchestrator.Cli;

internal static class CliConsoles
{
    /// <summary>
    /// A Spectre console on <paramref name="writer"/>: colours and live progress only on a terminal; wide
    /// and plain otherwise, so a pipe gets no escape codes and no wrapped rows.
    /// </summary>
    public static IAnsiConsole Create(TextWriter writer, bool isTerminal)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = isTerminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = isTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = isTerminal ? InteractionSupport.Detect : InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });

        if (!isTerminal)
        {
            console.Profile.Width = 240;
        }

        return console;
    }
}
