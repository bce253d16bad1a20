using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>What the tests of guests on networks share: their consoles, the router namespaces a failed run leaves, commands.</summary>
public static class GuestNetworkProbes
{
    /// <summary>The VM's console once it holds <paramref name="marker"/> (its host's node keeps it).</summary>
    public static Task<string> ConsoleTextAsync(NodeProcess host, JsonObject vm, string marker, TimeSpan timeout)
    {
        var console = Path.Combine(host.RunDir, "vms", (string)vm["id"]!, "console.log");
        return host.Eventually(async () => File.Exists(console) && await File.ReadAllTextAsync(console) is { } text && text.Contains(marker, StringComparison.Ordinal)
            ? text : null, timeout, $"'{marker}' on {vm["name"]}'s console");
    }

    /// <summary>After a failure: the namespaces (router namespaces the killed nodes left) and their processes (dnsmasq).</summary>
    public static void RemoveNamespaces(IEnumerable<string> namespaces, ITestOutputHelper? output)
    {
        foreach (var name in namespaces.Where(n => File.Exists($"/run/netns/{n}")))
        {
            output?.WriteLine($"removing the leftover namespace {name}");
            foreach (var pid in Run("ip", "netns", "pids", name).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                NodeProcess.Signal(int.Parse(pid, CultureInfo.InvariantCulture), "KILL");
            }

            Run("ip", "netns", "del", name);
        }
    }

    /// <summary>A command's standard output (its errors dropped).</summary>
    public static string Run(string file, params string[] args) => RunWithErrors(file, args).Output;

    /// <summary>A command's standard output and its errors.</summary>
    public static (string Output, string Errors) RunWithErrors(string file, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var text = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (text.Result, errors);
    }
}
