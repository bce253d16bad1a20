using System.Diagnostics;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>One run of the built `orchestrator` (or `orchestrator-tools`) with its output captured and logged.</summary>
internal sealed record OrchestratorRun(int ExitCode, string Out, string Error, int Pid);

internal static class OrchestratorCommand
{
    /// <summary>dotnet orchestrator.dll ARGS: the product.</summary>
    /// <param name="prepare">changes to the start info (environment) before the process starts.</param>
    /// <param name="timeout">how long it may take; past it the process tree is killed and the wait throws.</param>
    public static Task<OrchestratorRun> RunAsync(ITestOutputHelper output, IEnumerable<string> args, TimeSpan timeout,
        Action<ProcessStartInfo>? prepare = null) =>
        RunAsync("orchestrator.dll", output, args, timeout, prepare);

    /// <summary>dotnet orchestrator-tools.dll ARGS: bench, simulate, scale (what ./orchestrator runs for those commands).</summary>
    public static Task<OrchestratorRun> RunToolAsync(ITestOutputHelper output, IEnumerable<string> args, TimeSpan timeout) =>
        RunAsync("orchestrator-tools.dll", output, args, timeout, prepare: null);

    private static async Task<OrchestratorRun> RunAsync(string dll, ITestOutputHelper output, IEnumerable<string> args, TimeSpan timeout,
        Action<ProcessStartInfo>? prepare)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, dll));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        prepare?.Invoke(start);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        output.WriteLine($"$ {Path.GetFileNameWithoutExtension(dll)} {string.Join(' ', start.ArgumentList.Skip(1))} → {process.ExitCode}\n{await stdout}{await stderr}");
        return new OrchestratorRun(process.ExitCode, await stdout, await stderr, process.Id);
    }
}
