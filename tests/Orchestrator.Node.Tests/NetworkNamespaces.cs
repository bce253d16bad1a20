using System.Diagnostics;

namespace Orchestrator.Node.Tests;

/// <summary>
/// cluster/netns.sh for one test: hosts in network namespaces <c>{Prefix}-hI</c> at <c>{Subnet}.I</c> on a bridge at
/// <c>{Subnet}.254</c>. A prefix and subnet of the test's own keep it apart from other tests and from cluster/local.sh.
/// </summary>
public sealed record NetworkNamespaces(string Prefix, string Subnet)
{
    private static string Script => Path.Combine(Checkout.Root(), "cluster", "netns.sh");

    /// <summary>The bridge's address in the root namespace: what every host reaches (and nothing else does).</summary>
    public string Underlay => $"{Subnet}.254";

    public string Address(int host) => $"{Subnet}.{host}";

    /// <summary>Runs a command inside host <paramref name="host"/>'s namespace (exec: the process id stays the command's).</summary>
    public IReadOnlyList<string> Launcher(int host) => ["ip", "netns", "exec", $"{Prefix}-h{host}"];

    /// <summary>netns.sh with these settings (up N, down, partition I, heal I); throws with its stderr when it fails.</summary>
    public void Run(params string[] args)
    {
        var start = new ProcessStartInfo(Script) { RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["ORC_NETNS_PREFIX"] = Prefix;
        start.Environment["ORC_NETNS_SUBNET"] = Subnet;
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"netns.sh {string.Join(' ', args)} failed: {error}");
        }
    }
}
